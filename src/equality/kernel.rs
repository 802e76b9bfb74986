//! The string kernel of the equality test: character 3- to 5-gram term
//! frequencies, L2-normalised, compared by their dot product (cosine).
//!
//! Why this kernel: it needs no model (an embedding kernel would make the
//! test depend on an embedder that can itself drift), it sees re-wordings a
//! word-level kernel misses ("refund" / "refunds"), and Gao et al.'s model
//! equality test found character n-gram kernels as powerful as embedding
//! kernels on free text. It is bounded: at most [`MAX_CHARS`] characters of
//! an answer are read.

/// Characters of an answer the kernel reads.
pub const MAX_CHARS: usize = 4_000;
const MIN_N: usize = 3;
const MAX_N: usize = 5;

/// A sparse unit vector: sorted (n-gram hash, weight) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Features(Vec<(u64, f64)>);

/// Features of one answer: lower-cased, whitespace runs collapsed.
pub fn features(text: &str) -> Features {
    let norm: Vec<char> = {
        let mut out = Vec::with_capacity(text.len().min(MAX_CHARS));
        let mut space = true;
        for c in text.chars().take(MAX_CHARS) {
            if c.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.extend(c.to_lowercase());
                space = false;
            }
        }
        while out.last() == Some(&' ') {
            out.pop();
        }
        out
    };
    let mut grams: Vec<u64> = Vec::new();
    for n in MIN_N..=MAX_N {
        if norm.len() < n {
            break;
        }
        for w in norm.windows(n) {
            grams.push(hash(n, w));
        }
    }
    if grams.is_empty() && !norm.is_empty() {
        // A very short answer is its own single gram.
        grams.push(hash(norm.len(), &norm));
    }
    grams.sort_unstable();
    let mut v: Vec<(u64, f64)> = Vec::new();
    for g in grams {
        match v.last_mut() {
            Some((h, c)) if *h == g => *c += 1.0,
            _ => v.push((g, 1.0)),
        }
    }
    let norm2: f64 = v.iter().map(|(_, c)| c * c).sum::<f64>().sqrt();
    if norm2 > 0.0 {
        v.iter_mut().for_each(|(_, c)| *c /= norm2);
    }
    Features(v)
}

/// Cosine of two answers' features (0 for an empty answer against anything
/// but another empty one, which is identical: 1).
pub fn cosine(a: &Features, b: &Features) -> f64 {
    if a.0.is_empty() || b.0.is_empty() {
        return if a.0.is_empty() && b.0.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.0.len() && j < b.0.len() {
        match a.0[i].0.cmp(&b.0[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a.0[i].1 * b.0[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// The Gram matrix of `texts` under [`cosine`], row-major.
pub fn gram(texts: &[&str]) -> Vec<f64> {
    let f: Vec<Features> = texts.iter().map(|t| features(t)).collect();
    let n = f.len();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = cosine(&f[i], &f[j]);
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
    }
    k
}

/// FNV-1a over the gram's characters, its length mixed in.
fn hash(n: usize, w: &[char]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ n as u64;
    for c in w {
        for b in (*c as u32).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_answers_have_cosine_one_and_rewordings_less() {
        let a = features("Refunds are accepted within 30 days of delivery.");
        let b = features("refunds   are accepted WITHIN 30 days of delivery.");
        let c = features("Sure. Refunds get accepted inside 30 days of delivery.");
        let d = features("Shipping is free on orders above 50 euros.");
        assert!((cosine(&a, &b) - 1.0).abs() < 1e-9);
        let ac = cosine(&a, &c);
        let ad = cosine(&a, &d);
        assert!(ac < 0.95 && ac > 0.4, "{ac}");
        assert!(ad < ac, "{ad} vs {ac}");
    }

    #[test]
    fn empty_and_tiny_answers_are_handled() {
        let e = features("");
        let x = features("ok");
        assert_eq!(cosine(&e, &e), 1.0);
        assert_eq!(cosine(&e, &x), 0.0);
        assert!((cosine(&x, &features("OK")) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_read_is_bounded() {
        let long = "word ".repeat(100_000);
        let f = features(&long);
        assert!(f.0.len() < 50);
    }
}
