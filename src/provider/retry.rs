//! The retry policy for provider calls: jittered exponential backoff that
//! honours `Retry-After`. Pure, so it is tested without a clock.

use std::time::Duration;

/// Backoff settings for one provider.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time.
    pub base: Duration,
    /// No single wait is longer than this, even if `Retry-After` asks for more.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (0-based), given the
    /// server's `Retry-After` and a jitter draw `unit` in [0, 1).
    ///
    /// Jitter on the exponential step spreads replicas that failed together;
    /// a server's `Retry-After` is obeyed as given (up to `max_delay`).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << retry.min(20));
        let capped = exp.min(self.max_delay);
        let jittered = capped.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(ra) => ra.min(self.max_delay),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` header: delta-seconds (fractions accepted) or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let when: std::time::SystemTime = when.with_timezone(&chrono::Utc).into();
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_bounded_jitter() {
        let p = RetryPolicy::default();
        let d0 = p.delay(0, None, 0.0);
        let d3 = p.delay(3, None, 0.0);
        assert_eq!(d0, Duration::from_millis(250));
        assert_eq!(d3, Duration::from_millis(2000));
        assert!(p.delay(0, None, 0.999) < Duration::from_millis(501));
        assert!(p.delay(30, None, 1.0) <= p.max_delay);
    }

    #[test]
    fn retry_after_is_obeyed_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3)), 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(600)), 0.0), p.max_delay);
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
