//! The statistics the detectors need, written out so they have no
//! dependency and can be tested against published values: normal, Student t
//! and χ² distributions, Welch's t test, the two-proportion z test, Fisher's
//! exact test and Benjamini–Hochberg false-discovery control.

use std::f64::consts::PI;

/// ln Γ(x) for x > 0 (Lanczos, g = 7; ~1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |ε| < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// P(Z ≤ z) for a standard normal Z.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Regularised incomplete beta I_x(a, b) (continued fraction, Lentz).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - inc_beta(b, a, 1.0 - x);
    }
    let tiny = 1e-300;
    let mut f = 1.0;
    let mut c = 1.0;
    let mut d = 0.0;
    for i in 0..400 {
        let m = (i / 2) as f64;
        let num = if i == 0 {
            1.0
        } else if i % 2 == 0 {
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m))
        } else {
            -((a + m) * (a + b + m) * x) / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))
        };
        d = 1.0 + num * d;
        if d.abs() < tiny {
            d = tiny;
        }
        d = 1.0 / d;
        c = 1.0 + num / c;
        if c.abs() < tiny {
            c = tiny;
        }
        let cd = c * d;
        f *= cd;
        if (1.0 - cd).abs() < 1e-14 {
            break;
        }
    }
    ln_front.exp() * (f - 1.0) / a
}

/// P(T > t) for Student's t with `df` degrees of freedom (upper tail).
pub fn t_sf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, x);
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// Regularised lower incomplete gamma P(a, x).
pub fn inc_gamma_lower(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x < a + 1.0 {
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        // Continued fraction for Q, then P = 1 − Q.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        1.0 - (-x + a * x.ln() - ln_gamma(a)).exp() * h
    }
}

/// P(X > x) for χ² with `k` degrees of freedom.
pub fn chi2_sf(x: f64, k: f64) -> f64 {
    (1.0 - inc_gamma_lower(k / 2.0, x / 2.0)).max(0.0)
}

/// The (1 − p) quantile of χ²(k): the x with P(X > x) = p (bisection).
pub fn chi2_isf(p: f64, k: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, k.max(1.0));
    while chi2_sf(hi, k) > p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if chi2_sf(mid, k) > p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Summary of one sample: count, mean and (unbiased) variance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub sum: f64,
    pub sumsq: f64,
}

impl Moments {
    pub fn add(&mut self, o: Moments) {
        self.n += o.n;
        self.sum += o.sum;
        self.sumsq += o.sumsq;
    }
    pub fn mean(&self) -> f64 {
        if self.n > 0.0 {
            self.sum / self.n
        } else {
            f64::NAN
        }
    }
    /// Unbiased variance; 0 with fewer than two samples.
    pub fn var(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        ((self.sumsq - self.sum * self.sum / self.n) / (self.n - 1.0)).max(0.0)
    }
}

/// Welch's t test that `a`'s mean is below `b`'s: one-sided p-value.
pub fn welch_less(a: Moments, b: Moments) -> f64 {
    let (va, vb) = (a.var() / a.n, b.var() / b.n);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return if a.mean() < b.mean() { 0.0 } else { 1.0 };
    }
    let t = (a.mean() - b.mean()) / se2.sqrt();
    let df = se2 * se2
        / (va * va / (a.n - 1.0).max(1.0) + vb * vb / (b.n - 1.0).max(1.0)).max(f64::MIN_POSITIVE);
    1.0 - t_sf(t, df)
}

/// Two-sided p-value that k1/n1 and k2/n2 come from one rate: the pooled
/// two-proportion z test, or Fisher's exact test when an expected count is
/// below 5 (where the normal approximation is poor).
pub fn two_proportions(k1: u64, n1: u64, k2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let n = (n1 + n2) as f64;
    let k = (k1 + k2) as f64;
    let expected_min = [
        n1 as f64 * k / n,
        n1 as f64 * (n - k) / n,
        n2 as f64 * k / n,
        n2 as f64 * (n - k) / n,
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    if expected_min < 5.0 {
        return fisher_exact(k1, n1 - k1, k2, n2 - k2);
    }
    let p = k / n;
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = (k1 as f64 / n1 as f64 - k2 as f64 / n2 as f64) / se;
    (2.0 * normal_cdf(-z.abs())).min(1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// Fisher's exact test on the 2×2 table [[a, b], [c, d]], two-sided (sum of
/// the probabilities of all tables at most as likely as the observed one).
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let (r1, c1, n) = (a + b, a + c, a + b + c + d);
    let lo = c1.saturating_sub(c + d);
    let hi = r1.min(c1);
    let denom = ln_choose(n, c1);
    let lp = |x: u64| ln_choose(r1, x) + ln_choose(n - r1, c1 - x) - denom;
    let observed = lp(a);
    let mut p = 0.0;
    for x in lo..=hi {
        let l = lp(x);
        if l <= observed + 1e-7 {
            p += l.exp();
        }
    }
    p.min(1.0)
}

/// Benjamini–Hochberg: which of `p` are discoveries at false-discovery rate
/// `alpha` (same order as `p`). NaN p-values are never discoveries.
pub fn benjamini_hochberg(p: &[f64], alpha: f64) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = idx.len() as f64;
    let mut cutoff = 0;
    for (rank, &i) in idx.iter().enumerate() {
        if p[i] <= alpha * (rank + 1) as f64 / m {
            cutoff = rank + 1;
        }
    }
    let mut out = vec![false; p.len()];
    for &i in &idx[..cutoff] {
        out[i] = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn distributions_match_published_values() {
        close(normal_cdf(1.959_964), 0.975, 1e-6);
        close(normal_cdf(-2.575_829), 0.005, 1e-6);
        close(t_sf(2.228, 10.0), 0.025, 1e-4); // t table, df 10
        close(t_sf(-1.0, 5.0), 1.0 - 0.181_609, 1e-5);
        close(chi2_sf(3.841_459, 1.0), 0.05, 1e-6);
        close(chi2_sf(37.566, 20.0), 0.01, 1e-4);
        close(chi2_isf(0.01, 9.0), 21.666, 1e-3);
        close(ln_gamma(10.0), (362_880f64).ln(), 1e-10);
    }

    #[test]
    fn fisher_matches_the_tea_tasting_table() {
        // Fisher's lady tasting tea: [[3,1],[1,3]] two-sided p = 0.4857.
        close(fisher_exact(3, 1, 1, 3), 0.485_714, 1e-5);
        close(fisher_exact(0, 10, 10, 0), 1.082_5e-5, 1e-8);
    }

    #[test]
    fn welch_and_two_proportions() {
        let m = |n: f64, mean: f64, sd: f64| Moments {
            n,
            sum: n * mean,
            sumsq: (n - 1.0) * sd * sd + n * mean * mean,
        };
        // Drop of 0.5 at sd 1 with 200 each side: t ≈ -5.
        assert!(welch_less(m(200.0, 3.5, 1.0), m(200.0, 4.0, 1.0)) < 1e-5);
        assert!(welch_less(m(200.0, 4.0, 1.0), m(200.0, 4.0, 1.0)) > 0.4);
        close(two_proportions(50, 1000, 50, 1000), 1.0, 1e-9);
        assert!(two_proportions(100, 1000, 50, 1000) < 1e-4);
        // Small counts go to Fisher.
        close(two_proportions(3, 4, 1, 4), 0.485_714, 1e-5);
    }

    #[test]
    fn bh_rejects_only_below_the_step_line() {
        let p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205];
        let r = benjamini_hochberg(&p, 0.05);
        assert_eq!(r, [true, true, false, false, false, false, false, false]);
        assert_eq!(benjamini_hochberg(&[0.01, f64::NAN], 0.05), [true, false]);
    }
}
