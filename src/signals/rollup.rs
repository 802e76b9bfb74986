//! Roll-ups as the detectors see them: per stream and hour, in memory.
//! Loaded once per evaluation (or once per backtest) from the store; the
//! detectors only add hours up, so their cost depends on hours and streams,
//! never on how many records those hours hold.

use std::collections::BTreeMap;

use super::stats::Moments;

/// 25-token bins; bin 63 holds everything longer.
pub const BINS: usize = 64;
pub const BIN_TOKENS: i64 = 25;

/// Counters of one stream-hour (`rollup_hourly`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourCounts {
    pub n: u64,
    pub refusals: u64,
    pub truncations: u64,
    pub tokens: Moments,
}

/// Embedding sum of one stream-hour (`rollup_embedding`, partial sums added).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingSum {
    pub n: u64,
    pub sum: Vec<f64>,
}

/// Everything the production detectors read about one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamRollups {
    pub hours: BTreeMap<i64, HourCounts>,
    pub length: BTreeMap<i64, [u64; BINS]>,
    /// judge → hour → score moments.
    pub scores: BTreeMap<String, BTreeMap<i64, Moments>>,
    pub embedding: BTreeMap<i64, EmbeddingSum>,
}

/// Sums `f` over the entries of `map` whose hour is in `[from, to)`.
pub fn sum_range<V, A: Default>(
    map: &BTreeMap<i64, V>,
    span: (i64, i64),
    mut f: impl FnMut(&mut A, &V),
) -> A {
    let mut acc = A::default();
    for (_, v) in map.range(span.0..span.1) {
        f(&mut acc, v);
    }
    acc
}

impl StreamRollups {
    pub fn counts(&self, span: (i64, i64)) -> HourCounts {
        sum_range(&self.hours, span, |a: &mut HourCounts, h| {
            a.n += h.n;
            a.refusals += h.refusals;
            a.truncations += h.truncations;
            a.tokens.add(h.tokens);
        })
    }

    pub fn histogram(&self, span: (i64, i64)) -> [u64; BINS] {
        let mut out = [0u64; BINS];
        for (_, bins) in self.length.range(span.0..span.1) {
            for (o, b) in out.iter_mut().zip(bins) {
                *o += b;
            }
        }
        out
    }

    pub fn embedding_sum(&self, span: (i64, i64)) -> EmbeddingSum {
        let mut out = EmbeddingSum::default();
        for (_, e) in self.embedding.range(span.0..span.1) {
            if out.sum.is_empty() {
                out.sum = vec![0.0; e.sum.len()];
            }
            if e.sum.len() != out.sum.len() {
                continue; // a change of embedder: dimensions do not mix
            }
            out.n += e.n;
            for (o, s) in out.sum.iter_mut().zip(&e.sum) {
                *o += s;
            }
        }
        out
    }
}

/// Which 25-token bin a length falls in.
pub fn length_bin(tokens: i64) -> usize {
    ((tokens.max(0) / BIN_TOKENS) as usize).min(BINS - 1)
}
