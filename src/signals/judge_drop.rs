//! `judge_score_drop`: per judge dimension, the window's mean score is at
//! least `min_drop` below the baseline's and Welch's t says the drop is not
//! noise — or the score CUSUM, tuned to a drop of `min_drop`, alarms and the
//! mean since its change point is at least `min_drop` down.

use std::collections::BTreeMap;

use super::DetectorConfig;
use super::finding::{Rule, Severity};
use super::rollup::sum_range;
use super::sequential::{baseline_precise, cusum, normal_dispersion, normal_llr};
use super::stats::{Moments, welch_less};
use super::verdict::{Verdict, verdict};
use super::window::Windows;

/// Judges one stream's scores from one judge (`hours`: hour → moments).
pub fn judge_score_drop(
    stream: &str,
    judge: &str,
    hours: &BTreeMap<i64, Moments>,
    w: &Windows,
    cfg: &DetectorConfig,
) -> Verdict {
    let c = &cfg.judge_score_drop;
    let total = |span| sum_range(hours, span, |a: &mut Moments, m| a.add(*m));
    let (base, cur) = (total(w.baseline), total(w.current));
    let (n_cur, n_base) = (cur.n as u64, base.n as u64);
    if n_cur < c.min_samples || n_base < c.min_samples {
        return Verdict::insufficient(
            Rule::JudgeScoreDrop,
            stream,
            Some(judge),
            w.now_ms,
            c.min_drop,
            n_cur,
            n_base,
            format!(
                "{judge}: {n_cur} scores in the window, {n_base} in the baseline; need {} each",
                c.min_samples
            ),
        );
    }
    let drop = base.mean() - cur.mean();
    let p = welch_less(cur, base);
    // The effect must reach the threshold within one standard error: a true
    // step of exactly `min_drop` is then caught ~84 % of the time instead of
    // a coin flip, and a much smaller one still is not.
    let se = (cur.var() / cur.n + base.var() / base.n).sqrt();
    let window_effect = drop + se >= c.min_drop;

    // Sequential: CUSUM for a drop of min_drop, per-record variance from the
    // baseline inflated by its hour-to-hour overdispersion.
    let mut seq_note = String::new();
    let mut direct = false;
    if cfg.sequential.enabled
        && base.var() > 0.0
        && baseline_precise((base.var() / base.n).sqrt(), c.min_drop)
    {
        let base_hours: Vec<Moments> = hours
            .range(w.baseline.0..w.baseline.1)
            .map(|(_, m)| *m)
            .collect();
        let var = base.var() * normal_dispersion(&base_hours, base.mean(), base.var());
        let chart = cusum(
            hours
                .range(w.sequential.0..w.sequential.1)
                .map(|(&h, m)| (h, normal_llr(*m, base.mean(), -c.min_drop, var))),
        );
        if chart.alarm(cfg.sequential.threshold())
            && let Some(since) = chart.since_ms
        {
            let seg = total((since, w.sequential.1));
            // The segment since the change point is short, so its mean is
            // noisy: it must reach the threshold within two standard errors
            // (the CUSUM threshold already carries the significance).
            let seg_se = (seg.var() / seg.n.max(1.0)).sqrt();
            if seg.n as u64 >= c.min_samples
                && base.mean() - seg.mean() + 2.0 * seg_se >= c.min_drop
            {
                direct = true;
                seq_note = format!(
                    "; CUSUM {:.1} since {}: mean {:.2} (n={})",
                    chart.stat,
                    super::fmt_time(since),
                    seg.mean(),
                    seg.n
                );
            }
        }
    }
    let severity = if drop >= 2.0 * c.min_drop {
        Severity::Critical
    } else {
        Severity::Warning
    };
    verdict(
        Rule::JudgeScoreDrop,
        stream,
        Some(judge),
        w.now_ms,
        (cur.mean(), base.mean(), c.min_drop),
        Some(p),
        (n_cur, n_base),
        severity,
        window_effect,
        direct,
        cfg.alpha,
        format!(
            "{judge} {:.2} → {:.2} (p={p:.2e}, n={n_cur}){seq_note}",
            base.mean(),
            cur.mean()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Status;
    use crate::signals::synth::{Gen, score_hours};
    use crate::signals::window::HOUR_MS;

    const NOW: i64 = 1_000 * HOUR_MS;

    fn run(step: f64, per_hour: u32, step_hours: i64, seed: u64) -> Verdict {
        let mut g = Gen::new(seed);
        let hours = score_hours(&mut g, NOW - 192 * HOUR_MS, NOW, per_hour, 3.5, |h| {
            if h >= NOW - step_hours * HOUR_MS {
                step
            } else {
                0.0
            }
        });
        judge_score_drop(
            "s",
            "groundedness",
            &hours,
            &Windows::new(NOW, &DetectorConfig::default()),
            &DetectorConfig::default(),
        )
    }

    #[test]
    fn stationary_noise_gives_no_verdict() {
        for seed in 0..20 {
            let v = run(0.0, 20, 0, seed);
            assert_eq!(v.finding.status, Status::Ok, "{:?}", v.finding);
        }
    }

    #[test]
    fn a_step_of_the_threshold_is_caught() {
        let caught = (0..20)
            .filter(|&seed| run(-0.3, 20, 24, seed).finding.status == Status::Firing)
            .count();
        assert!(caught >= 15, "a 0.3 step was caught in {caught}/20 windows");
    }

    #[test]
    fn a_recent_step_is_caught_by_the_cusum_first() {
        let v = run(-0.5, 30, 4, 3);
        assert!(v.direct, "{:?}", v.finding);
    }

    #[test]
    fn too_few_scores_is_insufficient_data() {
        let v = run(-1.0, 1, 24, 1);
        assert_eq!(v.finding.status, Status::InsufficientData);
    }
}
