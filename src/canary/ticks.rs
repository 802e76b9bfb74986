//! Cron arithmetic for the scheduler, as pure functions of `now`.
//!
//! Patterns are parsed exactly as tokio-cron-scheduler parses them (seconds
//! required, day-of-month AND day-of-week), so the tick a job fires for and
//! the tick catch-up computes are the same instant.

use chrono::{DateTime, Offset, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Parses a normalised 6-field pattern the way the scheduler does.
pub fn parse(six_field: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(six_field)
        .map_err(|e| format!("invalid cron `{six_field}`: {e}"))
}

/// The suite's time zone; UTC when absent or unknown (load validates it).
pub fn zone(tz: Option<&str>) -> chrono_tz::Tz {
    tz.and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// `now_ms` in `tz`, floored to the second: croner matches whole seconds
/// and would hand back a fractional `now` itself as the "previous tick".
fn at(tz: chrono_tz::Tz, now_ms: i64) -> Option<DateTime<chrono_tz::Tz>> {
    let floored = now_ms - now_ms.rem_euclid(1000);
    Some(tz.from_utc_datetime(&DateTime::<Utc>::from_timestamp_millis(floored)?.naive_utc()))
}

/// The latest tick at or before `now_ms`, in UTC milliseconds.
pub fn previous_tick(cron: &Cron, tz: chrono_tz::Tz, now_ms: i64) -> Option<i64> {
    let now = at(tz, now_ms)?;
    cron.find_previous_occurrence(&now, true)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The first tick strictly after `now_ms`.
pub fn next_tick(cron: &Cron, tz: chrono_tz::Tz, now_ms: i64) -> Option<i64> {
    let now = at(tz, now_ms)?;
    cron.find_next_occurrence(&now, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// UTC offset of `tz` at `now_ms`, in seconds. tokio-cron-scheduler freezes
/// this at job creation, so the scheduler rebuilds a job when it changes (DST).
pub fn offset_secs(tz: chrono_tz::Tz, now_ms: i64) -> i32 {
    DateTime::<Utc>::from_timestamp_millis(now_ms)
        .map(|t| t.with_timezone(&tz).offset().fix().local_minus_utc())
        .unwrap_or(0)
}

/// The one catch-up tick owed after downtime: the latest tick before `now`
/// if the last tick any replica ran is older. A suite that never ran on its
/// schedule is owed nothing (there was no downtime, only a first start).
pub fn catch_up_tick(
    cron: &Cron,
    tz: chrono_tz::Tz,
    last_run_tick: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    let last = last_run_tick?;
    let prev = previous_tick(cron, tz, now_ms)?;
    (prev > last).then_some(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn previous_and_next_ticks_in_utc() {
        let c = parse("0 */15 * * * *").unwrap();
        let now = ms("2026-03-01T10:20:05Z");
        assert_eq!(
            previous_tick(&c, chrono_tz::UTC, now),
            Some(ms("2026-03-01T10:15:00Z"))
        );
        assert_eq!(
            next_tick(&c, chrono_tz::UTC, now),
            Some(ms("2026-03-01T10:30:00Z"))
        );
        // Fired a little after a seconds-level tick: that tick, whole seconds.
        let every2 = parse("*/2 * * * * *").unwrap();
        assert_eq!(
            previous_tick(&every2, chrono_tz::UTC, ms("2026-03-01T10:20:10.485Z")),
            Some(ms("2026-03-01T10:20:10Z"))
        );
        assert_eq!(
            previous_tick(&every2, chrono_tz::UTC, ms("2026-03-01T10:20:11.999Z")),
            Some(ms("2026-03-01T10:20:10Z"))
        );
        assert_eq!(
            next_tick(&every2, chrono_tz::UTC, ms("2026-03-01T10:20:10.485Z")),
            Some(ms("2026-03-01T10:20:12Z"))
        );
        // A tick is its own previous tick (the job fires at or after it).
        assert_eq!(
            previous_tick(&c, chrono_tz::UTC, ms("2026-03-01T10:15:00Z")),
            Some(ms("2026-03-01T10:15:00Z"))
        );
    }

    #[test]
    fn zoned_schedules_follow_daylight_saving() {
        let c = parse("0 0 9 * * *").unwrap();
        let paris = zone(Some("Europe/Paris"));
        // 09:00 Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            previous_tick(&c, paris, ms("2026-03-27T12:00:00Z")),
            Some(ms("2026-03-27T08:00:00Z"))
        );
        assert_eq!(
            previous_tick(&c, paris, ms("2026-03-30T12:00:00Z")),
            Some(ms("2026-03-30T07:00:00Z"))
        );
        assert_ne!(
            offset_secs(paris, ms("2026-03-27T12:00:00Z")),
            offset_secs(paris, ms("2026-03-30T12:00:00Z"))
        );
    }

    #[test]
    fn one_catch_up_tick_only_after_missed_ticks() {
        let c = parse("0 0 * * * *").unwrap();
        let now = ms("2026-03-01T10:20:00Z");
        let utc = chrono_tz::UTC;
        // Down since 06:00: owed exactly the 10:00 tick, not 07..10.
        assert_eq!(
            catch_up_tick(&c, utc, Some(ms("2026-03-01T06:00:00Z")), now),
            Some(ms("2026-03-01T10:00:00Z"))
        );
        // The latest tick already ran: nothing owed.
        assert_eq!(
            catch_up_tick(&c, utc, Some(ms("2026-03-01T10:00:00Z")), now),
            None
        );
        // Never ran on a schedule: nothing owed.
        assert_eq!(catch_up_tick(&c, utc, None, now), None);
    }

    #[test]
    fn seconds_are_required_like_the_scheduler() {
        assert!(parse("*/15 * * * *").is_err());
        assert!(parse("*/2 * * * * *").is_ok());
    }
}
