//! Routing: which channels an alert goes to.
//!
//! Matchers are exact strings or globs with `*` and `?`. Every route whose
//! matchers all match contributes its channels (no "first match wins": a
//! critical alert can go to both the team channel and the pager). With no
//! routes at all, every alert goes to every channel, so a config with one
//! channel needs no routing section.

use std::collections::BTreeSet;

use super::settings::AlertsConfig;

/// What a matcher is compared with.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub rule: &'a str,
    pub stream: &'a str,
    pub severity: &'a str,
}

/// `*` matches any run of characters, `?` one character; anything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// An optional matcher: absent matches everything.
pub fn matches(matcher: Option<&str>, value: &str) -> bool {
    matcher.is_none_or(|m| glob_match(m, value))
}

/// The channels an alert with these labels is sent to, in name order.
pub fn channels_for(cfg: &AlertsConfig, labels: Labels<'_>) -> BTreeSet<String> {
    if cfg.routes.is_empty() {
        return cfg.channels.keys().cloned().collect();
    }
    cfg.routes
        .iter()
        .filter(|r| {
            matches(r.rule.as_deref(), labels.rule)
                && matches(r.stream.as_deref(), labels.stream)
                && matches(r.severity.as_deref(), labels.severity)
        })
        .flat_map(|r| r.channels.iter().cloned())
        .filter(|c| cfg.channels.contains_key(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::settings::{ChannelConfig, RouteConfig, WebhookConfig};

    #[test]
    fn globs() {
        assert!(glob_match("support-*", "support-bot"));
        assert!(glob_match("*", ""));
        assert!(glob_match("judge_?core_drop", "judge_score_drop"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("support-*", "sales-bot"));
        assert!(!glob_match("critical", "criticalx"));
        assert!(glob_match("suite:*", "suite:refunds"));
    }

    #[test]
    fn every_matching_route_contributes() {
        let hook = |u: &str| {
            ChannelConfig::Webhook(WebhookConfig {
                url: u.into(),
                headers: Default::default(),
                timeout: crate::duration::HumanDuration(std::time::Duration::from_secs(1)),
            })
        };
        let mut cfg = AlertsConfig::default();
        cfg.channels.insert("team".into(), hook("http://a"));
        cfg.channels.insert("pager".into(), hook("http://b"));
        let all = channels_for(
            &cfg,
            Labels {
                rule: "model_change",
                stream: "s",
                severity: "info",
            },
        );
        assert_eq!(all.len(), 2, "no routes: every channel");
        cfg.routes = vec![
            RouteConfig {
                rule: None,
                stream: Some("support-*".into()),
                severity: None,
                channels: vec!["team".into()],
            },
            RouteConfig {
                rule: None,
                stream: None,
                severity: Some("critical".into()),
                channels: vec!["pager".into()],
            },
        ];
        let l = |stream, severity| Labels {
            rule: "judge_score_drop",
            stream,
            severity,
        };
        assert_eq!(
            channels_for(&cfg, l("support-bot", "warning"))
                .into_iter()
                .collect::<Vec<_>>(),
            ["team"]
        );
        assert_eq!(channels_for(&cfg, l("support-bot", "critical")).len(), 2);
        assert!(channels_for(&cfg, l("sales", "info")).is_empty());
    }
}
