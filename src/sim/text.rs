//! Word-level text helpers shared by answers, the judge and embeddings.

/// Words too common to carry meaning; ignored when comparing texts.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had",
    "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "just", "may", "me", "might",
    "must", "my", "no", "not", "of", "on", "only", "or", "our", "please", "shall", "should", "so",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "up", "us", "using", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "why", "will", "with", "within", "would", "you", "your",
];

pub fn is_stopword(w: &str) -> bool {
    STOPWORDS.binary_search(&w).is_ok()
}

/// Lower-cased alphanumeric words (apostrophes kept inside words).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Crude stemming so that `refunds`/`refund` and `accepted`/`accept` meet.
pub fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() >= suffix.len() + 3
            && let Some(s) = w.strip_suffix(suffix)
        {
            return s;
        }
    }
    w
}

/// Stemmed words that carry meaning (numbers included).
pub fn content_words(text: &str) -> Vec<String> {
    words(text)
        .filter(|w| !is_stopword(w))
        .map(|w| stem(&w).to_string())
        .collect()
}

/// Numbers written with digits, normalised (`1,000` → `1000`).
pub fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner_sep = (c == '.' || c == ',')
            && !cur.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() {
            cur.push(c);
        } else if inner_sep {
            if c == '.' {
                cur.push('.');
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Rough token count, as the usage figures report it: about four
/// characters per token, at least one per word-like piece.
pub fn token_estimate(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    (text.len() as u64).div_ceil(4).max(1)
}

/// Phrases that mark an answer as a refusal.
const REFUSAL_MARKERS: &[&str] = &[
    "i'm sorry, but",
    "i am sorry, but",
    "i can't",
    "i cannot",
    "i can not",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "not able to help",
    "i must decline",
    "i won't be able",
    "can't comply",
    "cannot fulfill",
    "not something i can help",
    "i apologize, but",
    "i'm afraid i can't",
];

/// True when `text` reads like a refusal.
pub fn looks_like_refusal(text: &str) -> bool {
    let head: String = text.chars().take(200).collect::<String>().to_lowercase();
    let head = head.replace('’', "'");
    REFUSAL_MARKERS.iter().any(|m| head.contains(m))
}

/// Splits text into sentences, keeping their end punctuation.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            push_sentence(&mut out, &mut cur);
            continue;
        }
        cur.push(c);
        let end = matches!(c, '.' | '!' | '?')
            && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
            // "e.g." and decimals are not ends; a lower-case word before the dot is.
            && cur.trim().len() > 3;
        if end {
            push_sentence(&mut out, &mut cur);
        }
    }
    push_sentence(&mut out, &mut cur);
    out
}

fn push_sentence(out: &mut Vec<String>, cur: &mut String) {
    let s = cur.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    cur.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            content_words("Refunds are accepted within 30 days."),
            vec!["refund", "accept", "30", "day"]
        );
        assert_eq!(
            numbers("from 9am to 5.5pm, 1,000 items."),
            vec!["9", "5.5", "1000"]
        );
        assert!(looks_like_refusal("I’m sorry, but I can’t help with that."));
        assert!(!looks_like_refusal("Red, blue and yellow."));
        assert_eq!(
            sentences("One is here. Two is 2.5 km away! Three\nFour"),
            vec!["One is here.", "Two is 2.5 km away!", "Three", "Four"]
        );
    }
}
