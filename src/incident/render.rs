//! The post-mortem as Markdown (pure). Everything that came from an
//! application, a model or a person is either fenced (a code fence longer
//! than any backtick run inside it) or escaped inline, so stored text can
//! neither run as a template nor change the document's structure.

use super::case::{self, CanaryCase};
use super::{Incident, Record};
use crate::text::fmt_time;

/// The marker of the triage section, for tools that fill it in.
pub const TRIAGE_MARK: &str = "<!-- canaryd:triage -->";

/// Inline text: one line, Markdown punctuation and HTML escaped.
pub fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // What can open emphasis, code, a link, a table cell or a
            // heading; `-`/`+` only matter at a line start, where inline
            // text never is.
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A fenced block holding `text` verbatim.
pub fn fence(text: &str, lang: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let f = "`".repeat((longest + 1).max(3));
    let body = text.trim_end_matches('\n');
    format!("{f}{lang}\n{body}\n{f}\n")
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(inline).unwrap_or_else(|| "—".into())
}

/// One timeline entry: (time, what).
fn timeline(inc: &Incident) -> Vec<(i64, String)> {
    let mut t: Vec<(i64, String)> = Vec::new();
    for a in &inc.annotations {
        t.push((
            a.ts_ms,
            format!(
                "annotation ({}, {}): {}",
                inline(&a.kind),
                inline(&a.source),
                inline(&a.text)
            ),
        ));
    }
    for e in &inc.model_events {
        t.push((
            e.at_ms,
            format!(
                "model change ({}): {} → {}{}",
                inline(&e.requested_model),
                opt(&e.old_model),
                opt(&e.new_model),
                match (&e.old_fingerprint, &e.new_fingerprint) {
                    (Some(a), Some(b)) if a != b =>
                        format!(", fingerprint {} → {}", inline(a), inline(b)),
                    _ => String::new(),
                }
            ),
        ));
    }
    for h in &inc.history {
        let what = match h.to_state.as_str() {
            "pending" => "alert pending",
            "firing" => "alert firing",
            "resolved" => "alert resolved",
            s => s,
        };
        t.push((
            h.at_ms,
            format!(
                "{}{}",
                inline(what),
                h.note
                    .as_deref()
                    .map(|n| format!(": {}", inline(n)))
                    .unwrap_or_default()
            ),
        ));
    }
    t.sort_by_key(|(at, _)| *at);
    t
}

/// The triage section's lines: the triage answers when the caller has them,
/// else what the export knows itself (model changes and annotations near
/// the start, and a judge's own change).
pub fn triage_lines(inc: &Incident) -> Vec<String> {
    if !inc.triage.is_empty() {
        return inc.triage.iter().map(|l| inline(l)).collect();
    }
    let start = super::start_ms(&inc.alert);
    let mut out = Vec::new();
    if inc.alert.summary.contains("judge changed") {
        out.push(format!(
            "judge: the judge `{}` itself changed (its own canaries shifted); the drop is attributed to the judge, not the product",
            inline(&inc.alert.dimension)
        ));
    }
    for e in &inc.model_events {
        out.push(format!(
            "model: {} answered as {} → {} at {} ({} the alert started)",
            inline(&e.requested_model),
            opt(&e.old_model),
            opt(&e.new_model),
            fmt_time(e.at_ms),
            rel(e.at_ms, start)
        ));
    }
    let near = crate::annotations::near(&inc.annotations, start);
    for a in &near {
        out.push(format!(
            "change: {} annotation \"{}\" at {} ({} the alert started)",
            inline(&a.kind),
            inline(&a.text),
            fmt_time(a.ts_ms),
            rel(a.ts_ms, start)
        ));
    }
    let models: std::collections::BTreeSet<&str> = inc
        .records
        .iter()
        .filter_map(|r| r.row.response_model.as_deref())
        .collect();
    if !models.is_empty() {
        out.push(format!(
            "evidence records answered by: {}",
            models
                .into_iter()
                .map(inline)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let cut = inc
        .records
        .iter()
        .filter(|r| r.row.finish_reason.as_deref() == Some("length"))
        .count();
    if cut > 0 {
        out.push(format!(
            "token budget: {cut} of {} evidence records were cut at the length limit (finish_reason: length)",
            inc.records.len()
        ));
    }
    out
}

fn rel(at: i64, start: i64) -> String {
    let mins = (start - at) / 60_000;
    match mins {
        m if m > 0 => format!("{m} min before"),
        m if m < 0 => format!("{} min after", -m),
        _ => "when".into(),
    }
}

fn record(out: &mut String, n: usize, r: &Record) {
    let row = &r.row;
    out.push_str(&format!(
        "### Record {n}: #{} at {}\n\n",
        row.id,
        fmt_time(row.ts_ms)
    ));
    let rows = [
        ("id from the application", opt(&row.ext_id)),
        ("prompt version", opt(&row.prompt_version)),
        ("requested model", opt(&row.request_model)),
        ("response model", opt(&row.response_model)),
        ("system fingerprint", opt(&row.system_fingerprint)),
        ("finish reason", opt(&row.finish_reason)),
        (
            "tokens in / out",
            format!(
                "{} / {}",
                row.input_tokens
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "—".into()),
                row.output_tokens
            ),
        ),
        (
            "latency",
            row.latency_ms
                .map(|l| format!("{l} ms"))
                .unwrap_or_else(|| "—".into()),
        ),
        ("session", opt(&row.session_id)),
        ("refusal", row.refusal.to_string()),
    ];
    out.push_str("| field | value |\n|---|---|\n");
    for (k, v) in rows {
        out.push_str(&format!("| {k} | {v} |\n"));
    }
    out.push('\n');
    if let Some(input) = &row.input {
        out.push_str("**Input**\n\n");
        let pretty = serde_json::from_str::<serde_json::Value>(input)
            .ok()
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s),
                other => serde_json::to_string_pretty(&other).ok(),
            })
            .unwrap_or_else(|| input.clone());
        out.push_str(&fence(&pretty, "text"));
        out.push('\n');
    }
    let passages = case::passages(row.context.as_deref());
    if !passages.is_empty() {
        out.push_str(&format!("**Context** ({} passages)\n\n", passages.len()));
        for (i, p) in passages.iter().enumerate() {
            out.push_str(&format!("Passage {}:\n\n", i + 1));
            out.push_str(&fence(p, "text"));
            out.push('\n');
        }
    }
    if let Some(tools) = &row.tool_calls {
        out.push_str("**Tool calls**\n\n");
        let pretty = serde_json::from_str::<serde_json::Value>(tools)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| tools.clone());
        out.push_str(&fence(&pretty, "json"));
        out.push('\n');
    }
    out.push_str("**Output**\n\n");
    out.push_str(&fence(&row.output, "text"));
    out.push('\n');
    for s in &r.scores {
        out.push_str(&format!(
            "**Judge {}** (version {}, model {}): {}\n\n",
            inline(&s.judge),
            s.judge_version,
            opt(&s.judge_model),
            match (s.score, &s.error) {
                (Some(v), _) => format!("score {v}"),
                (None, Some(e)) => format!("error: {}", inline(e)),
                (None, None) => "no score".into(),
            }
        ));
        if let Some(reasoning) = &s.reasoning {
            out.push_str(&fence(reasoning, "text"));
            out.push('\n');
        }
    }
}

/// The post-mortem skeleton. `canary` is the derived canary case (see
/// [`case::derive`]).
pub fn markdown(inc: &Incident, canary: Option<&CanaryCase>) -> String {
    let a = &inc.alert;
    let mut out = String::new();
    let dim = if a.dimension.is_empty() {
        String::new()
    } else {
        format!(" ({})", inline(&a.dimension))
    };
    out.push_str(&format!(
        "# Post-mortem: {}{} on {} (alert #{})\n\n",
        inline(&a.rule),
        dim,
        inline(&a.stream),
        a.id
    ));
    out.push_str(&format!(
        "Exported by canaryd at {}. State **{}**, severity **{}**.\n\n",
        fmt_time(inc.generated_ms),
        inline(&a.state),
        inline(&a.severity)
    ));
    out.push_str(&format!("> {}\n\n", inline(&a.summary)));
    let t = |v: Option<i64>| v.map(fmt_time).unwrap_or_else(|| "—".into());
    out.push_str(&format!(
        "- pending: {}\n- firing: {}\n- resolved: {}\n\n",
        t(a.pending_ms),
        t(a.firing_ms),
        t(a.resolved_ms)
    ));
    out.push_str(
        "## Summary\n\n_What happened, who was affected and for how long (to be written)._\n\n",
    );

    out.push_str("## Timeline\n\n");
    let tl = timeline(inc);
    if tl.is_empty() {
        out.push_str("_Nothing recorded._\n");
    }
    for (at, what) in tl {
        out.push_str(&format!("- {} — {}\n", fmt_time(at), what));
    }
    out.push('\n');

    out.push_str("## Triage\n\n");
    out.push_str(TRIAGE_MARK);
    out.push('\n');
    let lines = triage_lines(inc);
    if lines.is_empty() {
        out.push_str("_No model change, annotation or judge change near the start._\n");
    }
    for l in lines {
        out.push_str(&format!("- {l}\n"));
    }
    out.push('\n');

    out.push_str(&format!("## Evidence ({} records)\n\n", inc.records.len()));
    if inc.records.is_empty() {
        out.push_str("_No stored record is evidence of this rule._\n\n");
    }
    for (i, r) in inc.records.iter().enumerate() {
        record(&mut out, i + 1, r);
    }
    if !inc.healthy.is_empty() {
        out.push_str(&format!(
            "## Healthy answers to the same input ({} from before the change)\n\n",
            inc.healthy.len()
        ));
        for r in inc.healthy.iter().take(2) {
            out.push_str(&format!(
                "Record #{} at {}:\n\n",
                r.row.id,
                fmt_time(r.row.ts_ms)
            ));
            out.push_str(&fence(&r.row.output, "text"));
            out.push('\n');
        }
    }

    out.push_str("## Canary case\n\n");
    match canary.map(|c| (c, case::suite_yaml(c))) {
        Some((c, Ok(yaml))) => {
            out.push_str(&format!(
                "A canary that would have caught this, from the worst example. Save it as `canaries/{}.yaml` \
                 (or paste the case into a suite), then `canaryd check` and `canaryd run {}`.\n\n",
                c.suite, c.suite
            ));
            for n in &c.notes {
                out.push_str(&format!("- note: {}\n", inline(n)));
            }
            if !c.notes.is_empty() {
                out.push('\n');
            }
            out.push_str(&fence(&yaml, "yaml"));
        }
        Some((_, Err(why))) => out.push_str(&format!("_No case: {}._\n", inline(&why))),
        None => out.push_str("_No case: no evidence record with an input to replay._\n"),
    }
    out.push('\n');
    out.push_str("## Corrective actions\n\n- [ ] Add the canary case above to a scheduled suite\n- [ ] _…_\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        assert_eq!(fence("a", ""), "```\na\n```\n");
        let f = fence("x ```` y", "text");
        assert!(
            f.starts_with("`````text\n") && f.ends_with("\n`````\n"),
            "{f}"
        );
    }

    #[test]
    fn inline_text_cannot_open_html_or_structure() {
        assert_eq!(
            inline("<script>*x*\n# h [a](b) | c-d"),
            "&lt;script&gt;\\*x\\* \\# h \\[a\\](b) \\| c-d"
        );
    }
}
