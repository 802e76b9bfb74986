//! Simulated token log-probabilities: a plausible top-k distribution for
//! the first token of an answer, deterministic from the seed and the
//! request, so a logprob probe sees the same numbers run after run — until
//! a phase sets `logprob_shift` (a quiet swap: same text, model name and
//! fingerprint, the distribution moved) or `logprob_noise` (per-request
//! jitter, as batched GPU serving gives).

use super::rng::{Rng, hash_str, mix};

/// Tokens a chat answer commonly starts with: the alternatives to the
/// answer's own first token.
const ALTERNATIVES: [&str; 24] = [
    "The",
    "Yes",
    "No",
    "I",
    "You",
    "It",
    "A",
    "In",
    "Our",
    "Thank",
    "Sure",
    "Hello",
    "We",
    "This",
    "There",
    "As",
    "For",
    "Please",
    "To",
    "Refunds",
    "Unfortunately",
    "Of",
    "That",
    "Your",
];

/// The first token of `content` as the simulator tokenizes it: its first
/// word with the punctuation that follows, or the content itself.
pub fn first_token(content: &str) -> &str {
    let t = content.trim_start();
    let end = t
        .char_indices()
        .find(|(i, c)| {
            *i > 0 && (c.is_whitespace() || matches!(c, ',' | '.' | ':' | ';' | '!' | '?'))
        })
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    &t[..end]
}

/// Top-`k` (token, logprob) of the first position, best first. `key`
/// identifies the request (model and messages), `occurrence` its repeat
/// (used only by `noise`).
pub fn first_position(
    seed: u64,
    key: u64,
    first: &str,
    k: usize,
    shift: f64,
    noise: f64,
    occurrence: u64,
) -> Vec<(String, f64)> {
    let mut tokens: Vec<&str> = vec![first];
    tokens.extend(
        ALTERNATIVES
            .iter()
            .copied()
            .filter(|t| *t != first)
            .take(19),
    );
    let base = mix(seed, key);
    let logits: Vec<f64> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let h = hash_str(base, t);
            let mut own = Rng::new(h);
            let mut moved = Rng::new(mix(h, 0x5a1f7));
            let mut jitter = Rng::new(mix(h, occurrence.wrapping_add(1)));
            // The answer's own token leads by a clear margin.
            let level = if i == 0 { 3.0 } else { -0.3 * i as f64 };
            level + 0.6 * own.normal() + shift * moved.normal() + noise * jitter.normal()
        })
        .collect();
    let m = logits.iter().cloned().fold(f64::MIN, f64::max);
    let lse = m + logits.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    let mut out: Vec<(String, f64)> = tokens
        .iter()
        .zip(&logits)
        .map(|(t, x)| (t.to_string(), x - lse))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(k.clamp(1, 20));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_is_stable_and_a_shift_moves_it_without_changing_tokens() {
        let a = first_position(1, 42, "Refunds", 5, 0.0, 0.0, 0);
        assert_eq!(a, first_position(1, 42, "Refunds", 5, 0.0, 0.0, 7));
        assert_eq!(a[0].0, "Refunds");
        let total: f64 = a.iter().map(|x| x.1.exp()).sum();
        assert!(total <= 1.0 + 1e-9 && a[0].1 > -1.0, "{a:?}");
        let b = first_position(1, 42, "Refunds", 5, 0.2, 0.0, 0);
        assert_ne!(a, b);
        assert_eq!(
            b[0].0, "Refunds",
            "a slight shift keeps the answer's token on top"
        );
        let n1 = first_position(1, 42, "Refunds", 5, 0.0, 0.05, 1);
        let n2 = first_position(1, 42, "Refunds", 5, 0.0, 0.05, 2);
        assert_ne!(n1, n2);
        assert_eq!(first_token("  Refunds are accepted."), "Refunds");
        assert_eq!(first_token("Yes, within 30 days"), "Yes");
    }
}
