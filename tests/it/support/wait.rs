//! Polling until a condition holds, for tests that watch a running process
//! or a database change: one deadline rule and one failure message, whether
//! the test is async or blocking.

use std::time::{Duration, Instant};

/// Calls `probe` every `every` until it returns `Ok`, and returns that
/// value. `Err` carries what the probe saw, shown when `within` runs out.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) => give_up_after(start, within, what, &seen),
        }
        tokio::time::sleep(every).await;
    }
}

/// [`wait_until`] for blocking tests (no runtime): sleeps the thread.
pub fn wait_until_blocking<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) => give_up_after(start, within, what, &seen),
        }
        std::thread::sleep(every);
    }
}

fn give_up_after(start: Instant, within: Duration, what: &str, seen: &str) {
    assert!(
        start.elapsed() < within,
        "timed out after {within:?} waiting for {what}; {seen}"
    );
}
