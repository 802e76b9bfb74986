//! The one clock. Every reading of the wall time in the library goes
//! through a [`Clock`] handed down by the composition root (the daemon, or a
//! CLI command at the binary's edge), so every time-dependent behaviour can
//! be driven by a fixed or stepped clock in tests.
//!
//! Monotonic `Instant`s used only to measure durations (latency metrics,
//! retry pacing) are not readings of the time of day and stay local.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// UTC milliseconds since the Unix epoch. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock(Kind);

#[derive(Clone, Default)]
enum Kind {
    #[default]
    System,
    Fixed(i64),
    /// Each reading returns the current value and advances it by `step_ms`.
    Stepped {
        next: Arc<AtomicI64>,
        step_ms: i64,
    },
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Kind::System)
    }

    /// Always `ms`.
    pub fn fixed(ms: i64) -> Clock {
        Clock(Kind::Fixed(ms))
    }

    /// Starts at `start_ms` and moves `step_ms` forward at every reading
    /// (shared by clones), for tests that need time to pass on each call.
    pub fn stepped(start_ms: i64, step_ms: i64) -> Clock {
        Clock(Kind::Stepped {
            next: Arc::new(AtomicI64::new(start_ms)),
            step_ms,
        })
    }

    /// The current time in UTC milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Kind::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Kind::Fixed(ms) => *ms,
            Kind::Stepped { next, step_ms } => next.fetch_add(*step_ms, Ordering::SeqCst),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::System => f.write_str("Clock::system"),
            Kind::Fixed(ms) => write!(f, "Clock::fixed({ms})"),
            Kind::Stepped { step_ms, .. } => write!(f, "Clock::stepped(+{step_ms} ms)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_stepped_clocks_are_deterministic() {
        let f = Clock::fixed(42);
        assert_eq!((f.now_ms(), f.now_ms()), (42, 42));
        let s = Clock::stepped(1_000, 10);
        let t = s.clone();
        assert_eq!(s.now_ms(), 1_000);
        assert_eq!(t.now_ms(), 1_010, "clones share one time line");
        assert_eq!(s.now_ms(), 1_020);
        let now = Clock::system().now_ms();
        assert!(now > 1_700_000_000_000, "{now}");
    }
}
