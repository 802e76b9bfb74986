//! Slack incoming webhooks: a Block Kit message with the same facts as the email.
//!
//! Every piece of text is `mrkdwn` and goes through [`escape`]: Slack's
//! control sequences all start with `<` (`<!channel>`, `<@U123>`,
//! `<http://evil|click>`), so escaping `&`, `<` and `>` is what keeps a
//! production answer from pinging a channel or planting a link. Only links
//! to canaryd's own pages (the status page, a session's page) are real
//! links, built from the operator's base URL.

use serde_json::{Value, json};

use super::message::{AlertView, Message};
use crate::secret::Secret;

/// Slack's limit on a section's text.
const SECTION_MAX: usize = 3000;
/// Slack's limit on blocks per message.
const BLOCKS_MAX: usize = 50;

/// Escapes text for Slack `mrkdwn`: `&`, `<`, `>` become entities, and
/// triple backticks cannot close the code block an example sits in.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("```", "ˋˋˋ")
}

/// A real link, to one of canaryd's own pages under the operator's base
/// URL: the characters that would end or split Slack's `<url|text>` are
/// percent-encoded in the URL, `&` (a session link's query) is written as
/// the entity Slack asks for, and the text is escaped like any text.
fn link(url: &str, text: &str) -> String {
    let url = url
        .replace('&', "&amp;")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('|', "%7C");
    format!("<{url}|{}>", escape(text))
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": fit(&text, SECTION_MAX) } })
}

/// A section's text cut to `max` characters without breaking its markup.
/// A triage section is a list of lines, each with its links: it is cut
/// after the last line that fits. Where that would drop most of the text
/// (one long example), it is cut inside the line, but never inside a
/// `<url|text>` link (shown as raw text when cut) or an entity such as
/// `&amp;`; a code block left open is closed, or the rest of the message
/// would read as code.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    // Room for the mark of the cut and a closing fence.
    let room = max.saturating_sub(5);
    let mut kept = String::new();
    let mut n = 0;
    let mut rest = "";
    for line in text.split_inclusive('\n') {
        let l = line.chars().count();
        if n + l > room {
            rest = line;
            break;
        }
        kept.push_str(line);
        n += l;
    }
    if n < room / 2 {
        let part: String = rest.chars().take(room - n).collect();
        let mut end = part.len();
        if let Some(open) = part.rfind('<').filter(|&i| !part[i..].contains('>')) {
            end = open;
        }
        if let Some(amp) = part[..end]
            .rfind('&')
            .filter(|&i| !part[i..end].contains(';'))
        {
            end = amp;
        }
        kept.push_str(&part[..end]);
    }
    let mut out = format!("{}…", kept.trim_end());
    if out.matches("```").count() % 2 == 1 {
        out.push_str("```");
    }
    out
}

fn alert_section(a: &AlertView, resolved: bool) -> Value {
    let head = if resolved {
        format!(
            "*{}*: back to {} (baseline {})",
            escape(&a.label),
            escape(&a.value_text),
            escape(&a.baseline_text)
        )
    } else {
        format!(
            "*{}*: {}  [{}{}]",
            escape(&a.label),
            escape(&a.change),
            escape(&a.severity),
            if a.new { ", new" } else { "" }
        )
    };
    let mut text = format!(
        "{head}\n_{}_ · rule `{}` · since {}",
        escape(&a.summary),
        escape(&a.rule),
        escape(&a.since)
    );
    if let Some(url) = &a.session_link {
        text.push_str(&format!("\n{}", link(url, "Open the session")));
    }
    section(text)
}

/// The Block Kit payload for `msg`.
pub fn payload(msg: &Message) -> Value {
    let mut blocks = Vec::new();
    let mut head = format!("*{}*", escape(&msg.title));
    if let Some(url) = &msg.link {
        head.push_str(&format!("\n{}", link(url, "Open the status page")));
    }
    blocks.push(section(head));
    if msg.model_change {
        let mut t = format!(
            ":warning: The model behind `{}` changed; the shifts below may follow from it.",
            escape(&msg.stream)
        );
        for e in &msg.model_events {
            t.push_str(&format!(
                "\n• {} · {} ({}): {}",
                escape(&e.at),
                escape(&e.scope),
                escape(&e.requested_model),
                escape(&e.change)
            ));
        }
        blocks.push(section(t));
    }
    if !msg.annotations.is_empty() {
        let mut t = String::from(":memo: Recorded changes near the start:");
        for n in &msg.annotations {
            t.push_str(&format!("\n• {}", escape(&n.line)));
        }
        blocks.push(section(t));
    }
    if !msg.triage.is_empty() {
        let mut t = String::from(":mag: *Triage*");
        for l in &msg.triage {
            t.push_str(&format!("\n• {}", escape(&l.text)));
            for k in &l.links {
                t.push_str(&format!(" {}", link(&k.href, &k.text)));
            }
        }
        blocks.push(section(t));
    }
    if !msg.firing.is_empty() {
        blocks.push(json!({ "type": "divider" }));
    }
    for a in &msg.firing {
        blocks.push(alert_section(a, false));
        for (i, e) in a.examples.iter().enumerate() {
            let mut t = format!("*Example {}*: {}", i + 1, escape(&e.title));
            for f in &e.fields {
                t.push_str(&format!(
                    "\n*{}:*\n```{}```",
                    escape(&f.label),
                    escape(&f.text)
                ));
            }
            blocks.push(section(t));
        }
    }
    if !msg.resolved.is_empty() {
        blocks.push(json!({ "type": "divider" }));
        blocks.push(section(":white_check_mark: *Resolved*".into()));
        for a in &msg.resolved {
            blocks.push(alert_section(a, true));
        }
    }
    blocks.push(json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("canaryd · {}", escape(&msg.at)) } ] }));
    if blocks.len() > BLOCKS_MAX {
        let last = blocks.pop();
        blocks.truncate(BLOCKS_MAX - 2);
        blocks.push(section("_(more examples on the status page)_".into()));
        blocks.extend(last);
    }
    json!({ "text": escape(&msg.title), "blocks": blocks })
}

/// Posts a stored payload to the webhook URL. Errors never contain the URL
/// (it is the credential).
pub async fn send(
    client: &reqwest::Client,
    url: &Secret,
    body: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    super::post::post(client, url.expose(), &[], body, timeout, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_mentions_and_links() {
        assert_eq!(
            escape("<!channel> & <@U123> <http://evil|click>"),
            "&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;http://evil|click&gt;"
        );
        assert_eq!(escape("a```b"), "aˋˋˋb");
    }

    #[test]
    fn a_long_section_is_cut_between_lines_and_never_inside_a_link() {
        // Triage lines whose links would straddle the limit.
        let line = format!(
            "• a triage line {}\n",
            link("https://c.example/sessions?stream=s&id=x y", "session x y")
        );
        let text: String = std::iter::repeat_n(line.as_str(), 100).collect();
        let cut = fit(&text, 3000);
        assert!(cut.chars().count() <= 3000, "{}", cut.chars().count());
        assert!(cut.ends_with(">…"), "{cut}");
        assert_eq!(cut.matches('<').count(), cut.matches('>').count(), "{cut}");
        assert_eq!(
            cut.lines().count(),
            cut.chars().count() / line.chars().count(),
            "whole lines kept"
        );
    }

    #[test]
    fn one_long_line_is_cut_outside_links_and_entities_and_its_code_block_closed() {
        let body = "x &amp; y ".repeat(400);
        let text = format!(
            "*Example 1*: t\n*Output:*\n```{body}``` {}",
            link("https://c/a", "a")
        );
        for max in [1000, 1003, 1005, 1007] {
            let cut = fit(&text, max);
            assert!(cut.chars().count() <= max, "{max}");
            let tail = cut.trim_end_matches("```").trim_end_matches('…');
            assert!(
                tail.rfind('&').is_none_or(|i| tail[i..].contains(';')),
                "{max}: an entity cut: {tail:?}"
            );
            assert!(
                cut.ends_with("…```"),
                "{max}: the code block is closed: {cut:?}"
            );
        }
        let linked = format!(
            "{} {}",
            "word ".repeat(190),
            link("https://c/a", "a long link text")
        );
        let cut = fit(&linked, 960);
        assert!(
            !cut.contains('<'),
            "the link is dropped whole, not cut: {cut}"
        );
        assert_eq!(fit("short", 3000), "short");
    }
}
