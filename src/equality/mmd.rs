//! The equality test of one run: per case a two-sample MMD between live's
//! answers and the reference's under the n-gram kernel, calibrated by
//! permutations; the case p-values combined with Fisher's method; the run's
//! p-value turned into an e-value for the sequential alarm
//! (`signals::model_drift`).
//!
//! Validity: under "same model" a case's live and reference answers are
//! exchangeable, so the permutation p-value `(1 + #{T_b ≥ T}) / (B + 1)` is
//! super-uniform whatever the kernel; the cases are separate prompts with
//! separate calls, so their p-values are independent and Fisher's statistic
//! is at most χ²(2C) (discrete p-values only make it conservative).
//!
//! Why Fisher: a changed model moves many prompts a little, and Fisher's
//! product is the combination most powerful against such diffuse effects
//! (Bonferroni/min-p is best when one case moves a lot, and misses the
//! quiet swap); its independence assumption holds here by construction,
//! unlike for a Cauchy/harmonic-mean combination's use case of dependent
//! tests, which gives up power for robustness canaryd does not need.

use serde::{Deserialize, Serialize};

use super::kernel;

/// Permutations per case: the smallest p-value a case can reach is 1/1000.
pub const PERMUTATIONS: u32 = 999;
/// Cases shown as evidence.
pub const TOP_CASES: usize = 5;

/// One case's test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTest {
    pub case_id: String,
    /// Squared MMD (biased estimate) of live against reference, 0–2.
    pub mmd2: f64,
    pub p_value: f64,
    pub live_samples: usize,
    pub reference_samples: usize,
    /// The live answer most typical of live and least of the reference
    /// (largest witness value), and the converse: "after" and "before".
    pub live_example: String,
    pub reference_example: String,
}

/// One (target, reference) test of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTest {
    /// Fisher's combination of the case p-values.
    pub p_value: f64,
    /// ln of the e-value of `p_value` (see [`log_e_value`]).
    pub log_e: f64,
    /// Cases tested.
    pub cases: usize,
    /// The cases that moved most (smallest p, then largest MMD), at most
    /// [`TOP_CASES`].
    pub top: Vec<CaseTest>,
}

/// One case's samples.
pub struct CaseSamples<'a> {
    pub case_id: &'a str,
    pub live: Vec<&'a str>,
    pub reference: Vec<&'a str>,
}

/// Tests every case with at least 2 samples on each side; `None` if none has.
pub fn run_test(cases: &[CaseSamples<'_>], seed: u64, permutations: u32) -> Option<RunTest> {
    let mut tests: Vec<CaseTest> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let Some(t) = case_test(
            &c.live,
            &c.reference,
            mix(seed, i as u64 ^ hash_str(c.case_id)),
            permutations,
        ) else {
            continue;
        };
        tests.push(CaseTest {
            case_id: c.case_id.to_string(),
            mmd2: t.mmd2,
            p_value: t.p_value,
            live_samples: c.live.len(),
            reference_samples: c.reference.len(),
            live_example: c.live[t.live_example].to_string(),
            reference_example: c.reference[t.reference_example].to_string(),
        });
    }
    if tests.is_empty() {
        return None;
    }
    let ps: Vec<f64> = tests.iter().map(|t| t.p_value).collect();
    let p = fisher(&ps);
    let n = tests.len();
    tests.sort_by(|a, b| {
        a.p_value
            .total_cmp(&b.p_value)
            .then(b.mmd2.total_cmp(&a.mmd2))
            .then(a.case_id.cmp(&b.case_id))
    });
    tests.truncate(TOP_CASES);
    for t in &mut tests {
        t.live_example = clip(&t.live_example);
        t.reference_example = clip(&t.reference_example);
    }
    Some(RunTest {
        p_value: p,
        log_e: log_e_value(p),
        cases: n,
        top: tests,
    })
}

fn clip(s: &str) -> String {
    s.chars().take(600).collect()
}

/// The result of one case's permutation test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseResult {
    pub mmd2: f64,
    pub p_value: f64,
    pub live_example: usize,
    pub reference_example: usize,
}

/// MMD² of `live` against `reference`, with its permutation p-value over
/// `permutations` label shuffles drawn from `seed`. `None` when a side has
/// fewer than 2 answers.
pub fn case_test(
    live: &[&str],
    reference: &[&str],
    seed: u64,
    permutations: u32,
) -> Option<CaseResult> {
    let (k, m) = (live.len(), reference.len());
    if k < 2 || m < 2 {
        return None;
    }
    let all: Vec<&str> = live.iter().chain(reference).copied().collect();
    let n = all.len();
    let g = kernel::gram(&all);
    let row: Vec<f64> = (0..n).map(|i| g[i * n..(i + 1) * n].iter().sum()).collect();
    let total: f64 = row.iter().sum();
    let stat = |idx: &[usize]| -> f64 {
        let x = &idx[..k];
        let mut sxx = 0.0;
        for &i in x {
            for &j in x {
                sxx += g[i * n + j];
            }
        }
        let rx: f64 = x.iter().map(|&i| row[i]).sum();
        let sxy = rx - sxx;
        let syy = total - sxx - 2.0 * sxy;
        let (k, m) = (k as f64, m as f64);
        sxx / (k * k) + syy / (m * m) - 2.0 * sxy / (k * m)
    };
    let mut idx: Vec<usize> = (0..n).collect();
    let observed = stat(&idx);
    let mut rng = seed;
    let mut above = 0u32;
    for _ in 0..permutations {
        // Fisher–Yates on the first k positions is enough: only the split matters.
        for i in 0..k {
            let j = i + (next(&mut rng) % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        if stat(&idx) >= observed - 1e-12 {
            above += 1;
        }
    }
    let p = f64::from(1 + above) / f64::from(1 + permutations);
    // Witness: mean kernel to live minus mean kernel to the reference.
    let witness = |i: usize| -> f64 {
        let to_x: f64 = (0..k).filter(|&j| j != i).map(|j| g[i * n + j]).sum();
        let to_y: f64 = (k..n).filter(|&j| j != i).map(|j| g[i * n + j]).sum();
        let kx = (if i < k { k - 1 } else { k }) as f64;
        let ky = (if i < k { m } else { m - 1 }) as f64;
        to_x / kx.max(1.0) - to_y / ky.max(1.0)
    };
    let live_example = (0..k)
        .max_by(|&a, &b| witness(a).total_cmp(&witness(b)))
        .unwrap_or(0);
    let reference_example = (k..n)
        .min_by(|&a, &b| witness(a).total_cmp(&witness(b)))
        .map_or(0, |i| i - k);
    Some(CaseResult {
        mmd2: observed.max(0.0),
        p_value: p,
        live_example,
        reference_example,
    })
}

/// Fisher's combination: P(χ²(2C) ≥ −2 Σ ln pᵢ), exact for even degrees of
/// freedom (`e^{−x/2} Σ_{i<C} (x/2)^i / i!`), summed in log space.
pub fn fisher(ps: &[f64]) -> f64 {
    if ps.is_empty() {
        return 1.0;
    }
    let half: f64 = -ps.iter().map(|p| p.clamp(1e-300, 1.0).ln()).sum::<f64>();
    if half <= 0.0 {
        return 1.0;
    }
    let ln_half = half.ln();
    let mut terms = Vec::with_capacity(ps.len());
    let mut ln_fact = 0.0;
    for i in 0..ps.len() {
        if i > 0 {
            ln_fact += (i as f64).ln();
        }
        terms.push(i as f64 * ln_half - ln_fact);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ln_sum = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (-half + ln_sum).exp().clamp(0.0, 1.0)
}

/// ln of the mixture calibrator `∫₀¹ κ p^{κ−1} dκ = (1 − p + p ln p) / (p ln² p)`
/// (Vovk & Wang): an e-value (expectation ≤ 1 for any super-uniform p) that
/// needs no tuning of κ; it is ½ at p = 1 and about 1/(p ln² p) for small p.
pub fn log_e_value(p: f64) -> f64 {
    if p.is_nan() || p >= 1.0 - 1e-9 {
        return 0.5f64.ln();
    }
    let p = p.max(1e-300);
    let l = p.ln();
    ((1.0 - p + p * l) / (p * l * l)).ln()
}

/// SplitMix64 step: the test must replay exactly on every build.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes two values into a seed.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut s = a ^ b.rotate_left(17);
    next(&mut s)
}

/// FNV-1a of a string, for seeds.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_matches_known_values() {
        // One p: the combination is the p itself.
        assert!((fisher(&[0.03]) - 0.03).abs() < 1e-12);
        // Two p of 0.05: x = 11.98, P(χ²(4) ≥ x) = 0.01747.
        assert!((fisher(&[0.05, 0.05]) - 0.017_470).abs() < 1e-5);
        assert_eq!(fisher(&[1.0, 1.0]), 1.0);
        // Many small ones: tiny, and no NaN when it underflows.
        let p = fisher(&[1e-3; 20]);
        assert!(p > 0.0 && p < 1e-30, "{p}");
        let p = fisher(&[1e-3; 200]);
        assert!((0.0..1e-100).contains(&p), "{p}");
    }

    #[test]
    fn the_calibrator_is_an_e_value() {
        // E[e(U)] ≤ 1 for U uniform: midpoint rule over (0, 1).
        let n = 200_000;
        let mean: f64 = (0..n)
            .map(|i| log_e_value((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64;
        // The grid misses the mass below 1/(2n), which is 1/ln(2n).
        let tail = 1.0 / ((2 * n) as f64).ln();
        assert!(
            mean <= 1.0 && (mean + tail - 1.0).abs() < 0.02,
            "{mean} + {tail}"
        );
        assert!((log_e_value(1.0) - 0.5f64.ln()).abs() < 1e-12);
        assert!(log_e_value(1e-4) > 4.5 && log_e_value(1e-4) < 5.0);
    }

    #[test]
    fn same_answers_are_not_significant_and_different_ones_are() {
        let a = [
            "Refunds are accepted within 30 days of delivery.",
            "You can get a refund within 30 days of delivery.",
            "Refunds are possible for 30 days after delivery.",
            "Within 30 days of delivery, refunds are accepted.",
            "Refunds are accepted for 30 days from delivery.",
        ];
        let same: Vec<&str> = a.iter().chain(a.iter()).copied().collect();
        let t = case_test(&same[..5], &same[5..], 7, 999).unwrap();
        assert!(t.p_value > 0.2, "{t:?}");
        let other = [
            "Sure! Refunds get approved inside 30 days of delivery. Hope this helps.",
            "Good question. A refund is granted inside 30 days of delivery.",
            "Sure! Inside 30 days of delivery you get your refund. Hope this helps.",
            "Good question. Refunds get approved for 30 days after delivery.",
            "Sure! Refunds get approved for 30 days from delivery. Hope this helps.",
        ];
        let t = case_test(&other, &a, 7, 999).unwrap();
        assert!(t.p_value < 0.05, "{t:?}");
        assert!(t.mmd2 > 0.0);
        assert!(case_test(&other[..1], &a, 7, 999).is_none());
    }

    #[test]
    fn identical_constant_answers_give_p_one() {
        let x = ["The answer is 42."; 5];
        let t = case_test(&x, &x, 1, 99).unwrap();
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn the_run_test_is_deterministic_and_ranks_cases() {
        let a = [
            "alpha beta gamma",
            "alpha beta delta",
            "alpha beta gamma delta",
        ];
        let b = ["zeta eta theta", "zeta eta iota", "zeta eta theta iota"];
        let cases = vec![
            CaseSamples {
                case_id: "same",
                live: a.to_vec(),
                reference: a.to_vec(),
            },
            CaseSamples {
                case_id: "moved",
                live: b.to_vec(),
                reference: a.to_vec(),
            },
        ];
        let r1 = run_test(&cases, 42, 199).unwrap();
        let r2 = run_test(&cases, 42, 199).unwrap();
        assert_eq!(r1, r2);
        assert_eq!(r1.cases, 2);
        assert_eq!(r1.top[0].case_id, "moved");
        assert!(r1.top[0].live_example.starts_with("zeta"));
        assert!(r1.top[0].reference_example.starts_with("alpha"));
    }
}
