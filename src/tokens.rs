//! Output token counts for records that do not carry `output_tokens`.
//!
//! Uses tiktoken's `o200k_base` encoding (GPT-4o and later) through
//! tiktoken-rs, which embeds the vocabulary in the binary: no download at
//! start, no network. Other model families tokenize differently, so the
//! count is a consistent length measure per stream rather than the exact
//! bill; a length *shift* is what the detectors look for.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<&'static CoreBPE> = OnceLock::new();
    BPE.get_or_init(tiktoken_rs::o200k_base_singleton)
}

/// Loads the vocabulary now (it takes a moment), so the first request does not pay for it.
pub fn warm_up() {
    let _ = bpe();
}

/// Bytes of a text that are tokenized; beyond them the count is estimated
/// from the tokens per byte of this prefix. BPE costs grow faster than the
/// length of a word, so an unbounded text (a 12 MB output without a space
/// took 22.8 s of CPU) could stall ingest; 16 KiB (about 4,000 tokens of
/// prose, more than most answers) keeps a record to about a millisecond.
pub const EXACT_BYTES: usize = 16 * 1024;
/// Longest run without whitespace handed to BPE in one piece; longer runs
/// (base64, minified code, a repeated character) are cut into pieces of
/// this size, which changes their count by at most a token per cut.
const MAX_RUN: usize = 256;

/// Number of o200k_base tokens in `text` (exact for the first
/// [`EXACT_BYTES`] and for runs without whitespace up to [`MAX_RUN`] bytes,
/// estimated beyond). Special-token text such as `<|endoftext|>` inside
/// production content is counted as ordinary text.
pub fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    let head = &text[..crate::text::floor_char_boundary(text, EXACT_BYTES)];
    let n = count_bounded(head);
    if head.len() == text.len() {
        n as i64
    } else {
        (n as f64 * text.len() as f64 / head.len().max(1) as f64).round() as i64
    }
}

/// Whether [`count`] estimates rather than counts `text`.
pub fn is_estimated(text: &str) -> bool {
    text.len() > EXACT_BYTES
}

fn count_bounded(text: &str) -> usize {
    let mut total = 0;
    let mut start = 0;
    let mut run = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            run = 0;
        } else {
            run += c.len_utf8();
            if run > MAX_RUN {
                total += bpe().encode_ordinary(&text[start..i]).len();
                start = i;
                run = c.len_utf8();
            }
        }
    }
    total + bpe().encode_ordinary(&text[start..]).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_tiktoken_o200k() {
        // Reference values from Python `tiktoken.get_encoding("o200k_base")`.
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("Hello, world!"), 4);
        assert!(count("<|endoftext|>") > 1, "special tokens are text here");
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        // Ten tokens per sentence (the space joins the next word), plus the final space.
        assert_eq!(count(&long), 501);
    }

    #[test]
    fn huge_and_spaceless_texts_are_bounded_and_close() {
        // A run without whitespace is cut into pieces: still about right.
        let word = "a".repeat(100_000);
        let n = count(&word);
        let exact_prefix = bpe().encode_ordinary(&"a".repeat(2048)).len() as f64 / 2048.0;
        let expected = exact_prefix * 100_000.0;
        assert!(
            (n as f64 - expected).abs() / expected < 0.1,
            "{n} vs {expected}"
        );
        // Beyond the exact prefix, prose is scaled from it.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(5_000);
        assert!(is_estimated(&prose));
        let est = count(&prose);
        assert!((est - 50_000).abs() < 500, "{est}");
        // Multi-byte text is cut on character boundaries.
        assert!(count(&"é".repeat(40_000)) > 0);
    }
}
