//! Turning a case into the chat request sent to one target.
//!
//! Templates are rendered here (suite-authored text only); `context`
//! passages are literal text appended to the system message, so the model
//! sees them as the sources it must answer from and judges see the same list.

use super::load::{Suite, SuiteCase};
use super::prompt;
use crate::provider::{ChatRequest, Message};

/// The messages of a case, with templates rendered and context attached.
/// Returns the messages and the text a judge sees as the input (the last
/// user turn).
pub fn messages(suite: &Suite, case: &SuiteCase) -> Result<(Vec<Message>, String), String> {
    let system = case.system.as_ref().or(suite.system.as_ref());
    let system = system.map(|s| prompt::render(s, &suite.vars)).transpose()?;
    let turns: Vec<Message> = match (&case.prompt, &case.messages) {
        (Some(p), _) => vec![Message::new("user", prompt::render(p, &suite.vars)?)],
        (None, Some(msgs)) => msgs
            .iter()
            .map(|m| {
                Ok(Message::new(
                    &m.role,
                    prompt::render(&m.content, &suite.vars)?,
                ))
            })
            .collect::<Result<_, String>>()?,
        (None, None) => {
            return Err(format!(
                "case `{}` has neither prompt nor messages",
                case.id
            ));
        }
    };
    let input = turns
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let context = (!case.context.is_empty()).then(|| {
        let mut c = String::from("Context:");
        for p in &case.context {
            c.push_str("\n- ");
            c.push_str(p);
        }
        c
    });
    let system = match (system, context) {
        (Some(s), Some(c)) => Some(format!("{s}\n\n{c}")),
        (s, c) => s.or(c),
    };
    let mut out = Vec::with_capacity(turns.len() + 1);
    // A `messages:` case may bring its own system turn; ours goes first.
    if let Some(s) = system {
        out.push(Message::new("system", s));
    }
    out.extend(turns);
    Ok((out, input))
}

/// The full request for `model` (the provider's model string).
pub fn build(
    suite: &Suite,
    case: &SuiteCase,
    model: &str,
) -> Result<(ChatRequest, String), String> {
    let (messages, input) = messages(suite, case)?;
    let d = &suite.defaults;
    Ok((
        ChatRequest {
            model: model.to_string(),
            messages,
            temperature: case.temperature.or(d.temperature),
            top_p: d.top_p,
            max_tokens: case.max_tokens.or(d.max_tokens),
            seed: d.seed,
            response_format: case.response_format.clone(),
            stream: case.stream.or(d.stream).unwrap_or(false),
            logprobs: None,
            top_logprobs: None,
        },
        input,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::suite::{Defaults, Message as SuiteMessage};
    use std::collections::BTreeMap;

    fn suite() -> Suite {
        let mut vars = BTreeMap::new();
        vars.insert("company".to_string(), serde_json::json!("Acme"));
        Suite {
            name: "s".into(),
            version: 1,
            description: None,
            schedule: None,
            timezone: None,
            targets: vec!["pinned".into()],
            baseline: None,
            defaults: Defaults {
                temperature: Some(0.0),
                max_tokens: Some(300),
                ..Default::default()
            },
            system: Some("You support {{ company }}.".into()),
            vars,
            concurrency: None,
            timeout_secs: None,
            equality: None,
            cases: vec![],
            logprob_probe: None,
            content_hash: String::new(),
            path: Default::default(),
        }
    }

    fn case() -> SuiteCase {
        SuiteCase {
            id: "c".into(),
            prompt: Some("Refunds at {{ company }}?".into()),
            messages: None,
            context: vec![
                "Refunds within 30 days.".into(),
                "{{ not a template }}".into(),
            ],
            system: None,
            temperature: None,
            max_tokens: Some(50),
            stream: None,
            response_format: None,
            expect: vec![],
            equality: None,
        }
    }

    #[test]
    fn renders_system_prompt_and_appends_context_literally() {
        let (req, input) = build(&suite(), &case(), "gpt-x").unwrap();
        assert_eq!(req.model, "gpt-x");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(
            req.messages[0].content,
            "You support Acme.\n\nContext:\n- Refunds within 30 days.\n- {{ not a template }}"
        );
        assert_eq!(req.messages[1].content, "Refunds at Acme?");
        assert_eq!(input, "Refunds at Acme?");
        assert_eq!(req.max_tokens, Some(50), "case overrides defaults");
        assert_eq!(req.temperature, Some(0.0));
    }

    #[test]
    fn multi_turn_cases_keep_their_turns() {
        let mut c = case();
        c.prompt = None;
        c.context.clear();
        c.messages = Some(vec![
            SuiteMessage {
                role: "user".into(),
                content: "Hi".into(),
            },
            SuiteMessage {
                role: "assistant".into(),
                content: "Hello".into(),
            },
            SuiteMessage {
                role: "user".into(),
                content: "Refund at {{ company }}?".into(),
            },
        ]);
        let (req, input) = build(&suite(), &c, "m").unwrap();
        let roles: Vec<_> = req.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(input, "Refund at Acme?");
    }
}
