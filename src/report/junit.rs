//! The JUnit XML report (via quick-junit): one test suite per client→server
//! pairing, one test case per cell.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::model::{CellResult, Event, Outcome, Reporter};

/// Builds the XML of a finished run.
pub fn to_string(results: &[CellResult], duration: std::time::Duration) -> anyhow::Result<String> {
    let mut suites: BTreeMap<(String, String), TestSuite> = BTreeMap::new();
    for r in results {
        let suite_name = format!("client={}/server={}", r.id.client, r.id.server);
        let suite = suites
            .entry((r.id.client.clone(), r.id.server.clone()))
            .or_insert_with(|| TestSuite::new(suite_name.clone()));
        let status = match (r.outcome, &r.known_failure) {
            (Outcome::Passed, Some(reason)) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("listed as a known failure ({reason}) but passed"));
                s.set_type("unexpected_pass");
                s
            }
            (Outcome::Passed, None) => TestCaseStatus::success(),
            (Outcome::Unsupported, _) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!("unsupported: {}", r.message));
                s
            }
            (o, Some(reason)) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!(
                    "known failure ({reason}): {}: {}",
                    o.name(),
                    r.message
                ));
                s
            }
            (o, None) => {
                let kind = if o == Outcome::Failed {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(r.message.clone());
                s.set_type(o.name());
                if !r.logs.is_empty() {
                    s.set_description(r.logs.join("\n"));
                }
                s
            }
        };
        let mut case = TestCase::new(r.id.case.name(), status);
        case.set_classname(suite_name);
        case.set_time(r.duration);
        suite.add_test_case(case);
    }
    let mut report = Report::new("polyglot-grpc-interop");
    report.set_time(duration);
    report.add_test_suites(suites.into_values());
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
        if let Event::RunFinished {
            results, duration, ..
        } = event
        {
            let xml = to_string(results, *duration)?;
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
            id: CellId {
                client: client.into(),
                server: "go".into(),
                case,
            },
            outcome,
            duration: Duration::from_millis(5),
            message: message.into(),
            known_failure: None,
            logs: vec![],
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
        ];
        let xml = to_string(&results, Duration::from_secs(1)).unwrap();
        assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
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
