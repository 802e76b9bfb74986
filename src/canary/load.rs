//! Loading a directory of suites: parse, validate, normalise, hash.
//!
//! A broken file never stops the others: each file yields either a suite or
//! diagnostics, and callers keep the last good version of a broken suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::suite::{Case, Defaults, Expectation, LogprobProbe, Message, SuiteFile};
use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml;

/// A validated suite, free of source positions, ready to run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suite {
    pub name: String,
    pub version: i64,
    pub description: Option<String>,
    /// Normalised 6-field cron (seconds first), if scheduled.
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub targets: Vec<String>,
    /// The target others are compared with; `None` means the first target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    pub defaults: Defaults,
    pub system: Option<String>,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub concurrency: Option<usize>,
    pub timeout_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equality: Option<super::equality::Plan>,
    pub cases: Vec<SuiteCase>,
    /// Absent stays out of the content hash (no existing suite's hash moved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_probe: Option<LogprobProbe>,
    /// sha256 of the normalised content; differs whenever the meaning may.
    #[serde(skip)]
    pub content_hash: String,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SuiteCase {
    pub id: String,
    pub prompt: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub context: Vec<String>,
    pub system: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    // Absent keys stay out of the content hash, so adding them changed no
    // existing suite's hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    pub expect: Vec<Expectation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equality: Option<super::equality::CasePlan>,
}

/// What a directory held.
#[derive(Debug, Default)]
pub struct Loaded {
    pub suites: Vec<Suite>,
    /// Files that failed, with why. Their suites are absent from `suites`.
    pub failed: Vec<PathBuf>,
    pub diagnostics: Diagnostics,
}

/// Names the validator needs from outside the suite.
pub struct Context<'a> {
    /// The config's named models; `None` when the config itself is broken:
    /// cross-checks are skipped.
    pub models: Option<&'a crate::judge::load::Models>,
    /// Judge names known to exist; `None` skips the check.
    pub judges: Option<&'a BTreeSet<String>>,
}

use crate::yaml::yaml_files;

/// Loads every suite file in `dir`.
pub fn load_dir(dir: &Path, ctx: &Context<'_>) -> Loaded {
    let mut out = Loaded::default();
    let files = match yaml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                dir,
                0,
                0,
                format!("cannot read canaries directory: {e}"),
            ));
            return out;
        }
    };
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files {
        match load_file(&path, ctx) {
            Ok(suite) => {
                if let Some(other) = names.get(&suite.name) {
                    out.diagnostics.push(Diagnostic::error(
                        &path,
                        1,
                        1,
                        format!(
                            "suite name `{}` is already used by {}",
                            suite.name,
                            other.display()
                        ),
                    ));
                    out.failed.push(path);
                    continue;
                }
                names.insert(suite.name.clone(), path);
                out.suites.push(suite);
            }
            Err(d) => {
                out.diagnostics.extend(d);
                out.failed.push(path);
            }
        }
    }
    out
}

/// Loads and validates one suite file, reporting every problem found.
pub fn load_file(path: &Path, ctx: &Context<'_>) -> Result<Suite, Diagnostics> {
    let file: SuiteFile = yaml::parse_file_all(path)?;
    let mut d = Diagnostics::default();
    validate(path, &file, ctx, &mut d);
    if d.has_errors() {
        return Err(d);
    }
    Ok(normalise(path, file))
}

/// Turns a user cron (5 fields, or 6 with seconds) into the 6-field form the
/// scheduler requires.
pub fn normalise_cron(expr: &str) -> Result<String, String> {
    let fields = expr.split_whitespace().count();
    let six = match fields {
        5 => format!("0 {}", expr.trim()),
        6 => expr.trim().to_string(),
        n => {
            return Err(format!(
                "cron needs 5 fields (or 6 with seconds), found {n}"
            ));
        }
    };
    croner::Cron::from_str(&six).map_err(|e| format!("invalid cron `{expr}`: {e}"))?;
    Ok(six)
}

fn validate(path: &Path, f: &SuiteFile, ctx: &Context<'_>, d: &mut Diagnostics) {
    d.check_name_version(path, "suite", &f.suite, &f.version);
    if let Some(s) = &f.schedule
        && let Err(e) = normalise_cron(&s.value)
    {
        d.push(Diagnostic::at(path, s, e));
    }
    if let Some(tz) = &f.timezone
        && tz.value.parse::<chrono_tz::Tz>().is_err()
    {
        d.push(Diagnostic::at(
            path,
            tz,
            format!(
                "unknown time zone `{}`; use an IANA name such as Europe/Paris",
                tz.value
            ),
        ));
    }
    if f.targets.value.is_empty() {
        d.push(Diagnostic::at(
            path,
            &f.targets,
            "targets must name at least one model",
        ));
    }
    for t in f.targets.value.iter().filter(|_| ctx.models.is_some()) {
        let models = ctx.models.expect("filtered");
        if !models.contains_key(t) {
            let hint = yaml::hint(t, models.keys().map(String::as_str));
            d.push(Diagnostic::at(
                path,
                &f.targets,
                format!("target `{t}` is not a model in the config{hint}"),
            ));
        }
    }
    if let Some(b) = &f.baseline
        && !f.targets.value.contains(&b.value)
    {
        d.push(Diagnostic::at(
            path,
            b,
            format!("baseline `{}` must be one of the targets", b.value),
        ));
    }
    if let Some(t) = f.timeout_secs
        && !(t.is_finite() && t > 0.0)
    {
        d.push(Diagnostic::at(
            path,
            &f.suite,
            "timeout_secs must be a positive number of seconds",
        ));
    }
    if f.concurrency == Some(0) {
        d.push(Diagnostic::at(
            path,
            &f.suite,
            "concurrency must be at least 1",
        ));
    }
    if f.cases.is_empty() {
        d.push(Diagnostic::at(
            path,
            &f.suite,
            "a suite needs at least one case",
        ));
    }
    let mut ids = BTreeSet::new();
    for case in &f.cases {
        validate_case(path, case, f, ctx, &mut ids, d);
    }
    if let Some(p) = &f.logprob_probe {
        super::probe::validate(path, p, f, d);
    }
    validate_equality(path, f, d);
}

/// The `equality:` blocks, and the suite's daily cost against its budget.
fn validate_equality(path: &Path, f: &SuiteFile, d: &mut Diagnostics) {
    use super::equality as spec;
    for c in &f.cases {
        if let Some(e) = &c.value.equality {
            spec::validate_case(path, e, &c.value.id, d);
            if f.equality.is_none() {
                d.push(Diagnostic::at(
                    path,
                    e,
                    format!(
                        "case `{}`: equality: overrides the suite's `equality:` block, which is missing",
                        c.value.id
                    ),
                ));
            }
        }
    }
    let Some(block) = &f.equality else {
        return;
    };
    spec::validate(path, block, &f.targets.value, d);
    let plan = spec::normalise(block.value.clone());
    let cases: Vec<_> = f
        .cases
        .iter()
        .map(|c| {
            c.value
                .equality
                .clone()
                .map(|e| spec::normalise_case(e.value))
        })
        .collect();
    let refs: Vec<_> = cases.iter().map(Option::as_ref).collect();
    let per_run = spec::calls_per_run(&plan, &refs, f.targets.value.len());
    let schedule = f
        .schedule
        .as_ref()
        .and_then(|s| normalise_cron(&s.value).ok());
    let per_day = spec::runs_per_day(
        schedule.as_deref(),
        f.timezone.as_ref().map(|t| t.value.as_str()),
    );
    spec::budget_check(path, block, per_run, per_day, d);
}

fn validate_case(
    path: &Path,
    spanned: &serde_saphyr::Spanned<Case>,
    f: &SuiteFile,
    ctx: &Context<'_>,
    ids: &mut BTreeSet<String>,
    d: &mut Diagnostics,
) {
    let case = &spanned.value;
    let at = |msg: String| Diagnostic::at(path, spanned, format!("case `{}`: {msg}", case.id));
    if !ids.insert(case.id.clone()) {
        d.push(at("duplicate case id".into()));
    }
    if let Some(rf) = &case.response_format {
        // Sent verbatim: a wrong shape would only show as a 400 from the
        // provider, recorded as a provider error on every run.
        let kind = rf.get("type").and_then(|t| t.as_str());
        let msg = match kind {
            None => Some("response_format needs a `type` (text, json_object or json_schema)"),
            Some("json_schema") if rf.pointer("/json_schema/schema").is_none() => {
                Some("response_format of type json_schema needs `json_schema: {name, schema}`")
            }
            Some("text" | "json_object" | "json_schema") => None,
            Some(_) => Some("response_format.type must be text, json_object or json_schema"),
        };
        if let Some(m) = msg {
            d.push(at(m.into()));
        }
    }
    match (&case.prompt, &case.messages) {
        (None, None) => d.push(at("needs `prompt` or `messages`".into())),
        (Some(_), Some(_)) => d.push(at("give `prompt` or `messages`, not both".into())),
        (Some(p), None) => {
            if let Err(e) = super::prompt::render(p, &f.vars) {
                d.push(at(format!("prompt template: {e}")));
            }
        }
        (None, Some(msgs)) => {
            if msgs.is_empty() {
                d.push(at("`messages` is empty".into()));
            }
            for m in msgs {
                if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                    d.push(at(format!(
                        "message role `{}` must be system, user or assistant",
                        m.role
                    )));
                }
                if let Err(e) = super::prompt::render(&m.content, &f.vars) {
                    d.push(at(format!("message template: {e}")));
                }
            }
        }
    }
    for e in &case.expect {
        let msg = match &e.value {
            Expectation::Regex(r) => regex::Regex::new(r)
                .err()
                .map(|e| format!("invalid regex: {e}")),
            Expectation::Judge(j) => match ctx.judges {
                Some(known) if !known.contains(&j.name) => Some(format!(
                    "unknown judge `{}`{}",
                    j.name,
                    yaml::hint(&j.name, known.iter().map(String::as_str))
                )),
                _ => None,
            },
            Expectation::Similar(s) if !(-1.0..=1.0).contains(&s.min) => {
                Some("similar.min is a cosine similarity between -1 and 1".into())
            }
            Expectation::JsonSchema(schema) if !schema.is_object() && !schema.is_boolean() => {
                Some("json_schema must be a JSON Schema object".into())
            }
            Expectation::JsonSchema(schema) => super::schema::check_supported(schema)
                .err()
                .map(|e| format!("json_schema: {e}")),
            Expectation::Similar(_)
                if ctx
                    .models
                    .is_some_and(|m| !m.contains_key(super::expect::EMBEDDER_MODEL)) =>
            {
                Some(format!(
                    "`similar` needs an embedding model named `{}` under `models:` in the config",
                    super::expect::EMBEDDER_MODEL
                ))
            }
            _ => None,
        };
        if let Some(m) = msg {
            d.push(Diagnostic::at(path, e, format!("case `{}`: {m}", case.id)));
        }
    }
}

fn normalise(path: &Path, f: SuiteFile) -> Suite {
    let mut suite = Suite {
        name: f.suite.value,
        version: f.version.value,
        description: f.description,
        schedule: f.schedule.and_then(|s| normalise_cron(&s.value).ok()),
        timezone: f.timezone.map(|t| t.value),
        targets: f.targets.value,
        baseline: f.baseline.map(|b| b.value),
        defaults: f.defaults,
        system: f.system,
        vars: f.vars,
        concurrency: f.concurrency,
        timeout_secs: f.timeout_secs,
        equality: f.equality.map(|e| super::equality::normalise(e.value)),
        cases: f
            .cases
            .into_iter()
            .map(|c| {
                let c = c.value;
                SuiteCase {
                    id: c.id,
                    prompt: c.prompt,
                    messages: c.messages,
                    context: c.context,
                    system: c.system,
                    temperature: c.temperature,
                    max_tokens: c.max_tokens,
                    stream: c.stream,
                    response_format: c.response_format,
                    expect: c.expect.into_iter().map(|e| e.value).collect(),
                    equality: c.equality.map(|e| super::equality::normalise_case(e.value)),
                }
            })
            .collect(),
        logprob_probe: f.logprob_probe.map(|p| p.value),
        content_hash: String::new(),
        path: path.to_path_buf(),
    };
    suite.content_hash = content_hash(&suite);
    suite
}

/// Hash of the normalised suite: formatting and comments do not change it,
/// anything that changes what is sent or expected does.
pub fn content_hash(suite: &Suite) -> String {
    let json = serde_json::to_vec(suite).expect("suite serialises");
    hex::encode(Sha256::digest(&json))
}
