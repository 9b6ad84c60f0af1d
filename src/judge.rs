//! What a client's result line means for its cell. The runner does not take
//! a client's word for it: every result is read against the checks its case
//! makes (`Case::checks`) and against what the manifests declare unsupported.

use std::path::Path;
use std::time::Duration;

use crate::cases::Case;
use crate::model::{CellResult, Outcome};
use crate::process::Exit;
use crate::protocol::{CheckState, Reported, ResultLine};
use crate::select::PlannedCell;

/// The runner's reading of one result line, before the manifests' claims.
#[derive(Debug, Clone, PartialEq)]
enum Reading {
    /// Every check of the case's row was made and passed, or is declared
    /// not made by the client.
    Pass,
    /// The client says the case failed.
    Fail,
    /// The client says it cannot attempt the case, for this reason.
    CannotAttempt(String),
    /// The result breaks the contract; what is wrong.
    Broken(String),
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

fn read(case: Case, line: &ResultLine) -> Reading {
    let row = case.checks();
    let named = line
        .checks
        .iter()
        .flat_map(|c| c.keys())
        .chain(line.not_checked.keys());
    let unknown: Vec<&str> = named
        .map(String::as_str)
        .filter(|n| !row.contains(n))
        .collect();
    if !unknown.is_empty() {
        return Reading::Broken(format!(
            "the result names checks that {case} does not make: {} (its checks: {})",
            list(&unknown),
            list(row)
        ));
    }
    match line.outcome {
        Reported::Unsupported => Reading::CannotAttempt(line.message.clone()),
        Reported::Failed => Reading::Fail,
        Reported::Passed => {
            let Some(checks) = &line.checks else {
                return Reading::Broken("the result names no checks".to_string());
            };
            if checks.is_empty() {
                return Reading::Broken(if line.not_checked.is_empty() {
                    "the result made no check".to_string()
                } else {
                    format!(
                        "the result made no check (not made: {})",
                        list(
                            &line
                                .not_checked
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                        )
                    )
                });
            }
            let failed: Vec<&str> = checks
                .iter()
                .filter(|(_, s)| **s == CheckState::Failed)
                .map(|(n, _)| n.as_str())
                .collect();
            if !failed.is_empty() {
                return Reading::Broken(format!(
                    "the result says passed, but these checks failed: {}",
                    list(&failed)
                ));
            }
            let missing: Vec<&str> = row
                .iter()
                .copied()
                .filter(|n| !checks.contains_key(*n) && !line.not_checked.contains_key(*n))
                .collect();
            if !missing.is_empty() {
                return Reading::Broken(format!(
                    "the result says passed without making {} and without saying why",
                    list(&missing)
                ));
            }
            Reading::Pass
        }
    }
}

/// Judges the result line `line` that client `planned.id.client` (manifest
/// `manifest`) printed for `planned`; `measured` is the runner's own timing.
pub fn judge(
    planned: &PlannedCell,
    line: &ResultLine,
    manifest: &Path,
    measured: Duration,
) -> CellResult {
    let client = &planned.id.client;
    let declared = planned.unsupported();
    let mut result = CellResult {
        duration: line.duration(measured),
        checks: line.checks.clone(),
        not_checked: line.not_checked.clone(),
        metrics: line.metrics.clone(),
        observed: line.observed.clone(),
        unsupported: declared.clone(),
        ..CellResult::not_run(planned.id.clone(), Outcome::Failed, "")
    };
    let (outcome, message) = match read(planned.id.case, line) {
        Reading::CannotAttempt(reason) => match &planned.client_unsupported {
            Some(want) if *want == reason => (Outcome::Unsupported, declared.unwrap_or_default()),
            Some(want) => (
                Outcome::Failed,
                format!(
                    "client {client} reports it cannot attempt the case: {reason:?}, but {} gives another reason: {want:?}",
                    manifest.display()
                ),
            ),
            None => (
                Outcome::Failed,
                format!(
                    "client {client} reports it cannot attempt the case ({reason:?}), but {} does not declare it",
                    manifest.display()
                ),
            ),
        },
        Reading::Broken(what) => (
            Outcome::Failed,
            if line.message.is_empty() {
                format!("client {client} broke the result contract: {what}")
            } else {
                format!(
                    "client {client} broke the result contract: {what}; its message: {}",
                    line.message
                )
            },
        ),
        Reading::Fail => match declared {
            // Shown not to work: the failure is the evidence.
            Some(reason) => (
                Outcome::Unsupported,
                format!("{reason} [shown: {}]", line.message),
            ),
            None => (Outcome::Failed, line.message.clone()),
        },
        Reading::Pass => {
            let not_made: Vec<&str> = line.not_checked.keys().map(String::as_str).collect();
            match (declared, not_made.is_empty()) {
                // Unexpectedly supported: counted against the verdict (model).
                (Some(_), true) => (Outcome::Passed, String::new()),
                (Some(reason), false) => (
                    Outcome::Unsupported,
                    format!(
                        "{reason} [not shown: client {client} passed without making {}, which would show it]",
                        list(&not_made)
                    ),
                ),
                (None, true) => (Outcome::Passed, String::new()),
                (None, false) => (Outcome::PassedPartial, String::new()),
            }
        }
    };
    result.outcome = outcome;
    result.message = message;
    result
}

/// How many lines of a client's output the message of a failed exit-status
/// case quotes.
const EXIT_TAIL_LINES: usize = 3;

/// Judges a case of a client that reports by its exit status only (one case
/// per process): passed when it exited 0, failed otherwise, with its last
/// output lines. Its checks are its own and unnamed: the cell says so.
pub fn judge_exit(
    planned: &PlannedCell,
    exit: Option<Exit>,
    output: &[String],
    measured: Duration,
) -> CellResult {
    let declared = planned.unsupported();
    let mut result = CellResult {
        duration: measured,
        reported_by: Some("exit_status"),
        unsupported: declared.clone(),
        ..CellResult::not_run(planned.id.clone(), Outcome::Failed, "")
    };
    if exit == Some(Exit::Code(0)) {
        // A full pass, also of a declared unsupported cell (then unexpectedly supported).
        result.outcome = Outcome::Passed;
        return result;
    }
    let ended = exit.map_or_else(|| "it did not exit".to_string(), |e| e.to_string());
    let tail: Vec<&str> = output
        .iter()
        .rev()
        .take(EXIT_TAIL_LINES)
        .rev()
        .map(|l| l.trim())
        .collect();
    let failure = format!(
        "client {} ended with {ended}; its last output: {}",
        planned.id.client,
        if tail.is_empty() {
            "(none)".to_string()
        } else {
            tail.join(" | ")
        }
    );
    match declared {
        Some(reason) => {
            result.outcome = Outcome::Unsupported;
            result.message = format!("{reason} [shown: {failure}]");
        }
        None => result.message = failure,
    }
    result
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{CellId, Problem};

    fn planned(case: Case, client: Option<&str>, server: Option<&str>) -> PlannedCell {
        PlannedCell {
            id: CellId {
                client: "c".into(),
                server: "s".into(),
                case,
            },
            client_unsupported: client.map(String::from),
            server_unsupported: server.map(String::from),
        }
    }

    fn line(case: Case, outcome: Reported, checks: &[(&str, CheckState)]) -> ResultLine {
        ResultLine {
            case: case.name().into(),
            outcome,
            duration_ms: 1.0,
            message: if outcome == Reported::Failed {
                "UnaryCall payload size = 1, want 314159".into()
            } else {
                String::new()
            },
            checks: Some(checks.iter().map(|(n, s)| (n.to_string(), *s)).collect()),
            not_checked: BTreeMap::new(),
            metrics: BTreeMap::new(),
            observed: BTreeMap::new(),
            exit_status: None,
        }
    }

    fn all_passed(case: Case) -> Vec<(&'static str, CheckState)> {
        case.checks()
            .iter()
            .map(|n| (*n, CheckState::Passed))
            .collect()
    }

    fn judged(p: &PlannedCell, l: &ResultLine) -> CellResult {
        judge(p, l, Path::new("impl/c.toml"), Duration::ZERO)
    }

    #[test]
    fn a_full_pass_passes_and_a_pass_with_a_check_not_made_is_partial() {
        let p = planned(Case::LargeUnary, None, None);
        let r = judged(
            &p,
            &line(
                Case::LargeUnary,
                Reported::Passed,
                &all_passed(Case::LargeUnary),
            ),
        );
        assert_eq!((r.outcome, r.message.as_str()), (Outcome::Passed, ""));
        let case = Case::ServerCompressedStreaming;
        let mut l = line(case, Reported::Passed, &all_passed(case));
        l.checks.as_mut().unwrap().remove("response_compressed");
        l.not_checked
            .insert("response_compressed".into(), "cannot see flags".into());
        let r = judged(&planned(case, None, None), &l);
        assert_eq!(r.outcome, Outcome::PassedPartial);
        assert_eq!(r.not_checked["response_compressed"], "cannot see flags");
        assert!(r.is_ok());
    }

    #[test]
    fn a_pass_that_made_no_check_fails() {
        let p = planned(Case::EmptyUnary, None, None);
        let r = judged(&p, &line(Case::EmptyUnary, Reported::Passed, &[]));
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(
            r.message,
            "client c broke the result contract: the result made no check"
        );
        let mut l = line(Case::EmptyUnary, Reported::Passed, &[]);
        l.checks = None;
        assert!(judged(&p, &l).message.contains("names no checks"));
    }

    #[test]
    fn a_pass_with_a_failed_missing_or_unknown_check_fails() {
        let case = Case::LargeUnary;
        let p = planned(case, None, None);
        let mut checks = all_passed(case);
        checks[1].1 = CheckState::Failed;
        let r = judged(&p, &line(case, Reported::Passed, &checks));
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(
            r.message
                .contains("says passed, but these checks failed: payload_size"),
            "{}",
            r.message
        );
        let r = judged(&p, &line(case, Reported::Passed, &all_passed(case)[..2]));
        assert!(
            r.message
                .contains("without making payload_body, payload_type and without saying why"),
            "{}",
            r.message
        );
        let mut checks = all_passed(case);
        checks.push(("payload_colour", CheckState::Passed));
        let r = judged(&p, &line(case, Reported::Failed, &checks));
        assert!(
            r.message.contains("does not make: payload_colour"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_failure_fails_with_the_clients_message() {
        let case = Case::LargeUnary;
        let r = judged(
            &planned(case, None, None),
            &line(
                case,
                Reported::Failed,
                &[
                    ("status", CheckState::Passed),
                    ("payload_size", CheckState::Failed),
                ],
            ),
        );
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (Outcome::Failed, "UnaryCall payload size = 1, want 314159")
        );
        assert_eq!(r.failed_checks(), ["payload_size"]);
    }

    #[test]
    fn an_exit_status_client_passes_on_exit_0_and_fails_with_its_last_output() {
        let p = planned(Case::LargeUnary, None, None);
        let r = judge_exit(&p, Some(Exit::Code(0)), &[], Duration::from_millis(5));
        assert_eq!(
            (r.outcome, r.reported_by),
            (Outcome::Passed, Some("exit_status"))
        );
        assert_eq!(r.checks, None);
        let output = [
            "a".to_string(),
            "b".into(),
            "c".into(),
            "Unsupported test case".into(),
        ];
        let r = judge_exit(&p, Some(Exit::Code(1)), &output, Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(
            r.message,
            "client c ended with exit status 1; its last output: b | c | Unsupported test case"
        );
        // A declared unsupported cell: the failure shows it; a pass does not.
        let p = planned(Case::ClientCompressedUnary, Some("no compression"), None);
        let r = judge_exit(&p, Some(Exit::Code(1)), &output, Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Unsupported);
        assert!(
            r.message.starts_with("client c: no compression [shown: "),
            "{}",
            r.message
        );
        let r = judge_exit(&p, Some(Exit::Code(0)), &[], Duration::ZERO);
        assert_eq!(
            r.problem(),
            Some(crate::model::Problem::UnexpectedlySupported)
        );
    }

    #[test]
    fn a_declared_unsupported_cell_must_fail_or_be_refused_with_the_same_reason() {
        let case = Case::ClientCompressedUnary;
        // Server side declared: the client plays; failing shows it.
        let p = planned(case, None, Some("cannot see compression"));
        let r = judged(
            &p,
            &line(
                case,
                Reported::Failed,
                &[("probe.status_code", CheckState::Failed)],
            ),
        );
        assert_eq!(r.outcome, Outcome::Unsupported);
        assert!(
            r.message
                .starts_with("server s: cannot see compression [shown: "),
            "{}",
            r.message
        );
        // Passing in full: unexpectedly supported.
        let r = judged(&p, &line(case, Reported::Passed, &all_passed(case)));
        assert_eq!(r.outcome, Outcome::Passed);
        assert_eq!(r.problem(), Some(Problem::UnexpectedlySupported));
        // Passing with a check not made: not shown either way, stays unsupported.
        let mut l = line(case, Reported::Passed, &all_passed(case));
        l.checks
            .as_mut()
            .unwrap()
            .remove("compressed.sent_compressed");
        l.not_checked
            .insert("compressed.sent_compressed".into(), "cannot see".into());
        let r = judged(&p, &l);
        assert_eq!(r.outcome, Outcome::Unsupported);
        assert!(r.message.contains("[not shown: "), "{}", r.message);
        assert!(r.is_ok());

        // Client side declared: its own refusal must give the manifest's reason.
        let p = planned(case, Some("no per-message control"), None);
        let mut refusal = line(case, Reported::Unsupported, &[]);
        refusal.checks = None;
        refusal.message = "no per-message control".into();
        let r = judged(&p, &refusal);
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (Outcome::Unsupported, "client c: no per-message control")
        );
        refusal.message = "another story".into();
        let r = judged(&p, &refusal);
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.message.contains("gives another reason"), "{}", r.message);
        // A refusal nobody declared.
        let r = judged(&planned(case, None, None), &refusal);
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.message.contains("does not declare it"), "{}", r.message);
    }
}
