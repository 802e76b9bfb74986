//! The bounded, normalised view of an answer the refusal cues read.
//!
//! Only the first [`READ_CHARS`] characters are ever looked at, so the cost
//! per record is bounded whatever the answer's length. Quoted spans and code
//! are blanked out: a refusal *quoted* in a helpful answer ("the bot replied
//! 'I can't help with that', which means…") or an error string in code
//! (`"cannot borrow"`) is not the model declining.

/// Characters of the answer the classifier reads at most.
pub const READ_CHARS: usize = 1500;
/// A quote longer than this is treated as a stray quote mark, not a span.
const MAX_QUOTE_CHARS: usize = 240;

/// Lower-cased ASCII prefix of the answer with apostrophes folded to `'`,
/// dashes to `-`, accented Latin letters to their base letter and any other
/// non-ASCII character to a space, and quoted spans and code replaced by
/// spaces (unless that would leave no words, i.e. the whole answer is one
/// quotation). ASCII matters for cost: the regex crate's lazy DFA handles
/// `\b` only on ASCII text and falls back to a far slower engine otherwise.
pub fn prepare(text: &str) -> String {
    let chars: Vec<char> = text
        .trim()
        .chars()
        .take(READ_CHARS)
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '\u{02bc}' => '\'',
            '\u{201c}' | '\u{201d}' => '"',
            c => c,
        })
        .collect();
    let mut masked = chars.clone();
    for (start, end) in spans(&chars) {
        for c in &mut masked[start..end] {
            *c = ' ';
        }
    }
    let keep = if masked.iter().any(|c| c.is_alphanumeric()) {
        masked
    } else {
        chars
    };
    keep.into_iter()
        .flat_map(char::to_lowercase)
        .map(ascii_fold)
        .collect()
}

/// The ASCII letter an accented Latin letter is written with (enough for
/// the other-language cues), `-` for dashes, else a space.
fn ascii_fold(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    const FOLD: [(&str, char); 12] = [
        ("àáâãäåā", 'a'),
        ("çćč", 'c'),
        ("èéêëēę", 'e'),
        ("ìíîïī", 'i'),
        ("ñń", 'n'),
        ("òóôõöøō", 'o'),
        ("ùúûüū", 'u'),
        ("ýÿ", 'y'),
        ("šś", 's'),
        ("žźż", 'z'),
        ("ł", 'l'),
        (
            "\u{2010}\u{2011}\u{2012}\u{2013}\u{2014}\u{2015}\u{2212}",
            '-',
        ),
    ];
    FOLD.iter()
        .find(|(from, _)| from.contains(c))
        .map_or(' ', |&(_, to)| to)
}

/// Half-open index ranges (quote marks included) of code and quotations.
fn spans(c: &[char]) -> Vec<(usize, usize)> {
    let alnum = |i: Option<usize>| {
        i.and_then(|i| c.get(i))
            .is_some_and(|c| c.is_alphanumeric())
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let close = match c[i] {
            // A fence runs to the next fence (or the end of what we read).
            '`' if c[i..].starts_with(&['`', '`', '`']) => Some(
                find(c, i + 3, |j| c[j..].starts_with(&['`', '`', '`'])).map_or(c.len(), |j| j + 3),
            ),
            '`' => find(c, i + 1, |j| c[j] == '`' || c[j] == '\n').map(|j| j + 1),
            '"' => find(c, i + 1, |j| c[j] == '"').map(|j| j + 1),
            // An opening single quote follows a non-letter and precedes a
            // letter; a closing one follows a non-space and precedes a
            // non-letter. Apostrophes inside words (can't) are neither.
            '\'' if !alnum(i.checked_sub(1)) && alnum(Some(i + 1)) => find(c, i + 1, |j| {
                c[j] == '\'' && !c[j - 1].is_whitespace() && !alnum(Some(j + 1))
            })
            .map(|j| j + 1),
            _ => None,
        };
        match close {
            Some(end) if end - i <= MAX_QUOTE_CHARS || c[i] == '`' => {
                out.push((i, end));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn find(c: &[char], from: usize, hit: impl Fn(usize) -> bool) -> Option<usize> {
    (from..c.len()).find(|&j| hit(j))
}

/// Words in `s` (whitespace-separated runs containing a letter or digit).
pub fn words(s: &str) -> usize {
    s.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_code_are_blanked_but_apostrophes_are_not() {
        let t = prepare("The bot said 'I can't help with that', so I checked `cannot` and \"no\".");
        assert!(!t.contains("help with"), "{t}");
        assert!(!t.contains("cannot"), "{t}");
        assert!(t.starts_with("the bot said "), "{t}");
        assert_eq!(prepare("I can’t do that."), "i can't do that.");
        assert_eq!(prepare("Não posso — ¿sí?"), "nao posso -  si?");
        // A whole-answer quotation is read as the answer.
        assert_eq!(prepare("\"No.\""), "\"no.\"");
    }

    #[test]
    fn a_stray_quote_does_not_hide_the_rest() {
        let long = format!("'{} and then I can't help with it", "word ".repeat(60));
        assert!(prepare(&long).contains("i can't help"));
    }

    #[test]
    fn reads_a_bounded_prefix() {
        let t = prepare(&"a".repeat(10 * READ_CHARS));
        assert_eq!(t.chars().count(), READ_CHARS);
    }
}
