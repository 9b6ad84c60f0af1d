//! Baselines of the answers the spec does not prescribe.
//!
//! Where the spec is silent on how a server answers a bad input (a `bad_input`
//! case whose `answer` check is reported not made), the answer each server
//! gave is kept in `baselines/bad_input.toml`:
//!
//! ```toml
//! [rust]
//! metadata_64k = "GOAWAY ENHANCE_YOUR_CALM"
//! [python]
//! # a server whose answer varies from run to run lists each one it gives
//! metadata_64k = ["HTTP 200, grpc-status 0", "HTTP 200, grpc-status 8"]
//! ```
//!
//! A played cell whose answer differs from its server's baseline fails: a
//! change either way is news, and the baseline is raised or lowered
//! knowingly. So does one with no baseline yet, saying what to record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cases::{Case, CaseGroup};
use crate::model::{CellResult, Outcome};

/// The file, relative to the repository root.
pub const FILE: &str = "baselines/bad_input.toml";

/// The key of the answer in a result's `observed`.
pub const ANSWER: &str = "answer";

/// Errors of reading the baselines.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One baseline: the answer, or each of the answers a server gives from
/// run to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
enum Answers {
    One(String),
    Any(Vec<String>),
}

impl Answers {
    fn all(&self) -> &[String] {
        match self {
            Answers::One(a) => std::slice::from_ref(a),
            Answers::Any(a) => a,
        }
    }
}

/// Answers by server, then by case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baselines {
    answers: BTreeMap<String, BTreeMap<String, Answers>>,
}

impl Baselines {
    /// Parses the file's text: one table per server, `case = "answer"`.
    /// Every case must be a `bad_input` case.
    pub fn parse(text: &str, path: &Path) -> Result<Self, BaselineError> {
        let invalid = |message: String| BaselineError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let answers: BTreeMap<String, BTreeMap<String, Answers>> =
            toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (server, cases) in &answers {
            for (name, answers) in cases {
                if answers.all().is_empty() {
                    return Err(invalid(format!("[{server}] {name}: no answer listed")));
                }
                match name.parse::<Case>() {
                    Ok(case) if case.group() == CaseGroup::BadInput => {}
                    Ok(_) => {
                        return Err(invalid(format!(
                            "[{server}] {name} is not a bad_input case"
                        )));
                    }
                    Err(_) => return Err(invalid(format!("[{server}] unknown case {name:?}"))),
                }
            }
        }
        Ok(Baselines { answers })
    }

    /// Loads the file; a missing file means no baselines.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(BaselineError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The baseline answers of `server` to `case` (one, or each it gives).
    pub fn get(&self, server: &str, case: Case) -> Option<&[String]> {
        self.answers.get(server)?.get(case.name()).map(Answers::all)
    }

    /// Holds a judged result of `server` against the baseline, when its
    /// `answer` was reported not checked (the spec is silent) and it came
    /// with an observed answer: a different or missing baseline fails it.
    pub fn apply(&self, server: &str, result: &mut CellResult) {
        if result.id.case.group() != CaseGroup::BadInput
            || !result.not_checked.contains_key(ANSWER)
            || !result.outcome.is_pass()
        {
            return;
        }
        let Some(answer) = result.observed.get(ANSWER) else {
            return;
        };
        let problem = match self.get(server, result.id.case) {
            Some(baseline) if baseline.contains(answer) => return,
            Some([one]) => format!(
                "the answer {answer:?} differs from the baseline {one:?} of server {server} ({FILE}): \
                 the spec is silent, so a change either way is news; update the baseline knowingly"
            ),
            Some(many) => format!(
                "the answer {answer:?} is none of the baseline answers {many:?} of server {server} ({FILE}): \
                 the spec is silent, so a change either way is news; update the baseline knowingly"
            ),
            None => format!(
                "no baseline for server {server}'s answer to {} in {FILE}: it answered {answer:?}; \
                 record it there",
                result.id.case
            ),
        };
        result.outcome = Outcome::Failed;
        result.message = if result.message.is_empty() {
            problem
        } else {
            format!("{problem}; {}", result.message)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CellId;

    fn result(answer: &str) -> CellResult {
        let mut r = CellResult::not_run(
            CellId {
                client: "bad-client".into(),
                server: "rust".into(),
                case: Case::Metadata64k,
            },
            Outcome::PassedPartial,
            "",
        );
        r.not_checked
            .insert(ANSWER.into(), "the spec is silent".into());
        r.observed.insert(ANSWER.into(), answer.into());
        r
    }

    #[test]
    fn answers_are_held_against_the_baseline() {
        let path = Path::new(FILE);
        let b = Baselines::parse(
            "[rust]\nmetadata_64k = \"GOAWAY ENHANCE_YOUR_CALM\"\n",
            path,
        )
        .unwrap();
        let mut same = result("GOAWAY ENHANCE_YOUR_CALM");
        b.apply("rust", &mut same);
        assert_eq!(same.outcome, Outcome::PassedPartial);

        let mut changed = result("HTTP 200, grpc-status 0");
        b.apply("rust", &mut changed);
        assert_eq!(changed.outcome, Outcome::Failed);
        assert!(
            changed
                .message
                .contains("differs from the baseline \"GOAWAY ENHANCE_YOUR_CALM\""),
            "{}",
            changed.message
        );

        let b = Baselines::parse(
            "[rust]\nmetadata_64k = \"GOAWAY ENHANCE_YOUR_CALM\"\n\
             [python]\nmetadata_64k = [\"HTTP 200, grpc-status 0\", \"HTTP 200, grpc-status 8\"]\n",
            path,
        )
        .unwrap();
        for answer in ["HTTP 200, grpc-status 0", "HTTP 200, grpc-status 8"] {
            let mut either = result(answer);
            b.apply("python", &mut either);
            assert_eq!(either.outcome, Outcome::PassedPartial, "{answer}");
        }
        let mut neither = result("GOAWAY ENHANCE_YOUR_CALM");
        b.apply("python", &mut neither);
        assert!(
            neither.message.contains("none of the baseline answers"),
            "{}",
            neither.message
        );

        let mut unknown = result("HTTP 200, grpc-status 0");
        b.apply("go", &mut unknown);
        assert_eq!(unknown.outcome, Outcome::Failed);
        assert!(
            unknown.message.contains("no baseline"),
            "{}",
            unknown.message
        );

        // A checked answer is the spec's business, not the baseline's.
        let mut checked = result("anything");
        checked.not_checked.clear();
        checked.outcome = Outcome::Passed;
        b.apply("go", &mut checked);
        assert_eq!(checked.outcome, Outcome::Passed);
    }

    #[test]
    fn the_file_names_only_bad_input_cases() {
        let path = Path::new(FILE);
        let err = Baselines::parse("[rust]\nlarge_unary = \"x\"\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a bad_input case"), "{err}");
        let err = Baselines::parse("[rust]\nmetadata_65k = \"x\"\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown case"), "{err}");
    }
}
