//! Deterministic embeddings in which similar texts are close.
//!
//! Feature hashing: every word (stemmed) and every pair of adjacent words
//! adds ±weight to one of `dims` coordinates chosen by a salted hash; the
//! vector is then L2-normalised. Texts sharing words share coordinates, so
//! cosine similarity tracks word overlap, and a phase that changes what a
//! model says moves the centroid of its answers. A new `embedding_salt` is
//! a different embedder: every vector moves.

use super::rng::StableHasher;
use super::text;

/// The embedding of `input`, `dims` long, unit length.
pub fn embed(input: &str, dims: usize, salt: u64) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0f32; dims];
    let words: Vec<String> = text::words(input)
        .map(|w| text::stem(&w).to_string())
        .collect();
    let mut add = |feature: &[&str], weight: f32| {
        let mut h = StableHasher::new(salt);
        for part in feature {
            h.write_str(part);
        }
        let x = h.finish();
        let i = (x % dims as u64) as usize;
        let sign = if (x >> 63) == 1 { -1.0 } else { 1.0 };
        v[i] += sign * weight;
    };
    for (i, w) in words.iter().enumerate() {
        let weight = if text::is_stopword(w) { 0.25 } else { 1.0 };
        add(&[w], weight);
        if let Some(next) = words.get(i + 1) {
            add(&[w, next], 0.5);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        // Empty text: a fixed unit vector rather than NaNs.
        v[0] = 1.0;
    }
    v
}

/// Little-endian f32s in base64, as `encoding_format: "base64"` returns them.
pub fn to_base64(v: &[f32]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        let a = embed("Refunds are accepted within 30 days of delivery.", 256, 0);
        let b = embed(
            "You can get a refund within 30 days after delivery.",
            256,
            0,
        );
        let c = embed("The weather in Lisbon is sunny and warm in July.", 256, 0);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(
            cos(&a, &b) > cos(&a, &c) + 0.2,
            "{} vs {}",
            cos(&a, &b),
            cos(&a, &c)
        );
        assert_ne!(embed("x", 16, 1), embed("x", 16, 2));
        assert_eq!(embed("", 8, 0)[0], 1.0);
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
        assert_eq!(to_base64(&[]), "");
    }
}
