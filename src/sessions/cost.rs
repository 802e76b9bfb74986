//! The cost model for production records: per-model prices (the top-level
//! `prices:` map, then the `models:` entries, matched on the response's
//! model, then the requested one). A `cost_usd` sent by the application
//! always wins; a record of a model without a price costs nothing rather
//! than a guess.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::provider::ModelRef;
use crate::store::ResponseRow;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    #[serde(default)]
    pub output_cost_per_mtok: f64,
}

/// Prices by model id.
#[derive(Debug, Clone, Default)]
pub struct Prices(BTreeMap<String, Price>);

impl Prices {
    /// From the config's `models:` entries, then its `prices:` map (which
    /// wins).
    pub fn from_config(
        models: &BTreeMap<String, serde_saphyr::Spanned<ModelRef>>,
        prices: &BTreeMap<String, Price>,
    ) -> Prices {
        let mut m = BTreeMap::new();
        for (name, r) in models {
            let r = &r.value;
            let p = Price {
                input_cost_per_mtok: r.input_cost_per_mtok,
                output_cost_per_mtok: r.output_cost_per_mtok,
            };
            if p != Price::default() {
                m.insert(r.model.clone(), p);
                m.insert(name.clone(), p);
            }
        }
        for (model, p) in prices {
            m.insert(model.clone(), *p);
        }
        Prices(m)
    }

    /// The price of a response model, else of the requested model; a dated
    /// snapshot (`gpt-4o-2024-08-06`) falls back to its alias (`gpt-4o`).
    pub fn lookup(&self, response: Option<&str>, request: Option<&str>) -> Option<Price> {
        [response, request].into_iter().flatten().find_map(|m| {
            self.0.get(m).copied().or_else(|| {
                self.0
                    .iter()
                    .filter(|(k, _)| m.strip_prefix(k.as_str()).is_some_and(dated))
                    .max_by_key(|(k, _)| k.len())
                    .map(|(_, p)| *p)
            })
        })
    }

    /// Sets `cost_usd` on rows that did not bring one.
    pub fn apply(&self, rows: &mut [ResponseRow]) {
        if self.0.is_empty() {
            return;
        }
        for r in rows
            .iter_mut()
            .filter(|r| r.cost_usd.is_none() && !r.session_only)
        {
            if let Some(p) = self.lookup(r.response_model.as_deref(), r.request_model.as_deref()) {
                let input = r.input_tokens.unwrap_or(0) as f64;
                let output = r.output_tokens as f64;
                r.cost_usd =
                    Some((input * p.input_cost_per_mtok + output * p.output_cost_per_mtok) / 1e6);
            }
        }
    }
}

/// `-2024-08-06`, `-20241022`: a snapshot suffix, not another model (`-mini`).
fn dated(suffix: &str) -> bool {
    suffix.strip_prefix('-').is_some_and(|s| {
        s.len() >= 4
            && s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_digit() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_cost_wins_and_snapshots_use_their_alias_price() {
        let mut m = BTreeMap::new();
        m.insert(
            "gpt-4o".to_string(),
            Price {
                input_cost_per_mtok: 2.5,
                output_cost_per_mtok: 10.0,
            },
        );
        let prices = Prices(m);
        let row = |resp: &str, cost: Option<f64>| ResponseRow {
            response_model: Some(resp.into()),
            input_tokens: Some(1_000_000),
            output_tokens: 100_000,
            cost_usd: cost,
            ..Default::default()
        };
        let mut rows = vec![
            row("gpt-4o-2024-08-06", None),
            row("gpt-4o", Some(0.5)),
            row("gpt-4o-mini", None),
            row("llama-3", None),
        ];
        prices.apply(&mut rows);
        assert_eq!(rows[0].cost_usd, Some(3.5));
        assert_eq!(rows[1].cost_usd, Some(0.5), "the application's cost wins");
        assert_eq!(rows[2].cost_usd, None, "gpt-4o-mini is another model");
        assert_eq!(rows[3].cost_usd, None, "no price, no guess");
    }
}
