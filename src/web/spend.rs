//! Canary spend on the suite page: what the suite's cases and logprob probe
//! called over the last day, per target, priced where the config gives the
//! model's prices. A pure view of `Store::suite_spend`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::SuiteSpend;

/// One line of the spend table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendLine {
    pub part: String,
    pub target: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// `$0.0123`, or empty when the model has no price.
    pub cost: String,
}

/// The lines, then a total line (`part` = `total`) when there are several.
/// `prices`: model name → (USD per million input, output tokens).
pub fn lines(rows: &[SuiteSpend], prices: &BTreeMap<String, (f64, f64)>) -> Vec<SpendLine> {
    let mut out = Vec::new();
    let mut total = (0i64, 0i64, 0i64, None::<f64>);
    for r in rows {
        let usd = prices
            .get(&r.target)
            .map(|(i, o)| (r.input_tokens as f64 * i + r.output_tokens as f64 * o) / 1e6);
        total.0 += r.calls;
        total.1 += r.input_tokens;
        total.2 += r.output_tokens;
        if let Some(u) = usd {
            *total.3.get_or_insert(0.0) += u;
        }
        out.push(SpendLine {
            part: r.part.clone(),
            target: r.target.clone(),
            calls: r.calls,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost: usd.map(money).unwrap_or_default(),
        });
    }
    if out.len() > 1 {
        out.push(SpendLine {
            part: "total".into(),
            target: String::new(),
            calls: total.0,
            input_tokens: total.1,
            output_tokens: total.2,
            cost: total.3.map(money).unwrap_or_default(),
        });
    }
    out
}

/// Dollars to the cent, or to a hundredth of a cent below one cent.
pub(super) fn money(usd: f64) -> String {
    if usd < 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priced_targets_show_cost_and_unpriced_ones_do_not() {
        let rows = vec![
            SuiteSpend {
                part: "cases".into(),
                target: "live".into(),
                calls: 24,
                input_tokens: 24_000,
                output_tokens: 2_400,
            },
            SuiteSpend {
                part: "logprob_probe".into(),
                target: "pinned".into(),
                calls: 72,
                input_tokens: 1_000,
                output_tokens: 72,
            },
        ];
        let prices = BTreeMap::from([("live".to_string(), (2.5, 10.0))]);
        let l = lines(&rows, &prices);
        assert_eq!(l[0].cost, "$0.08"); // 0.06 + 0.024
        assert_eq!(l[1].cost, "");
        assert_eq!(l[2].part, "total");
        assert_eq!(l[2].calls, 96);
        assert_eq!(l[2].cost, "$0.08");
    }
}
