//! The `sessions:` section of the config: the agent-session detectors
//! (`tool_call_loop`, `session_budget`), idle expiry and the kill-switch hook.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::HumanDuration;
use crate::secret::SecretRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Seconds between looks at changed sessions; 0 turns the session
    /// detectors off on this replica. Short by default: a loop costs money
    /// every minute it runs.
    pub every_secs: u64,
    /// A session with no new record for this long is expired: its summary
    /// stays stored, its alerts resolve.
    pub session_idle: HumanDuration,
    /// Most recent events of a session the detectors read (and the timeline
    /// an alert shows at most).
    pub max_events: usize,
    /// Sessions looked at per pass; the rest wait for the next pass.
    pub max_sessions_per_pass: usize,
    pub tool_call_loop: LoopConfig,
    /// Budgets every stream gets unless `streams` overrides them.
    pub budget: BudgetConfig,
    /// Per-stream budgets (keys not given fall back to `budget`).
    pub streams: BTreeMap<String, StreamBudget>,
    /// `spend_rate`: tokens or cost per hour of a stream and its top users
    /// against their own baseline.
    pub spend_rate: crate::signals::spend_rate::SpendRateConfig,
    /// The kill-switch: an HTTP POST for `tool_call_loop`/`session_budget`
    /// alerts to the application's orchestrator.
    pub hook: Option<HookConfig>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            every_secs: 5,
            session_idle: HumanDuration(Duration::from_secs(30 * 60)),
            max_events: 200,
            max_sessions_per_pass: 2_000,
            tool_call_loop: LoopConfig::default(),
            budget: BudgetConfig::default(),
            streams: BTreeMap::new(),
            spend_rate: Default::default(),
            hook: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// The same (tool, normalised arguments) this many times in one session.
    pub repeats: usize,
    /// The same for calls whose arguments were not recorded (OTLP
    /// instrumentations send them only when opted in): the tool name alone
    /// is weaker evidence, since a tool called often with different
    /// arguments looks the same.
    pub repeats_without_arguments: usize,
    /// An A→B→A→B… hand-off between two agents of this many turns.
    pub agent_cycle_turns: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            repeats: 5,
            repeats_without_arguments: 15,
            agent_cycle_turns: 5,
        }
    }
}

/// Session budgets; `0` (or absent duration) means no limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub max_calls: u64,
    pub max_tokens: u64,
    pub max_cost_usd: f64,
    pub max_duration: Option<HumanDuration>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_calls: 200,
            max_tokens: 2_000_000,
            max_cost_usd: 20.0,
            max_duration: Some(HumanDuration(Duration::from_secs(4 * 3600))),
        }
    }
}

/// A stream's override of [`BudgetConfig`], key by key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamBudget {
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    pub max_duration: Option<HumanDuration>,
}

impl SessionsConfig {
    /// The budget that applies to `stream`.
    pub fn budget_for(&self, stream: &str) -> BudgetConfig {
        let d = &self.budget;
        match self.streams.get(stream) {
            None => d.clone(),
            Some(s) => BudgetConfig {
                max_calls: s.max_calls.unwrap_or(d.max_calls),
                max_tokens: s.max_tokens.unwrap_or(d.max_tokens),
                max_cost_usd: s.max_cost_usd.unwrap_or(d.max_cost_usd),
                max_duration: s.max_duration.or(d.max_duration),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Where to POST.
    pub url: String,
    /// Key of the `X-Canaryd-Signature: sha256=<hex>` HMAC of the body.
    pub secret: SecretRef,
}
