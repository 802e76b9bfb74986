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

/// Number of o200k_base tokens in `text`. Special-token text such as
/// `<|endoftext|>` inside production content is counted as ordinary text.
pub fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    bpe().encode_ordinary(text).len() as i64
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
}
