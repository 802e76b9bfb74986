//! Roll-ups maintained as data arrives, aggregated in memory per batch so a
//! batch costs one upsert per (stream, hour) and per (stream, hour, bin)
//! touched, whatever its size.
//!
//! Semantics (what the detectors read):
//! - `rollup_hourly`: per stream and hour of the record's `ts_ms`, `n`
//!   records, `refusals`, `truncations` (finish reason `length` or
//!   `max_tokens`), and the sum and sum of squares of `output_tokens`.
//! - `rollup_length`: the output-token histogram, bins of [`BIN_TOKENS`]
//!   tokens (`bin = tokens / 25`), bin [`MAX_BIN`] holding everything longer.
//! - `rollup_scores`: per stream, judge and hour, `n`, sum and sum of
//!   squares of valid scores (judge errors are not scores and are not here).
//! - `rollup_embedding`: insert-only partial sums, one row per (stream,
//!   hour, dims) per write batch; readers add the rows up.

use std::collections::BTreeMap;

use super::ResponseRow;
use crate::signals::stats::Moments;

/// Width of a length bin in tokens.
pub const BIN_TOKENS: i64 = 25;
/// The last bin; it holds every longer answer.
pub const MAX_BIN: i64 = 63;
const HOUR_MS: i64 = 3_600_000;

/// Start of the UTC hour holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The length bin of an answer of `tokens` output tokens.
pub fn length_bin(tokens: i64) -> i64 {
    (tokens.max(0) / BIN_TOKENS).min(MAX_BIN)
}

/// True for finish reasons that mean "cut off at the token limit".
pub fn is_truncation(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("length" | "max_tokens" | "MAX_TOKENS"))
}

/// Counters of one (stream, hour).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hourly {
    pub n: i64,
    pub refusals: i64,
    pub truncations: i64,
    pub tokens_sum: f64,
    pub tokens_sumsq: f64,
}

/// The per-record signals the hourly and length roll-ups count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub refusal: bool,
    pub tokens: i64,
}

impl Signals {
    /// The signals of a stored record whose empty output is filled later
    /// by a text with `text`'s signals. A refusal flag already set can only
    /// have come from a filter stop (the empty output classified as
    /// nothing), so it stays; a token count already set came from the
    /// span's usage, which is what the provider billed, so it stays too.
    pub fn with_output(self, text: Signals) -> Signals {
        Signals {
            refusal: self.refusal || text.refusal,
            tokens: if self.tokens > 0 {
                self.tokens
            } else {
                text.tokens
            },
        }
    }
}

/// Everything one batch adds to the roll-ups. Keys are ordered so that
/// concurrent writers lock rows in the same order and cannot deadlock.
#[derive(Debug, Default)]
pub struct BatchRollup {
    pub hourly: BTreeMap<(String, i64), Hourly>,
    pub length: BTreeMap<(String, i64, i64), i64>,
    /// (stream, judge, hour) → the detectors' own moments (a count kept as
    /// `f64` there; stored as an integer).
    pub scores: BTreeMap<(String, String, i64), Moments>,
    /// (stream, hour, dims) → (n, sums)
    pub embedding: BTreeMap<(String, i64, i64), (i64, Vec<f64>)>,
}

impl BatchRollup {
    /// Adds one stored response (and its precomputed scores and embedding).
    pub fn add_response(&mut self, r: &ResponseRow) {
        let hour = hour_of(r.ts_ms);
        let h = self.hourly.entry((r.stream.clone(), hour)).or_default();
        let t = r.output_tokens as f64;
        h.n += 1;
        h.refusals += i64::from(r.refusal);
        h.truncations += i64::from(is_truncation(r.finish_reason.as_deref()));
        h.tokens_sum += t;
        h.tokens_sumsq += t * t;
        *self
            .length
            .entry((r.stream.clone(), hour, length_bin(r.output_tokens)))
            .or_default() += 1;
        for (judge, score) in &r.scores {
            self.add_score(&r.stream, judge, r.ts_ms, *score);
        }
        if let Some(bytes) = &r.embedding {
            self.add_embedding(&r.stream, r.ts_ms, &embedding_from_bytes(bytes));
        }
    }

    /// Moves one already counted record of `stream` at `ts_ms` from the
    /// signals `old` to `new`: its hour keeps its count, the refusal and
    /// token sums and the length bins change by the difference.
    pub fn move_response(&mut self, stream: &str, ts_ms: i64, old: Signals, new: Signals) {
        if old == new {
            return;
        }
        let hour = hour_of(ts_ms);
        let h = self.hourly.entry((stream.to_string(), hour)).or_default();
        h.refusals += i64::from(new.refusal) - i64::from(old.refusal);
        let (o, n) = (old.tokens as f64, new.tokens as f64);
        h.tokens_sum += n - o;
        h.tokens_sumsq += n * n - o * o;
        let (ob, nb) = (length_bin(old.tokens), length_bin(new.tokens));
        if ob != nb {
            *self
                .length
                .entry((stream.to_string(), hour, ob))
                .or_default() -= 1;
            *self
                .length
                .entry((stream.to_string(), hour, nb))
                .or_default() += 1;
        }
    }

    pub fn add_score(&mut self, stream: &str, judge: &str, ts_ms: i64, score: f64) {
        let m = self
            .scores
            .entry((stream.to_string(), judge.to_string(), hour_of(ts_ms)))
            .or_default();
        m.add(Moments {
            n: 1.0,
            sum: score,
            sumsq: score * score,
        });
    }

    pub fn add_embedding(&mut self, stream: &str, ts_ms: i64, v: &[f32]) {
        if v.is_empty() {
            return;
        }
        let e = self
            .embedding
            .entry((stream.to_string(), hour_of(ts_ms), v.len() as i64))
            .or_insert_with(|| (0, vec![0.0; v.len()]));
        e.0 += 1;
        for (s, x) in e.1.iter_mut().zip(v) {
            *s += f64::from(*x);
        }
    }
}

/// Adds `$scores` (a `BTreeMap<(stream, judge, hour), Moments>`) to
/// `rollup_scores` on the executor `$ex` (a transaction of either backend).
/// A macro because the body must be type-checked once per backend.
macro_rules! upsert_score_rollups {
    ($ex:expr, $scores:expr) => {{
        let scores: Vec<_> = $scores.iter().collect();
        for chunk in scores.chunks(500) {
            let mut qb =
                sqlx::QueryBuilder::new("INSERT INTO rollup_scores (stream, judge, hour_ms, n, sum, sumsq) ");
            qb.push_values(chunk, |mut b, ((stream, judge, hour), m)| {
                b.push_bind(stream)
                    .push_bind(judge)
                    .push_bind(*hour)
                    .push_bind(m.n as i64)
                    .push_bind(m.sum)
                    .push_bind(m.sumsq);
            });
            qb.push(
                " ON CONFLICT (stream, judge, hour_ms) DO UPDATE SET n = rollup_scores.n + excluded.n, \
                 sum = rollup_scores.sum + excluded.sum, sumsq = rollup_scores.sumsq + excluded.sumsq",
            );
            qb.build().execute($ex).await?;
        }
    }};
}
pub(crate) use upsert_score_rollups;

/// Adds `$hourly` (a `BTreeMap<(stream, hour), Hourly>`, counts that may be
/// negative for a record moved by [`BatchRollup::move_response`]) to
/// `rollup_hourly` on the executor `$ex`. A macro for the same reason as
/// [`upsert_score_rollups`].
macro_rules! upsert_hourly_rollups {
    ($ex:expr, $hourly:expr) => {{
        let hourly: Vec<_> = $hourly.iter().collect();
        for chunk in hourly.chunks(500) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO rollup_hourly (stream, hour_ms, n, refusals, truncations, tokens_sum, tokens_sumsq) ",
            );
            qb.push_values(chunk, |mut b, ((stream, hour), h)| {
                b.push_bind(stream)
                    .push_bind(*hour)
                    .push_bind(h.n)
                    .push_bind(h.refusals)
                    .push_bind(h.truncations)
                    .push_bind(h.tokens_sum)
                    .push_bind(h.tokens_sumsq);
            });
            qb.push(
                " ON CONFLICT (stream, hour_ms) DO UPDATE SET n = rollup_hourly.n + excluded.n, \
                 refusals = rollup_hourly.refusals + excluded.refusals, \
                 truncations = rollup_hourly.truncations + excluded.truncations, \
                 tokens_sum = rollup_hourly.tokens_sum + excluded.tokens_sum, \
                 tokens_sumsq = rollup_hourly.tokens_sumsq + excluded.tokens_sumsq",
            );
            qb.build().execute($ex).await?;
        }
    }};
}
pub(crate) use upsert_hourly_rollups;

/// Adds `$length` (a `BTreeMap<(stream, hour, bin), n>`) to `rollup_length`.
macro_rules! upsert_length_rollups {
    ($ex:expr, $length:expr) => {{
        let length: Vec<_> = $length.iter().collect();
        for chunk in length.chunks(500) {
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO rollup_length (stream, hour_ms, bin, n) ");
            qb.push_values(chunk, |mut b, ((stream, hour, bin), n)| {
                b.push_bind(stream).push_bind(*hour).push_bind(*bin).push_bind(**n);
            });
            qb.push(" ON CONFLICT (stream, hour_ms, bin) DO UPDATE SET n = rollup_length.n + excluded.n");
            qb.build().execute($ex).await?;
        }
    }};
}
pub(crate) use upsert_length_rollups;

/// Little-endian f64 bytes, the `rollup_embedding.sum` format.
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`f64_bytes`].
pub fn f64_from_bytes(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// An embedding as stored in `responses.embedding`: little-endian f32.
pub fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`embedding_bytes`].
pub fn embedding_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_hours_and_moments() {
        assert_eq!(length_bin(0), 0);
        assert_eq!(length_bin(24), 0);
        assert_eq!(length_bin(25), 1);
        assert_eq!(length_bin(1_000_000), MAX_BIN);
        assert_eq!(hour_of(3_600_000 * 5 + 17), 3_600_000 * 5);
        assert_eq!(hour_of(-1), -3_600_000);
        let mut b = BatchRollup::default();
        for (tokens, refusal, fr) in [(10, true, "stop"), (30, false, "length")] {
            b.add_response(&ResponseRow {
                stream: "s".into(),
                ts_ms: 10,
                output_tokens: tokens,
                refusal,
                finish_reason: Some(fr.into()),
                scores: vec![("g".into(), 4.0)],
                embedding: Some(embedding_bytes(&[1.0, 2.0])),
                ..Default::default()
            });
        }
        let h = &b.hourly[&("s".to_string(), 0)];
        assert_eq!((h.n, h.refusals, h.truncations), (2, 1, 1));
        assert_eq!((h.tokens_sum, h.tokens_sumsq), (40.0, 1000.0));
        assert_eq!(b.length.len(), 2);
        assert_eq!(
            b.scores[&("s".into(), "g".into(), 0)],
            Moments {
                n: 2.0,
                sum: 8.0,
                sumsq: 32.0
            }
        );
        assert_eq!(b.embedding[&("s".into(), 0, 2)], (2, vec![2.0, 4.0]));
        assert_eq!(f64_from_bytes(&f64_bytes(&[1.5, -2.0])), vec![1.5, -2.0]);
    }

    #[test]
    fn a_record_moved_to_its_late_output_changes_only_its_differences() {
        let empty = Signals::default();
        let text = Signals {
            refusal: true,
            tokens: 60,
        };
        // An empty output classified as nothing takes the text's signals; a
        // filter stop stays a refusal and billed usage stays the count.
        assert_eq!(empty.with_output(text), text);
        let billed = Signals {
            refusal: false,
            tokens: 7,
        };
        assert_eq!(
            billed.with_output(text),
            Signals {
                refusal: true,
                tokens: 7
            }
        );
        let mut b = BatchRollup::default();
        b.move_response("s", 10, empty, text);
        let h = &b.hourly[&("s".to_string(), 0)];
        assert_eq!((h.n, h.refusals, h.truncations), (0, 1, 0));
        assert_eq!((h.tokens_sum, h.tokens_sumsq), (60.0, 3600.0));
        assert_eq!(b.length[&("s".to_string(), 0, 0)], -1);
        assert_eq!(b.length[&("s".to_string(), 0, 2)], 1);
        let mut same = BatchRollup::default();
        same.move_response("s", 10, text, text);
        assert!(same.hourly.is_empty() && same.length.is_empty());
    }
}
