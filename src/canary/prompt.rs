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
    crate::text::disable_tera_env(&mut tera);
    tera.render_str(template, &ctx)
        .map_err(|e| crate::text::error_chain(&e))
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
