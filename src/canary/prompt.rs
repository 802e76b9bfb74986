//! Prompt templates: suite authors write Tera over their own `vars`.
//!
//! Only suite files (written by the operator) are compiled as templates;
//! model or production text is never passed through here.

use std::collections::BTreeMap;

/// Renders one prompt template with the suite's variables.
pub fn render(
    template: &str,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<String, String> {
    if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
        return Ok(template.to_string());
    }
    let mut ctx = tera::Context::new();
    for (k, v) in vars {
        ctx.insert(k, v);
    }
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    disable_env(&mut tera);
    tera.render_str(template, &ctx).map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })
}

/// Tera 1 registers `get_env` everywhere; a template must never read the
/// daemon's environment (API keys live there).
pub fn disable_env(tera: &mut tera::Tera) {
    tera.register_function(
        "get_env",
        |_: &std::collections::HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
            Err(tera::Error::msg("get_env is disabled in canaryd templates"))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vars_and_refuses_env() {
        let mut vars = BTreeMap::new();
        vars.insert("product".to_string(), serde_json::json!("Acme"));
        assert_eq!(render("Hi {{ product }}", &vars).unwrap(), "Hi Acme");
        assert!(render("{{ get_env(name=\"HOME\") }}", &vars).is_err());
    }
}
