//! The JUnit XML report (via quick-junit): one test suite per client→server
//! pairing, one test case per cell.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::model::{CellResult, Event, Finished, Outcome, Problem, Reporter};
use crate::protocol::CheckState;

/// The JUnit status of a cell: success, skipped (unsupported, or a known
/// failure that failed as its entry says), failure or error.
fn status_of(r: &CellResult) -> TestCaseStatus {
    let non_success = |kind, ty: &str, message: String| {
        let mut s = TestCaseStatus::non_success(kind);
        s.set_message(message);
        s.set_type(ty);
        if !r.logs.is_empty() {
            s.set_description(r.logs.join("\n"));
        }
        s
    };
    match r.problem() {
        Some(Problem::UnexpectedPass) => {
            non_success(NonSuccessKind::Failure, "unexpected_pass", r.tag())
        }
        Some(Problem::UnexpectedlySupported) => {
            non_success(NonSuccessKind::Failure, "unexpectedly_supported", r.tag())
        }
        Some(Problem::OtherOutcome | Problem::NotPassed) => {
            let kind = if r.outcome == Outcome::Failed {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let message = if r.known_failure.is_some() {
                format!("{}: {}", r.tag(), r.message)
            } else {
                r.message.clone()
            };
            non_success(kind, r.outcome.name(), message)
        }
        None if r.outcome == Outcome::Unsupported => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("unsupported: {}", r.message));
            s
        }
        None if !r.outcome.is_pass() => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("{}: {}", r.tag(), r.message));
            s
        }
        None => TestCaseStatus::success(),
    }
}

/// Properties of a test case: its outcome, the checks made and not made,
/// and its known-failure entry.
fn properties(r: &CellResult) -> Vec<(String, String)> {
    let mut props = vec![("outcome".to_string(), r.outcome.name().to_string())];
    for (check, state) in r.checks.iter().flatten() {
        let state = match state {
            CheckState::Passed => "passed",
            CheckState::Failed => "failed",
        };
        props.push((format!("check.{check}"), state.to_string()));
    }
    for (check, reason) in &r.not_checked {
        props.push((format!("not_checked.{check}"), reason.clone()));
    }
    for (name, value) in &r.metrics {
        props.push((format!("metric.{name}"), value.to_string()));
    }
    for (name, value) in &r.observed {
        props.push((format!("observed.{name}"), value.clone()));
    }
    if let Some(how) = r.reported_by {
        props.push(("reported_by".to_string(), how.to_string()));
    }
    if let Some(k) = &r.known_failure {
        props.push(("known_failure".to_string(), k.describe()));
        props.push((
            "known_failure.accepts".to_string(),
            k.accepts.name().to_string(),
        ));
    }
    if let Some(reason) = &r.unsupported {
        props.push(("declared_unsupported".to_string(), reason.clone()));
    }
    props
}

/// Builds the XML of a finished run.
pub fn to_string(run: Finished<'_>) -> anyhow::Result<String> {
    let results = run.results;
    let mut suites: BTreeMap<(String, String), TestSuite> = BTreeMap::new();
    for r in results {
        let suite_name = format!("client={}/server={}", r.id.client, r.id.server);
        let suite = suites
            .entry((r.id.client.clone(), r.id.server.clone()))
            .or_insert_with(|| TestSuite::new(suite_name.clone()));
        let status = status_of(r);
        let mut case = TestCase::new(r.id.case.name(), status);
        case.set_classname(suite_name);
        case.set_time(r.duration);
        for (name, value) in properties(r) {
            case.add_property(Property::new(name, value));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("polyglot-grpc-interop");
    report.set_time(run.duration);
    let suites = suites.into_values().map(|mut suite| {
        for note in run.notes {
            suite.add_property(Property::new("run.not_checked", note.as_str()));
        }
        suite
    });
    report.add_test_suites(suites);
    Ok(report.to_string()?)
}

/// Writes the JUnit file when the run finishes.
pub struct Junit {
    path: PathBuf,
}

impl Junit {
    pub fn new(path: PathBuf) -> Junit {
        Junit { path }
    }
}

impl Reporter for Junit {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Some(run) = event.finished() {
            let xml = to_string(run)?;
            super::write_file(&self.path, xml.as_bytes())
                .with_context(|| format!("writing JUnit report {}", self.path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Case;
    use crate::model::CellId;
    use std::time::Duration;

    #[test]
    fn one_testcase_per_cell_with_failures_and_skips() {
        let cell = |client: &str, case, outcome, message: &str| CellResult {
            duration: Duration::from_millis(5),
            ..CellResult::not_run(
                CellId {
                    client: client.into(),
                    server: "go".into(),
                    case,
                },
                outcome,
                message,
            )
        };
        let results = [
            cell("rust", Case::EmptyUnary, Outcome::Passed, ""),
            cell(
                "rust",
                Case::LargeUnary,
                Outcome::Failed,
                "size = 1, want 314159",
            ),
            cell(
                "python",
                Case::ClientCompressedStreaming,
                Outcome::Unsupported,
                "no per-message control",
            ),
            cell(
                "python",
                Case::PingPong,
                Outcome::TimedOut,
                "no result within 20 s",
            ),
            CellResult {
                not_checked: [("response_compressed".to_string(), "cannot see".to_string())].into(),
                ..cell(
                    "python",
                    Case::ServerCompressedStreaming,
                    Outcome::PassedPartial,
                    "",
                )
            },
        ];
        let notes = ["exit statuses not checked".to_string()];
        let xml = to_string(Finished {
            notes: &notes,
            ..Finished::of(&results, Duration::from_secs(1), false)
        })
        .unwrap();
        assert!(
            xml.contains(r#"<property name="run.not_checked" value="exit statuses not checked"/>"#),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
        assert!(
            xml.contains(r#"<property name="outcome" value="passed_partial"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<property name="not_checked.response_compressed" value="cannot see"/>"#
            ),
            "{xml}"
        );
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(
            xml.contains(r#"<testcase name="large_unary" classname="client=rust/server=go""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="size = 1, want 314159" type="failed""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<error message="no result within 20 s" type="timed_out""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="unsupported: no per-message control""#),
            "{xml}"
        );
    }
}
