//! Request counters for `GET /_sim/stats` and occurrence indexes.
//!
//! Both are on the hot path of every request, so they avoid one global
//! lock: counters are atomics behind a read-mostly map, and occurrence
//! indexes live in sharded maps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What happened to one request. A chat answer can be refused, truncated
/// and drop facts at once; each counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refusal,
    Truncated,
    DroppedFacts,
    RateLimited,
    ServerError,
    Unavailable,
    Timeout,
    Malformed,
    Reset,
    Judge,
    JudgeMalformed,
    Embedding,
    BadRequest,
    Clarify,
}

impl Outcome {
    pub const ALL: [Outcome; 15] = [
        Outcome::Ok,
        Outcome::Refusal,
        Outcome::Truncated,
        Outcome::DroppedFacts,
        Outcome::RateLimited,
        Outcome::ServerError,
        Outcome::Unavailable,
        Outcome::Timeout,
        Outcome::Malformed,
        Outcome::Reset,
        Outcome::Judge,
        Outcome::JudgeMalformed,
        Outcome::Embedding,
        Outcome::BadRequest,
        Outcome::Clarify,
    ];

    /// The key in `/_sim/stats`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refusal => "refusal",
            Outcome::Truncated => "truncated",
            Outcome::DroppedFacts => "dropped_facts",
            Outcome::RateLimited => "429",
            Outcome::ServerError => "500",
            Outcome::Unavailable => "503",
            Outcome::Timeout => "timeout",
            Outcome::Malformed => "malformed",
            Outcome::Reset => "reset",
            Outcome::Judge => "judge",
            Outcome::JudgeMalformed => "judge_malformed",
            Outcome::Embedding => "embedding",
            Outcome::BadRequest => "bad_request",
            Outcome::Clarify => "clarify",
        }
    }
}

type Counters = [AtomicU64; Outcome::ALL.len() + 1];

/// More distinct model names than this are counted under `(other)`, so a
/// client cannot grow the map without bound.
const MAX_MODELS: usize = 1000;

/// Request counts per requested model and outcome.
#[derive(Debug, Default)]
pub struct Stats {
    models: RwLock<HashMap<String, Arc<Counters>>>,
}

impl Stats {
    fn counters(&self, model: &str) -> Arc<Counters> {
        if let Some(c) = self.models.read().expect("stats lock").get(model) {
            return c.clone();
        }
        let mut map = self.models.write().expect("stats lock");
        let key = if map.len() >= MAX_MODELS && !map.contains_key(model) {
            "(other)"
        } else {
            model
        };
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(std::array::from_fn(|_| AtomicU64::new(0))))
            .clone()
    }

    /// Counts one request of `model` with its outcomes.
    pub fn record(&self, model: &str, outcomes: &[Outcome]) {
        self.add(model, outcomes, true);
    }

    /// Counts more outcomes of a request already counted (a request that
    /// hung, then answered).
    pub fn record_more(&self, model: &str, outcomes: &[Outcome]) {
        self.add(model, outcomes, false);
    }

    fn add(&self, model: &str, outcomes: &[Outcome], new_request: bool) {
        let c = self.counters(model);
        if new_request {
            c[Outcome::ALL.len()].fetch_add(1, Ordering::Relaxed);
        }
        for o in outcomes {
            c[*o as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `{model: {"requests": n, outcome: n, …}}` plus totals under `"*"`.
    pub fn snapshot(&self) -> serde_json::Value {
        let map = self.models.read().expect("stats lock");
        let mut models = serde_json::Map::new();
        let mut totals = [0u64; Outcome::ALL.len() + 1];
        for (name, c) in map.iter() {
            let mut m = serde_json::Map::new();
            let n = c[Outcome::ALL.len()].load(Ordering::Relaxed);
            totals[Outcome::ALL.len()] += n;
            m.insert("requests".into(), n.into());
            for o in Outcome::ALL {
                let v = c[o as usize].load(Ordering::Relaxed);
                totals[o as usize] += v;
                m.insert(o.label().into(), v.into());
            }
            models.insert(name.clone(), m.into());
        }
        let mut t = serde_json::Map::new();
        t.insert("requests".into(), totals[Outcome::ALL.len()].into());
        for o in Outcome::ALL {
            t.insert(o.label().into(), totals[o as usize].into());
        }
        serde_json::json!({ "models": models, "totals": t })
    }
}

const SHARDS: usize = 16;
/// A shard forgets everything when it holds more distinct requests than
/// this; long runs of unique prompts then restart their indexes at 0,
/// which keeps memory bounded and does not matter for unique prompts.
const SHARD_CAP: usize = 200_000;

/// How many times each distinct request has been seen.
#[derive(Debug)]
pub struct Occurrences {
    shards: Vec<Mutex<HashMap<u64, u64>>>,
}

impl Default for Occurrences {
    fn default() -> Self {
        Occurrences {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Occurrences {
    /// The 0-based occurrence index of this request hash.
    pub fn next(&self, key: u64) -> u64 {
        let mut shard = self.shards[(key % SHARDS as u64) as usize]
            .lock()
            .expect("occurrence lock");
        if shard.len() >= SHARD_CAP && !shard.contains_key(&key) {
            shard.clear();
        }
        let slot = shard.entry(key).or_insert(0);
        let n = *slot;
        *slot += 1;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_counters() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        let s = Stats::default();
        s.record("m", &[Outcome::Refusal, Outcome::Truncated]);
        s.record("m", &[Outcome::Ok]);
        let v = s.snapshot();
        assert_eq!(v["models"]["m"]["requests"], 2);
        assert_eq!(v["models"]["m"]["refusal"], 1);
        assert_eq!(v["totals"]["ok"], 1);
        let o = Occurrences::default();
        assert_eq!((o.next(5), o.next(5), o.next(6)), (0, 1, 0));
    }
}
