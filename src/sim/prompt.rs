//! Finding the question and the context passages in a chat request.

/// What the model was asked: the question and any context passages.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// The last user message without its context section.
    pub question: String,
    /// Passages found in fences, `<context>` tags or after a `Context:` line.
    pub context: Vec<String>,
}

/// One role/content pair of the request.
pub struct Turn<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// Finds the question and context passages in the messages.
///
/// canaryd's runner and other RAG front-ends send context in many shapes;
/// all of these are recognised, in any message: `<<<DATA-n … DATA-n>>>`
/// fences, `<context>`/`<document>` tags, and a line `Context:` (or
/// `Passages:`, `Documents:`, `Sources:`) followed by passages up to a
/// `Question:` line.
pub fn parse_prompt(turns: &[Turn<'_>]) -> Prompt {
    let mut context = Vec::new();
    let mut question = String::new();
    for t in turns {
        let rest = take_fences(t.content, &mut context);
        let rest = take_tags(&rest, &mut context);
        let (rest, q) = take_context_section(&rest, &mut context);
        if t.role == "user" {
            question = q.unwrap_or(rest).trim().to_string();
        } else if let Some(q) = q {
            question = q.trim().to_string();
        }
    }
    Prompt { question, context }
}

/// Removes `<<<TAG\n…\nTAG>>>` blocks, collecting their contents. A `<<<`
/// that does not open a well-formed fence is kept as text.
pub fn take_fences(text: &str, out: &mut Vec<String>) -> String {
    let mut rest = String::new();
    let mut s = text;
    while let Some(start) = s.find("<<<") {
        let after = &s[start + 3..];
        let tag_end = after.find('\n').unwrap_or(after.len());
        let tag = after[..tag_end].trim();
        let close = format!("\n{tag}>>>");
        match after[tag_end..].find(&close) {
            Some(end) if !tag.is_empty() && !tag.contains(' ') => {
                let end = tag_end + end;
                rest.push_str(&s[..start]);
                out.push(after[tag_end..end].trim().to_string());
                s = &after[end + close.len()..];
            }
            _ => {
                rest.push_str(&s[..start + 3]);
                s = after;
            }
        }
    }
    rest.push_str(s);
    rest
}

fn take_tags(text: &str, out: &mut Vec<String>) -> String {
    let mut s = text.to_string();
    for tag in ["context", "document", "passage", "source"] {
        let open = format!("<{tag}");
        let close = format!("</{tag}>");
        while let Some(a) = s.find(&open) {
            let Some(gt) = s[a..].find('>').map(|i| a + i + 1) else {
                break;
            };
            let Some(b) = s[gt..].find(&close).map(|i| gt + i) else {
                break;
            };
            out.push(s[gt..b].trim().to_string());
            s.replace_range(a..b + close.len(), "");
        }
    }
    s
}

/// Splits `Context:` … `Question:` sections. Returns the text outside the
/// context section and the question when a `Question:` line was found.
fn take_context_section(text: &str, out: &mut Vec<String>) -> (String, Option<String>) {
    let mut rest = String::new();
    let mut question: Option<String> = None;
    let mut in_context = false;
    let mut passage = String::new();
    let flush = |passage: &mut String, out: &mut Vec<String>| {
        let p = passage.trim();
        if !p.is_empty() {
            out.push(p.to_string());
        }
        passage.clear();
    };
    for line in text.lines() {
        if let Some(v) = label_value(
            line,
            &[
                "context",
                "contexts",
                "passages",
                "passage",
                "documents",
                "sources",
                "background",
            ],
        ) {
            in_context = true;
            flush(&mut passage, out);
            passage.push_str(v);
            continue;
        }
        if let Some(v) = label_value(line, &["question", "query", "user question", "q"]) {
            in_context = false;
            flush(&mut passage, out);
            question = Some(v.to_string());
            continue;
        }
        if in_context {
            let t = line.trim();
            let bullet = t.starts_with("- ") || t.starts_with("* ") || t.starts_with('[');
            if t.is_empty() || bullet {
                flush(&mut passage, out);
            }
            let t = t.trim_start_matches(['-', '*', ' ']);
            let t = match (t.starts_with('['), t.find(']')) {
                (true, Some(i)) => t[i + 1..].trim(),
                _ => t,
            };
            if !t.is_empty() {
                if !passage.is_empty() {
                    passage.push(' ');
                }
                passage.push_str(t);
            }
        } else if let Some(q) = question.as_mut() {
            q.push('\n');
            q.push_str(line);
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    flush(&mut passage, out);
    (rest, question)
}

/// `Label: value` (case-insensitive) → `value`.
fn label_value<'a>(line: &'a str, labels: &[&str]) -> Option<&'a str> {
    let (head, tail) = line.split_once(':')?;
    let head = head.trim().trim_start_matches(['#', '*']).trim();
    labels
        .iter()
        .any(|l| head.eq_ignore_ascii_case(l))
        .then(|| tail.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_context_in_several_shapes() {
        let p = parse_prompt(&[
            Turn {
                role: "system",
                content: "You are helpful.",
            },
            Turn {
                role: "user",
                content: "Context:\n- Refunds are accepted within 30 days.\n- Shipping is free.\n\nQuestion: How long for refunds?",
            },
        ]);
        assert_eq!(
            p.context,
            vec!["Refunds are accepted within 30 days.", "Shipping is free."]
        );
        assert_eq!(p.question, "How long for refunds?");
        let p = parse_prompt(&[Turn {
            role: "user",
            content: "<context>The store opens at 9am.</context>\nWhen does it open?",
        }]);
        assert_eq!(p.context, vec!["The store opens at 9am."]);
        assert_eq!(p.question, "When does it open?");
        let p = parse_prompt(&[Turn {
            role: "user",
            content: "Use this:\n<<<DATA-0000\nA fact.\nDATA-0000>>>\nWhat?",
        }]);
        assert_eq!(p.context, vec!["A fact."]);
    }
}
