//! Loading and validating the judges directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::spec::{AppliesWhen, JudgeCanary, JudgeFile, Scale};
use crate::diag::{Diagnostic, Diagnostics};
use crate::provider::ModelRef;
use crate::yaml;
use crate::yaml::yaml_files;

/// A validated judge.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Judge {
    pub name: String,
    pub version: i64,
    pub description: Option<String>,
    /// Model name from the config.
    pub model: String,
    pub scale: Scale,
    pub applies_when: AppliesWhen,
    pub prompt: String,
    pub canaries: Vec<JudgeCanary>,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub judges: Vec<Judge>,
    pub failed: Vec<PathBuf>,
    pub diagnostics: Diagnostics,
}

impl Loaded {
    pub fn names(&self) -> BTreeSet<String> {
        self.judges.iter().map(|j| j.name.clone()).collect()
    }
}

/// `models` are the config's named models (`None` when loading without a
/// config, as `check` does on a broken one): a judge must name one of them.
pub fn load_dir(dir: &Path, models: Option<&Models>) -> Loaded {
    let mut out = Loaded::default();
    let files = match yaml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                dir,
                0,
                0,
                format!("cannot read judges directory: {e}"),
            ));
            return out;
        }
    };
    for path in files {
        match load_file(&path, models) {
            Ok(j) if out.judges.iter().any(|o| o.name == j.name) => {
                out.diagnostics.push(Diagnostic::error(
                    &path,
                    1,
                    1,
                    format!("judge name `{}` is used twice", j.name),
                ));
                out.failed.push(path);
            }
            Ok(j) => out.judges.push(j),
            Err(d) => {
                out.diagnostics.extend(d);
                out.failed.push(path);
            }
        }
    }
    out
}

/// The config's named models (`models:`), which judges refer to.
pub type Models = std::collections::BTreeMap<String, serde_saphyr::Spanned<ModelRef>>;

pub fn load_file(path: &Path, models: Option<&Models>) -> Result<Judge, Diagnostics> {
    let f: JudgeFile = yaml::parse_file_all(path)?;
    let mut d = Diagnostics::default();
    d.check_name_version(path, "judge", &f.name, &f.version);
    if let Some(models) = models
        && !models.contains_key(&f.model.value)
    {
        let hint = yaml::hint(&f.model.value, models.keys().map(String::as_str));
        let (line, col) = (f.model.referenced.line(), f.model.referenced.column());
        d.push(Diagnostic::error(
            path,
            line.max(1),
            col.max(1),
            format!(
                "model `{}` is not defined under `models:` in the config{hint}",
                f.model.value
            ),
        ));
    }
    if f.scale.min >= f.scale.max {
        d.push(Diagnostic::at(
            path,
            &f.name,
            "scale.min must be below scale.max",
        ));
    }
    if let Err(e) = super::template::check(&f.prompt.value) {
        d.push(Diagnostic::at(
            path,
            &f.prompt,
            format!("prompt template: {e}"),
        ));
    }
    for c in &f.canaries {
        if !(f.scale.min..=f.scale.max).contains(&c.value.expected) {
            d.push(Diagnostic::at(
                path,
                c,
                "canary expected score is outside the scale",
            ));
        }
    }
    if d.has_errors() {
        return Err(d);
    }
    Ok(Judge {
        name: f.name.value,
        version: f.version.value,
        description: f.description,
        model: f.model.value,
        scale: f.scale,
        applies_when: f.applies_when,
        prompt: f.prompt.value,
        canaries: f.canaries.into_iter().map(|c| c.value).collect(),
        path: path.to_path_buf(),
    })
}
