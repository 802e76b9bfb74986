//! `/metrics` read with a Prometheus text-format parser.

use prometheus_parse::{Scrape, Value};

/// The daemon's exposition at `base`, parsed.
pub async fn scrape(base: &str) -> Scrape {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition")
}

/// Sum of the samples of `name` whose labels include `labels`.
pub fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        })
        .sum()
}
