//! Judge prompts. The template is the operator's; the production content is
//! data: it reaches Tera only as context values, fenced so that instructions
//! inside it read as content.

use tera::{Context, Tera};

/// What a judge sees of one response.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JudgeInput {
    pub input: Option<String>,
    pub context: Vec<String>,
    pub output: String,
}

/// Compiles a judge template once, to report errors at `check` time.
pub fn check(template: &str) -> Result<(), String> {
    compile(template).map(|_| ())
}

fn compile(template: &str) -> Result<Tera, String> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    crate::text::disable_tera_env(&mut tera);
    tera.add_raw_template("judge", template)
        .map_err(|e| crate::text::error_chain(&e))?;
    Ok(tera)
}

/// Renders the judge prompt. Each piece of production text is wrapped in a
/// fence whose tag cannot occur inside it, so content cannot close the fence.
pub fn render(template: &str, data: &JudgeInput) -> Result<String, String> {
    let tera = compile(template)?;
    let mut ctx = Context::new();
    ctx.insert("input", &data.input.as_deref().map(fence));
    ctx.insert("output", &fence(&data.output));
    let context: Vec<String> = data.context.iter().map(|c| fence(c)).collect();
    ctx.insert("context", &context);
    ctx.insert("has_context", &!data.context.is_empty());
    tera.render("judge", &ctx)
        .map_err(|e| crate::text::error_chain(&e))
}

/// `<<<DATA-xxxx ... DATA-xxxx>>>` with a tag derived from the content so
/// the content cannot contain its own closing marker.
pub fn fence(text: &str) -> String {
    let mut n: u64 = 0;
    loop {
        let tag = format!("DATA-{n:04}");
        if !text.contains(&tag) {
            return format!("<<<{tag}\n{text}\n{tag}>>>");
        }
        n += 1;
    }
}
