//! `logprob_shift`: the next-token log-probabilities of a target's logprob
//! probe (`canary::probe`) moved against the target's own history — a
//! model swapped behind an unchanged name and fingerprint (a quantization,
//! a fine-tune, another serving stack) that still gives the same answers.
//!
//! The test, per (suite, target), at each *look*:
//! - Each usable run (every probe answered with logprobs, same requests as
//!   the latest run) is a vector: for each probe, the logprob of every token
//!   seen in the pool's top-k (at most `2k` per probe, the most likely on
//!   average), a token missing from a run's top-k imputed by that run's
//!   k-th logprob (an upper bound of its true value).
//! - The last `W` runs are tested against the `BASELINE_RUNS` runs before
//!   them with a permutation test on `T = Σ_d |mean_test,d − mean_base,d|`:
//!   under "no change" the runs are exchangeable, so the rank of the
//!   observed split among random splits is uniform whatever the provider's
//!   noise (deterministic servers, where every run is identical, give
//!   `T = 0` for every split and never fire). Monte Carlo p-value
//!   `(1 + #{T_perm ≥ T_obs}) / (N + 1)`, valid at any N.
//! - `W` runs over four scales, 4, 8, 16 and 24 runs: a large shift shows in
//!   4 runs, a small one against noisy logprobs needs the average of 24 —
//!   still within a day of hourly runs, and at every scale the window just
//!   after a change is tested against a clean baseline.
//!
//! Continuous monitoring: at most one look per target per clock hour (the
//! first run of each hour), each at level `α = 1 / (8,766 × 4)`: by
//! Bonferroni over the looks and scales, the expected number of false alarms
//! per target-year is at most one, whatever the schedule. A look also needs
//! the shift to reach [`MIN_SHIFT_NATS`] (a mean over the tested tokens),
//! so float-rounding-level changes of a serving stack do not page.
//!
//! The finding is an event, like `model_change`: firing while a look in the
//! current window fired (the earliest such look is the evidence), ok once
//! the window has passed it. After a change the new runs enter the baseline
//! and the test stops firing by itself.

use std::collections::{BTreeMap, BTreeSet};

use super::finding::{Rule, Severity};
use super::verdict::{Decision, Subject, Verdict, verdict};
use super::window::{HOUR_MS, Windows, contains};

/// One stored probe, as the detector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeObs {
    pub run_id: i64,
    pub target: String,
    pub probe_id: String,
    pub prompt_hash: String,
    /// ok | unsupported | provider_error
    pub status: String,
    /// The first position's alternatives, best first.
    pub top: Vec<(String, f64)>,
    pub at_ms: i64,
}

/// Window sizes (runs) tested at every look.
pub const SCALES: [usize; 4] = [4, 8, 16, 24];
/// Runs before the window that form the baseline.
pub const BASELINE_RUNS: usize = 48;
/// Looks a year: one an hour.
pub const LOOKS_PER_YEAR: f64 = 8766.0;
/// The smallest mean |Δlogprob| over the tested tokens that can fire, in
/// nats: above the rounding of logprobs as APIs print them, far below any
/// real change of weights.
pub const MIN_SHIFT_NATS: f64 = 0.01;
/// Runs the store loads per target: the baseline, the largest window and
/// a day of looks.
pub const HISTORY_RUNS: usize = BASELINE_RUNS + 24 + 30;

/// The per-look, per-scale level.
pub fn alpha() -> f64 {
    1.0 / (LOOKS_PER_YEAR * SCALES.len() as f64)
}

/// One run's probes: probe id → (request hash, top-k).
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: i64,
    pub at_ms: i64,
    pub probes: BTreeMap<String, (String, Vec<(String, f64)>)>,
}

/// Verdicts for one suite, one per target with probes.
pub fn logprob_shift(suite: &str, obs: &[ProbeObs], w: &Windows) -> Vec<Verdict> {
    let stream = format!("suite:{suite}");
    let mut by_target: BTreeMap<&str, Vec<&ProbeObs>> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.at_ms <= w.now_ms) {
        by_target.entry(&o.target).or_default().push(o);
    }
    by_target
        .into_iter()
        .map(|(target, rows)| target_verdict(&stream, target, &rows, w))
        .collect()
}

fn target_verdict(stream: &str, target: &str, rows: &[&ProbeObs], w: &Windows) -> Verdict {
    let mut runs: BTreeMap<i64, (i64, Vec<&ProbeObs>)> = BTreeMap::new();
    for o in rows {
        let e = runs.entry(o.run_id).or_insert((o.at_ms, vec![]));
        e.0 = e.0.min(o.at_ms);
        e.1.push(o);
    }
    let subject = |samples: u64, baseline_samples: u64| Subject {
        rule: Rule::LogprobShift,
        stream,
        dimension: Some(target),
        at_ms: w.now_ms,
        samples,
        baseline_samples,
    };
    // The latest run says whether the provider returns logprobs at all.
    if let Some((_, (_, latest))) = runs.iter().next_back()
        && latest.iter().all(|o| o.status == "unsupported")
    {
        return Verdict::insufficient(
            subject(0, 0),
            MIN_SHIFT_NATS,
            format!("{target}: logprobs unsupported by the provider (the probe is not tested)"),
        );
    }
    let usable: Vec<Run> = runs
        .into_iter()
        .filter(|(_, (_, ps))| !ps.is_empty() && ps.iter().all(|o| o.status == "ok"))
        .map(|(run_id, (at_ms, ps))| Run {
            run_id,
            at_ms,
            probes: ps
                .iter()
                .map(|o| (o.probe_id.clone(), (o.prompt_hash.clone(), o.top.clone())))
                .collect(),
        })
        .collect();
    // Only runs that sent exactly the latest run's requests are comparable.
    let chain: Vec<&Run> = match usable.last() {
        None => vec![],
        Some(last) => {
            let sig = signature(last);
            let mut c: Vec<&Run> = usable
                .iter()
                .rev()
                .take_while(|r| signature(r) == sig)
                .collect();
            c.reverse();
            c
        }
    };
    let need = BASELINE_RUNS + SCALES[0];
    if chain.len() < need {
        return Verdict::warming_up(
            subject(0, chain.len() as u64),
            MIN_SHIFT_NATS,
            format!(
                "{target}: logprob probe has {} comparable runs, needs {need} ({} more)",
                chain.len(),
                need - chain.len()
            ),
        );
    }
    let a = alpha();
    let largest = SCALES[SCALES.len() - 1];
    // Looks: the first run of each clock hour. Scanned oldest first: once a
    // look fires, the looks whose pools still hold that change are skipped,
    // so one change is one event, placed at its first detection.
    let mut event: Option<(usize, usize, Look)> = None;
    let mut skip_until = 0usize;
    let mut last_look: Option<Look> = None;
    let mut looks = 0u64;
    for e in (need - 1)..chain.len() {
        let r = chain[e];
        let first_of_hour = chain[e - 1].at_ms / HOUR_MS != r.at_ms / HOUR_MS;
        if e < skip_until || !first_of_hour {
            continue;
        }
        let in_window = contains(w.current, r.at_ms);
        looks += u64::from(in_window);
        for &scale in SCALES.iter() {
            if e + 1 < BASELINE_RUNS + scale {
                break;
            }
            let pool = &chain[e + 1 - BASELINE_RUNS - scale..=e];
            let look = test_pool(pool, scale, a, r.run_id as u64 ^ scale as u64);
            if look.p <= a && look.shift >= MIN_SHIFT_NATS {
                event = Some((e, scale, look));
                skip_until = e + BASELINE_RUNS + largest;
                break;
            }
            if scale == SCALES[0] && in_window {
                last_look = Some(look);
            }
        }
    }
    let past = event
        .as_ref()
        .filter(|(e, _, _)| !contains(w.current, chain[*e].at_ms))
        .map(|(e, _, l)| (chain[*e].at_ms, l.clone()));
    let fired = event.filter(|(e, _, _)| contains(w.current, chain[*e].at_ms));
    if fired.is_none()
        && last_look.is_none()
        && let Some((at, look)) = past
    {
        // The window's looks still hold the last change in their pools.
        return decide(
            subject(0, BASELINE_RUNS as u64),
            &Look { p: 1.0, ..look },
            false,
            format!(
                "{target}: logprobs moved at {}, before the window; the new runs are becoming the baseline",
                super::fmt_time(at)
            ),
        );
    }
    match (fired, last_look) {
        (Some((e, scale, look)), _) => {
            let pool = &chain[e + 1 - BASELINE_RUNS - scale..=e];
            let ev = evidence(pool, scale, 3);
            decide(
                subject(scale as u64, BASELINE_RUNS as u64),
                &look,
                true,
                format!(
                    "{target}: next-token logprobs moved, found at {} (mean |Δ| {:.3} nats over {} tokens, last {scale} runs vs {BASELINE_RUNS} before, p={:.1e} ≤ {:.1e}); {ev}",
                    super::fmt_time(chain[e].at_ms),
                    look.shift,
                    look.dims,
                    look.p,
                    a
                ),
            )
        }
        (None, Some(look)) => decide(
            subject(SCALES[0] as u64, BASELINE_RUNS as u64),
            &look,
            false,
            format!(
                "{target}: logprob probe steady ({looks} looks in the window; latest mean |Δ| {:.3} nats, p={:.2})",
                look.shift, look.p
            ),
        ),
        (None, None) => Verdict::insufficient(
            subject(0, chain.len() as u64),
            MIN_SHIFT_NATS,
            format!("{target}: no logprob probe run in the window"),
        ),
    }
}

fn decide(s: Subject<'_>, look: &Look, fired: bool, summary: String) -> Verdict {
    verdict(
        s,
        Decision {
            value: look.shift,
            baseline: 0.0,
            threshold: MIN_SHIFT_NATS,
            p_value: Some(look.p),
            severity: Severity::Warning,
            window_effect: false,
            direct: fired,
            resolve: !fired,
            alpha: 0.0,
            summary,
        },
    )
}

fn signature(r: &Run) -> Vec<(&str, &str)> {
    r.probes
        .iter()
        .map(|(id, (h, _))| (id.as_str(), h.as_str()))
        .collect()
}

/// The outcome of one permutation test.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    /// Monte Carlo permutation p-value (an upper bound once it stopped early).
    pub p: f64,
    /// Mean |Δ| over the tested tokens, in nats.
    pub shift: f64,
    pub dims: usize,
}

/// The tested coordinates of a pool: (probe, token), and each run's vector.
pub fn vectors(pool: &[&Run]) -> (Vec<(String, String)>, Vec<Vec<f64>>) {
    let mut dims: Vec<(String, String)> = Vec::new();
    let probes: BTreeSet<&String> = pool.iter().flat_map(|r| r.probes.keys()).collect();
    let mut cols: Vec<Vec<f64>> = vec![vec![]; pool.len()];
    for p in probes {
        let tops: Vec<&[(String, f64)]> = pool
            .iter()
            .map(|r| r.probes.get(p).map(|(_, t)| t.as_slice()).unwrap_or(&[]))
            .collect();
        let k = tops.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let floor = |t: &[(String, f64)]| t.last().map(|x| x.1).unwrap_or(-100.0);
        let value = |t: &[(String, f64)], tok: &str| {
            t.iter()
                .find(|x| x.0 == tok)
                .map(|x| x.1)
                .unwrap_or_else(|| floor(t))
        };
        let mut tokens: BTreeSet<&str> = BTreeSet::new();
        for t in &tops {
            tokens.extend(t.iter().map(|x| x.0.as_str()));
        }
        let mut ranked: Vec<(&str, f64)> = tokens
            .into_iter()
            .map(|tok| {
                let m = tops.iter().map(|t| value(t, tok)).sum::<f64>() / tops.len() as f64;
                (tok, m)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        ranked.truncate(2 * k);
        for (tok, _) in ranked {
            dims.push((p.clone(), tok.to_string()));
            for (i, t) in tops.iter().enumerate() {
                cols[i].push(value(t, tok));
            }
        }
    }
    (dims, cols)
}

/// The permutation test of the last `w` runs of `pool` against the rest,
/// at level `alpha`, with a deterministic stream of permutations from `seed`.
pub fn test_pool(pool: &[&Run], w: usize, alpha: f64, seed: u64) -> Look {
    let (dims, x) = vectors(pool);
    test_vectors(&x, w, alpha, seed, dims.len())
}

/// [`test_pool`] on vectors (the last `w` rows are the window).
pub fn test_vectors(x: &[Vec<f64>], w: usize, alpha: f64, seed: u64, dims: usize) -> Look {
    let n = x.len();
    if dims == 0 || w == 0 || w >= n {
        return Look {
            p: 1.0,
            shift: 0.0,
            dims,
        };
    }
    let total: Vec<f64> = (0..dims).map(|d| x.iter().map(|r| r[d]).sum()).collect();
    let stat = |idx: &[usize]| -> f64 {
        let mut s = 0.0;
        for d in 0..dims {
            let sw: f64 = idx.iter().map(|&i| x[i][d]).sum();
            let mw = sw / w as f64;
            let mb = (total[d] - sw) / (n - w) as f64;
            s += (mw - mb).abs();
        }
        s
    };
    let observed: Vec<usize> = (n - w..n).collect();
    let t_obs = stat(&observed);
    let shift = t_obs / dims as f64;
    let tol = 1e-9 * (1.0 + t_obs);
    // Enough permutations that p ≤ alpha allows three exceedances: with
    // fewer, Monte Carlo noise alone would miss real changes whose exact p
    // is just below alpha.
    let perms = ((4.0 / alpha).ceil() as usize).max(99);
    // Exceedances beyond which p cannot reach alpha: stop there.
    let limit = (alpha * (perms + 1) as f64).floor() as usize;
    let mut rng = SplitMix(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut exceed = 0usize;
    let mut done = 0usize;
    while done < perms {
        for i in 0..w {
            let j = i + (rng.next_u64() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        done += 1;
        if stat(&idx[..w]) >= t_obs - tol {
            exceed += 1;
            if exceed >= limit.max(1) {
                break;
            }
        }
    }
    let p = if done < perms {
        // Stopped early, where p can no longer reach alpha: the running
        // estimate, for display (always above alpha).
        ((1 + exceed) as f64 / (done + 1) as f64).clamp(alpha * 1.0001, 1.0)
    } else {
        (1 + exceed) as f64 / (perms + 1) as f64
    };
    Look { p, shift, dims }
}

/// Which tokens moved most, per probe (at most `max_probes`): "probe:
/// 'tok' −0.11 → −0.52; before [a −0.1, b −2.3, …] after […]".
pub fn evidence(pool: &[&Run], w: usize, max_probes: usize) -> String {
    let (dims, x) = vectors(pool);
    let n = x.len();
    let mean = |rows: std::ops::Range<usize>, d: usize| {
        let len = rows.len().max(1) as f64;
        rows.map(|i| x[i][d]).sum::<f64>() / len
    };
    let mut per_probe: BTreeMap<&str, Vec<Moved<'_>>> = BTreeMap::new();
    for (d, (p, tok)) in dims.iter().enumerate() {
        per_probe.entry(p.as_str()).or_default().push((
            tok.as_str(),
            mean(0..n - w, d),
            mean(n - w..n, d),
        ));
    }
    let mut moved: Vec<(&str, f64, Vec<Moved<'_>>)> = per_probe
        .into_iter()
        .map(|(p, toks)| {
            let m = toks.iter().map(|t| (t.2 - t.1).abs()).fold(0.0, f64::max);
            (p, m, toks)
        })
        .collect();
    moved.sort_by(|a, b| b.1.total_cmp(&a.1));
    let q = |s: &str| format!("{s:?}");
    moved
        .iter()
        .take(max_probes)
        .map(|(p, _, toks)| {
            let big = toks
                .iter()
                .max_by(|a, b| (a.2 - a.1).abs().total_cmp(&(b.2 - b.1).abs()))
                .expect("a probe has tokens");
            let top = |after: bool| {
                let mut t: Vec<(&str, f64)> = toks
                    .iter()
                    .map(|t| (t.0, if after { t.2 } else { t.1 }))
                    .collect();
                t.sort_by(|a, b| b.1.total_cmp(&a.1));
                t.iter()
                    .take(3)
                    .map(|(tok, v)| format!("{} {v:.2}", q(tok)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "{p}: {} {:.2} → {:.2} (before [{}], after [{}])",
                q(big.0),
                big.1,
                big.2,
                top(false),
                top(true)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A token with its mean logprob before and after.
type Moved<'a> = (&'a str, f64, f64);

/// A tiny deterministic generator: the permutations of a look replay exactly.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn normal(&mut self) -> f64 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = ((self.next_u64() >> 11) as f64) / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Seeded probe histories for tests, the power measurement and benches:
/// `probes` prompts over a 20-token vocabulary with fixed logits, each run
/// adding `noise` (sd, nats) to every logit, and from run `change_at` on a
/// fixed per-token `shift` direction of sd `shift`, top-`k` kept.
pub mod synth {
    use super::*;

    pub struct Spec {
        pub seed: u64,
        pub probes: usize,
        pub k: usize,
        pub noise: f64,
        pub shift: f64,
        pub change_at: usize,
        pub runs: usize,
        /// Milliseconds between runs.
        pub every_ms: i64,
        pub start_ms: i64,
    }

    pub fn observations(s: &Spec, target: &str) -> Vec<ProbeObs> {
        const VOCAB: usize = 20;
        let mut base = SplitMix(s.seed);
        let logits: Vec<Vec<f64>> = (0..s.probes)
            .map(|_| {
                (0..VOCAB)
                    .map(|v| -0.4 * v as f64 + base.normal())
                    .collect()
            })
            .collect();
        let dir: Vec<Vec<f64>> = (0..s.probes)
            .map(|_| (0..VOCAB).map(|_| base.normal()).collect())
            .collect();
        let mut noise = SplitMix(s.seed ^ 0x5eed);
        let mut out = Vec::new();
        for r in 0..s.runs {
            for p in 0..s.probes {
                let z: Vec<f64> = (0..VOCAB)
                    .map(|v| {
                        logits[p][v]
                            + s.noise * noise.normal()
                            + if r >= s.change_at {
                                s.shift * dir[p][v]
                            } else {
                                0.0
                            }
                    })
                    .collect();
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
                let mut top: Vec<(String, f64)> = z
                    .iter()
                    .enumerate()
                    .map(|(v, x)| (format!("t{v}"), x - lse))
                    .collect();
                top.sort_by(|a, b| b.1.total_cmp(&a.1));
                top.truncate(s.k);
                out.push(ProbeObs {
                    run_id: r as i64 + 1,
                    target: target.into(),
                    probe_id: format!("p{p}"),
                    prompt_hash: "h".into(),
                    status: "ok".into(),
                    top,
                    at_ms: s.start_ms + r as i64 * s.every_ms,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::synth::{Spec, observations};
    use super::*;
    use crate::signals::{DetectorConfig, Status};

    const START: i64 = 1_767_225_600_000;

    fn spec(noise: f64, shift: f64, change_at: usize, runs: usize) -> Spec {
        Spec {
            seed: 7,
            probes: 5,
            k: 5,
            noise,
            shift,
            change_at,
            runs,
            every_ms: HOUR_MS,
            start_ms: START,
        }
    }

    fn at_run(obs: &[ProbeObs], run: usize) -> (Vec<ProbeObs>, Windows) {
        let now = START + run as i64 * HOUR_MS + 60_000;
        let w = Windows::new(now, &DetectorConfig::default());
        (obs.iter().filter(|o| o.at_ms <= now).cloned().collect(), w)
    }

    #[test]
    fn a_shift_is_found_and_an_unchanged_target_is_not() {
        let obs = observations(&spec(0.02, 0.3, 80, 90), "live");
        let (o, w) = at_run(&obs, 79);
        let v = &logprob_shift("s", &o, &w)[0];
        assert_eq!(v.finding.status, Status::Ok, "{}", v.finding.summary);
        let (o, w) = at_run(&obs, 85);
        let v = &logprob_shift("s", &o, &w)[0];
        assert_eq!(v.finding.status, Status::Firing, "{}", v.finding.summary);
        assert_eq!(v.finding.rule, Rule::LogprobShift);
        assert_eq!(v.finding.dimension.as_deref(), Some("live"));
        assert!(
            v.finding.summary.contains("before ["),
            "{}",
            v.finding.summary
        );
        // A day later the event has left the window.
        let obs = observations(&spec(0.02, 0.3, 80, 120), "live");
        let (o, w) = at_run(&obs, 119);
        assert_eq!(logprob_shift("s", &o, &w)[0].finding.status, Status::Ok);
    }

    #[test]
    fn a_deterministic_server_never_fires_until_it_changes() {
        let obs = observations(&spec(0.0, 0.05, 70, 80), "live");
        let (o, w) = at_run(&obs, 69);
        assert_eq!(logprob_shift("s", &o, &w)[0].finding.status, Status::Ok);
        let (o, w) = at_run(&obs, 75);
        assert_eq!(logprob_shift("s", &o, &w)[0].finding.status, Status::Firing);
    }

    #[test]
    fn a_young_target_warms_up_and_an_unsupported_one_says_so() {
        let obs = observations(&spec(0.02, 0.0, 0, 10), "live");
        let (o, w) = at_run(&obs, 9);
        let v = &logprob_shift("s", &o, &w)[0];
        assert_eq!(v.finding.status, Status::WarmingUp);
        let mut o = o;
        for x in o.iter_mut().filter(|x| x.run_id == 10) {
            x.status = "unsupported".into();
            x.top.clear();
        }
        let v = &logprob_shift("s", &o, &w)[0];
        assert_eq!(v.finding.status, Status::InsufficientData);
        assert!(v.finding.summary.contains("unsupported"));
    }

    #[test]
    fn a_changed_probe_request_starts_a_new_history() {
        let mut obs = observations(&spec(0.0, 1.0, 70, 80), "live");
        for o in obs.iter_mut().filter(|o| o.run_id > 70) {
            o.prompt_hash = "other".into();
        }
        let (o, w) = at_run(&obs, 79);
        assert_eq!(
            logprob_shift("s", &o, &w)[0].finding.status,
            Status::WarmingUp
        );
    }

    #[test]
    fn single_blips_do_not_fire() {
        let mut obs = observations(&spec(0.01, 0.0, 0, 80), "live");
        for o in obs.iter_mut().filter(|o| o.run_id == 78) {
            for t in &mut o.top {
                t.1 -= 1.0;
            }
        }
        let (o, w) = at_run(&obs, 79);
        assert_eq!(logprob_shift("s", &o, &w)[0].finding.status, Status::Ok);
    }

    /// A year of hourly runs of an unchanged noisy target: the budget is one
    /// false alarm per target-year. Each look is evaluated once, as the
    /// daemon sees it when that run is the latest.
    #[test]
    fn a_year_of_an_unchanged_target_stays_within_the_budget() {
        let alarms = false_alarms(1, 0.1, 2, 8766);
        // The budget is an expectation of at most one; a Poisson count of
        // mean one exceeds 2 with probability 8 %.
        assert!(alarms <= 2, "{alarms} false alarms in a year");
    }

    /// Looks × scales that fire over `hours` hourly runs of an unchanged target.
    fn false_alarms(seed: u64, noise: f64, probes: usize, hours: usize) -> usize {
        let runs = hours + BASELINE_RUNS + 24;
        let mut alarms = 0;
        {
            let mut s = spec(noise, 0.0, usize::MAX, runs);
            s.seed = seed;
            s.probes = probes;
            let obs = observations(&s, "live");
            let runs_v: Vec<Run> = to_runs(&obs);
            let refs: Vec<&Run> = runs_v.iter().collect();
            let a = alpha();
            for e in (BASELINE_RUNS + 24 - 1)..refs.len() {
                for &scale in SCALES.iter() {
                    let pool = &refs[e + 1 - BASELINE_RUNS - scale..=e];
                    let l = test_pool(pool, scale, a, e as u64 ^ scale as u64);
                    if l.p <= a && l.shift >= MIN_SHIFT_NATS {
                        alarms += 1;
                    }
                }
            }
        }
        alarms
    }

    /// The false-alarm rate over ten target-years per noise level.
    /// `cargo test --lib logprob_shift::tests::false_alarm_rate -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement: prints false alarms per target-year for BENCHMARKS.md"]
    fn false_alarm_rate() {
        for noise in [0.02, 0.3] {
            let total: usize = (0..10).map(|y| false_alarms(100 + y, noise, 2, 8766)).sum();
            println!("noise {noise}: {total} false alarms in 10 target-years");
        }
    }

    pub(super) fn to_runs(obs: &[ProbeObs]) -> Vec<Run> {
        let mut m: BTreeMap<i64, Run> = BTreeMap::new();
        for o in obs {
            m.entry(o.run_id)
                .or_insert_with(|| Run {
                    run_id: o.run_id,
                    at_ms: o.at_ms,
                    probes: BTreeMap::new(),
                })
                .probes
                .insert(o.probe_id.clone(), (o.prompt_hash.clone(), o.top.clone()));
        }
        m.into_values().collect()
    }

    /// Power of the probe on the simulated quiet swap: the fraction of
    /// changes detected within 24 hourly runs, by prompts and shift/noise.
    /// `cargo test --lib logprob_shift::tests::power -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement: prints the power table for BENCHMARKS.md"]
    fn power() {
        let trials = 20;
        let a = alpha();
        println!("prompts k noise shift detected_within_24h median_runs_to_detect");
        for &noise in &[0.05, 0.2] {
            for &ratio in &[0.5, 1.0, 2.0] {
                for &probes in &[1usize, 3, 5] {
                    let shift = ratio * noise;
                    let mut hits = 0;
                    let mut delays = vec![];
                    for t in 0..trials {
                        let change = BASELINE_RUNS + 24;
                        let s = Spec {
                            seed: 1000 + t,
                            probes,
                            k: 5,
                            noise,
                            shift,
                            change_at: change,
                            runs: change + 24,
                            every_ms: HOUR_MS,
                            start_ms: START,
                        };
                        let runs_v = to_runs(&observations(&s, "live"));
                        let refs: Vec<&Run> = runs_v.iter().collect();
                        'looks: for e in change..refs.len() {
                            for &scale in SCALES.iter() {
                                let pool = &refs[e + 1 - BASELINE_RUNS - scale..=e];
                                let l = test_pool(pool, scale, a, e as u64 ^ scale as u64);
                                if l.p <= a && l.shift >= MIN_SHIFT_NATS {
                                    hits += 1;
                                    delays.push(e + 1 - change);
                                    break 'looks;
                                }
                            }
                        }
                    }
                    delays.sort();
                    println!(
                        "{probes} 5 {noise} {shift:.3} {:.2} {}",
                        hits as f64 / trials as f64,
                        delays
                            .get(delays.len() / 2)
                            .map(|d| d.to_string())
                            .unwrap_or("-".into())
                    );
                }
            }
        }
    }

    #[test]
    fn vectors_impute_a_missing_token_with_the_run_floor() {
        let mk = |top: Vec<(&str, f64)>| Run {
            run_id: 1,
            at_ms: 0,
            probes: [(
                "p".to_string(),
                (
                    "h".to_string(),
                    top.into_iter().map(|(t, v)| (t.to_string(), v)).collect(),
                ),
            )]
            .into(),
        };
        let a = mk(vec![("x", -0.1), ("y", -2.0)]);
        let b = mk(vec![("x", -0.2), ("z", -3.0)]);
        let (dims, v) = vectors(&[&a, &b]);
        let z = dims.iter().position(|d| d.1 == "z").unwrap();
        assert_eq!(v[0][z], -2.0);
        assert_eq!(v[1][z], -3.0);
    }
}
