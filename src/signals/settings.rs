//! The `detectors:` section of the config. Every threshold a detector uses
//! lives here with the documented default, so `canaryd backtest --config`
//! can tune it against recorded history before it goes live.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Length of the current window, in hours.
    pub window_hours: u32,
    /// Length of the baseline before the window, in days.
    pub baseline_days: u32,
    /// Seconds between evaluations in the daemon; 0 turns evaluation off
    /// on this replica (status pages and ingest keep working).
    pub every_secs: u64,
    /// False-discovery rate controlled (Benjamini–Hochberg) across the
    /// canary pass-rate window tests evaluated together.
    pub alpha: f64,
    /// An open alert resolves once its effect, over the last
    /// `resolve_after_hours`, is below this fraction of its threshold
    /// (hysteresis: it fires at the threshold and resolves at half of it).
    pub resolve_level: f64,
    /// Hours the effect must have stayed below the resolve level, measured
    /// over that span (extended back until it holds `min_samples`).
    pub resolve_after_hours: u32,
    /// Standard errors the baseline is moved towards the alternative in the
    /// sequential charts, so its own estimation error is not evidence.
    pub baseline_z: f64,
    /// Compare each hour with the baseline hours of its own day class (UTC
    /// weekend or weekday), so a weekly rhythm is not a change.
    pub weekly: bool,
    /// Hours with data a baseline needs before its signal leaves warm-up.
    pub min_baseline_hours: u32,
    pub judge_score_drop: ScoreDropConfig,
    /// `judge_drift`: the judges' own anchors (see `judge_drift.rs`).
    pub judge_drift: super::judge_drift::JudgeDriftConfig,
    pub refusal_rate_shift: RateConfig,
    pub truncation_rate: RateConfig,
    pub length_drift: LengthConfig,
    pub embedding_drift: EmbeddingConfig,
    pub canary_regression: CanaryConfig,
    pub sequential: SequentialConfig,
    pub health: HealthWeights,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window_hours: 24,
            baseline_days: 7,
            every_secs: 300,
            alpha: 0.01,
            resolve_level: 0.5,
            resolve_after_hours: 6,
            baseline_z: 1.0,
            weekly: true,
            min_baseline_hours: 24,
            judge_score_drop: ScoreDropConfig::default(),
            judge_drift: Default::default(),
            refusal_rate_shift: RateConfig {
                min_abs_change: 0.02,
                min_samples: 100,
                both_directions: true,
            },
            truncation_rate: RateConfig {
                min_abs_change: 0.02,
                min_samples: 100,
                both_directions: false,
            },
            length_drift: LengthConfig::default(),
            embedding_drift: EmbeddingConfig::default(),
            canary_regression: CanaryConfig::default(),
            sequential: SequentialConfig::default(),
            health: HealthWeights::default(),
        }
    }
}

/// `judge_score_drop`: mean drop ≥ `min_drop` and Welch's t p < alpha.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreDropConfig {
    /// Points on the judge's scale (default 1–5).
    pub min_drop: f64,
    /// Scores needed in each of window and baseline (≈140 gives 80 % power
    /// for a 0.3 drop at σ≈1).
    pub min_samples: u64,
}

impl Default for ScoreDropConfig {
    fn default() -> Self {
        Self {
            min_drop: 0.3,
            min_samples: 30,
        }
    }
}

/// `refusal_rate_shift` and `truncation_rate`: two-proportion z test
/// (Fisher's exact test when an expected count is below 5) and a minimum
/// absolute change of the rate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    pub min_abs_change: f64,
    pub min_samples: u64,
    /// Fire on a fall as well as a rise.
    pub both_directions: bool,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            min_abs_change: 0.02,
            min_samples: 100,
            both_directions: true,
        }
    }
}

/// `length_drift`: KL(current ‖ baseline) over 25-token bins ≥ `min_kl`
/// and the G-test critical value χ²(k−1, 1−α)/(2·n_eff).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthConfig {
    pub min_kl: f64,
    pub min_samples: u64,
    /// Pseudo-count added to every bin of both histograms (add-0.5).
    pub smoothing: f64,
    /// Bins with fewer pooled records than this are merged into neighbours.
    pub min_bin_count: u64,
}

impl Default for LengthConfig {
    fn default() -> Self {
        Self {
            min_kl: 0.15,
            min_samples: 100,
            smoothing: 0.5,
            min_bin_count: 10,
        }
    }
}

/// `embedding_drift`: centroid cosine < `max_cosine`, and lower than the
/// no-drift noise floor allows at these sample sizes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingConfig {
    pub max_cosine: f64,
    pub min_samples: u64,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            max_cosine: 0.82,
            min_samples: 50,
        }
    }
}

/// `canary_regression`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// A case "passed in its recent runs" when it passed this many runs in a row before failing.
    pub recent_passes: u32,
    /// Pass-rate drop (absolute) between the baseline and the window that fires.
    pub min_pass_rate_drop: f64,
    /// Agreement-with-pinned drop (absolute) that fires.
    pub min_agreement_drop: f64,
    /// Cases failing more often than this in the baseline are flaky: their
    /// single failures do not fire, only the pass rate does.
    pub max_flaky_rate: f64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            recent_passes: 3,
            min_pass_rate_drop: 0.1,
            min_agreement_drop: 0.2,
            max_flaky_rate: 0.1,
        }
    }
}

/// Sequential detection (CUSUM of per-hour log-likelihood ratios) beside
/// the window tests: reacts within hours to a step of the configured size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequentialConfig {
    /// `false` turns off the production detectors' alarms (they still
    /// report their values).
    pub enabled: bool,
    /// The false-alarm budget: hours between false alarms **per stream**,
    /// all of its charts together (default one year). A CUSUM of hourly
    /// log-likelihood ratios restarts at most once an hour, and by Ville's
    /// inequality each restart crosses h with probability at most e^−h, so
    /// with m charts h = ln(arl_hours · m) (Bonferroni; the delay grows only
    /// with the logarithm of m).
    pub arl_hours: f64,
    /// A fixed threshold instead of the one derived from `arl_hours`.
    pub h: Option<f64>,
    /// Charts of one stream (set by `evaluate`, not configurable).
    #[serde(skip)]
    pub charts: usize,
    /// Hours of history the CUSUM is run over (it restarts from zero there;
    /// the baseline ends where this span begins).
    pub lookback_hours: u32,
    /// Length shift, in baseline standard deviations of the length, a
    /// length CUSUM is tuned to.
    pub length_shift_sd: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            arl_hours: 24.0 * 365.0,
            h: None,
            charts: 1,
            lookback_hours: 48,
            length_shift_sd: 0.3,
        }
    }
}

impl SequentialConfig {
    /// The CUSUM alarm threshold.
    pub fn threshold(&self) -> f64 {
        self.h
            .unwrap_or_else(|| (self.arl_hours.max(1.0) * self.charts.max(1) as f64).ln())
    }
}

/// Weights of the health score: each firing detector takes its weight off
/// 100 (warning counts in full, info not at all); an "ok" one takes nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthWeights {
    pub judge_score_drop: f64,
    pub refusal_rate_shift: f64,
    pub length_drift: f64,
    pub embedding_drift: f64,
    pub canary_regression: f64,
    pub model_change: f64,
    pub truncation_rate: f64,
    pub model_drift: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        Self {
            judge_score_drop: 30.0,
            refusal_rate_shift: 20.0,
            length_drift: 10.0,
            embedding_drift: 15.0,
            canary_regression: 30.0,
            model_change: 5.0,
            truncation_rate: 15.0,
            model_drift: 15.0,
        }
    }
}

impl HealthWeights {
    pub fn of(&self, rule: super::Rule) -> f64 {
        use super::Rule::*;
        match rule {
            JudgeScoreDrop => self.judge_score_drop,
            RefusalRateShift => self.refusal_rate_shift,
            LengthDrift => self.length_drift,
            EmbeddingDrift => self.embedding_drift,
            CanaryRegression => self.canary_regression,
            // A quiet swap is a model change the provider did not report.
            ModelChange | LogprobShift => self.model_change,
            TruncationRate => self.truncation_rate,
            ModelDrift => self.model_drift,
            // Session alerts are about one session, not the stream's health.
            ToolCallLoop | SessionBudget | SpendRate => 0.0,
            // A judge's own subject (`judge:<name>`), not a product stream.
            JudgeDrift => 0.0,
        }
    }
}
