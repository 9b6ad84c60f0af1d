//! `interop collect`: builds the matrix from result files that clients wrote
//! elsewhere (the compose run, where every client is its own container and
//! writes `--result_file <dir>/<client>-to-<server>.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Exit;
use crate::judge::{judge, judge_exit};
use crate::manifest::{Implementation, Results};
use crate::model::{CellResult, Event, Outcome};
use crate::protocol::{self, Line, Reported, ResultLine};
use crate::runner::{self, Options, Sink, Summary};
use crate::select::{Plan, PlannedCell};

/// How often the result folder is read while waiting.
const POLL: Duration = Duration::from_millis(250);
/// Files written up to this long before the collector started still count:
/// a client may truncate its file a moment before the collector is up.
const START_SLACK: Duration = Duration::from_secs(2);

/// The result file of one pairing.
pub fn result_file(dir: &Path, client: &str, server: &str) -> PathBuf {
    dir.join(format!("{client}-to-{server}.jsonl"))
}

/// What one result file holds so far.
#[derive(Debug, Default)]
struct FileState {
    /// Result lines by case name, the first of each.
    results: BTreeMap<String, ResultLine>,
    result_lines: usize,
    reported_failed: bool,
    done: Option<usize>,
    /// Lines that could not be read, or repeated a case.
    notes: Vec<String>,
}

fn read_file(path: &Path, since: SystemTime) -> Option<FileState> {
    let meta = std::fs::metadata(path).ok()?;
    // A file from an earlier run is not this run's result.
    if meta.modified().ok()? + START_SLACK < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut state = FileState::default();
    for line in text.lines().filter(|l| protocol::is_protocol_line(l)) {
        match protocol::parse(line) {
            Ok(Line::Result(r)) => {
                state.result_lines += 1;
                state.reported_failed |= r.outcome == Reported::Failed;
                if state.results.contains_key(&r.case) {
                    state
                        .notes
                        .push(format!("[collect] a second result for case {:?}", r.case));
                } else {
                    state.results.insert(r.case.clone(), r);
                }
            }
            Ok(Line::Done { cases }) => state.done = Some(cases),
            Ok(other) => state.notes.push(format!(
                "[collect] unexpected line in a result file: {other:?}"
            )),
            Err(e) => state
                .notes
                .push(format!("[collect] unreadable line ({e}): {line}")),
        }
    }
    Some(state)
}

/// Exit statuses of the client containers, by `<client>-to-<server>`, as
/// `scripts/compose-matrix.sh` writes them once every client has exited.
fn read_exit_codes(path: &Path, since: SystemTime) -> Option<BTreeMap<String, i64>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.modified().ok()? + START_SLACK < since {
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Where the clients' exit statuses come from, and how long to wait for them
/// once every result file is complete.
#[derive(Debug, Clone)]
pub struct ExitCodes {
    pub path: PathBuf,
    pub wait: Duration,
}

/// Waits until every pairing of `plan` has a finished result file in `dir`
/// (and then up to `exit_codes.wait` for the exit statuses), or `timeout`
/// passes, or `cancel` fires; then judges every cell as the runner does:
/// each result against its case's checks and the manifests, each file's
/// done count and the client's exit status against its results. Exit
/// statuses that do not come are reported as not checked.
#[allow(clippy::too_many_arguments)]
pub async fn collect(
    dir: &Path,
    exit_codes: Option<&ExitCodes>,
    impls: &[Implementation],
    plan: &Plan,
    opts: &Options,
    timeout: Duration,
    sink: Arc<Sink>,
    cancel: CancellationToken,
) -> Summary {
    let started = Instant::now();
    let since = SystemTime::now();
    sink.emit(&Event::RunStarted(runner::run_info(
        "compose", impls, plan, opts,
    )));
    sink.emit(&Event::Phase(format!(
        "waiting for result files in {}",
        dir.display()
    )));
    let manifests: BTreeMap<&str, &Path> = impls
        .iter()
        .map(|i| (i.name.as_str(), i.source.as_path()))
        .collect();
    let reports_by_exit_status: std::collections::BTreeSet<&str> = impls
        .iter()
        .filter(|i| {
            i.client
                .as_ref()
                .is_some_and(|c| c.results == Results::ExitStatus)
        })
        .map(|i| i.name.as_str())
        .collect();
    let mut pairings: Vec<(String, String)> = plan
        .cells
        .iter()
        .map(|c| (c.id.client.clone(), c.id.server.clone()))
        .collect();
    pairings.dedup();

    let deadline = started + timeout;
    let mut states: BTreeMap<(String, String), FileState> = BTreeMap::new();
    let mut codes = None;
    let mut results_done_at = None;
    loop {
        for (client, server) in &pairings {
            if let Some(state) = read_file(&result_file(dir, client, server), since) {
                states.insert((client.clone(), server.clone()), state);
            }
        }
        if let Some(e) = exit_codes {
            codes = read_exit_codes(&e.path, since);
        }
        let results_done = pairings
            .iter()
            .all(|p| states.get(p).is_some_and(|s| s.done.is_some()));
        if results_done && results_done_at.is_none() {
            results_done_at = Some(Instant::now());
        }
        let codes_done = match (exit_codes, results_done_at) {
            (None, _) => true,
            (Some(_), _) if codes.is_some() => true,
            (Some(e), Some(at)) => at.elapsed() >= e.wait,
            (Some(_), None) => false,
        };
        if (results_done && codes_done) || Instant::now() >= deadline || cancel.is_cancelled() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {},
            () = cancel.cancelled() => {},
        }
    }

    let mut by_pairing: BTreeMap<(String, String), Vec<&PlannedCell>> = BTreeMap::new();
    for cell in &plan.cells {
        by_pairing
            .entry((cell.id.client.clone(), cell.id.server.clone()))
            .or_default()
            .push(cell);
    }
    for ((client, server), cells) in by_pairing {
        let file = result_file(dir, &client, &server);
        let manifest = manifests
            .get(client.as_str())
            .copied()
            .unwrap_or(Path::new("?"));
        let state = states.get(&(client.clone(), server.clone()));
        let by_exit_status = reports_by_exit_status.contains(client.as_str());
        let mut results: Vec<CellResult> = cells
            .iter()
            .map(|cell| {
                let line = state.and_then(|s| s.results.get(cell.id.case.name()));
                match line {
                    // Its adapter wrote what the exit status of the case was.
                    Some(line) if by_exit_status => {
                        let failed = i64::from(line.outcome != Reported::Passed);
                        let output = if line.message.is_empty() {
                            "(its output is in its container's log)".to_string()
                        } else {
                            line.message.clone()
                        };
                        judge_exit(
                            cell,
                            Some(Exit::Code(line.exit_status.unwrap_or(failed))),
                            &[output],
                            Duration::ZERO,
                        )
                    }
                    Some(line) => judge(cell, line, manifest, Duration::ZERO),
                    None => missing(cell, state, &file, timeout),
                }
            })
            .collect();
        if let Some(state) = state.filter(|s| s.done.is_some()) {
            // `None`: not checked (no exit statuses); `Some(None)`: the file
            // came without this client's.
            let exit = codes.as_ref().map(|c| {
                c.get(&format!("{client}-to-{server}"))
                    .map(|c| Exit::Code(*c))
            });
            let problems =
                runner::cross_check(state.result_lines, state.reported_failed, state.done, exit);
            runner::fail_for(&mut results, &problems, &state.notes);
        }
        for r in results {
            sink.finish_cell(r);
        }
    }
    let mut notes = opts.notes.clone();
    notes.extend(match (exit_codes, &codes) {
        (None, _) => vec!["the clients' exit statuses: no --exit-codes file was given".to_string()],
        (Some(e), None) => vec![format!(
            "the clients' exit statuses: {} did not appear within {:.0} s after the result files were complete",
            e.path.display(),
            e.wait.as_secs_f64()
        )],
        (Some(_), Some(_)) => Vec::new(),
    });
    sink.finish_run(plan, started, cancel.is_cancelled(), notes)
}

/// The result of a cell whose file has no line for it.
fn missing(
    cell: &PlannedCell,
    state: Option<&FileState>,
    file: &Path,
    timeout: Duration,
) -> CellResult {
    let (outcome, message) = match state {
        None => (
            Outcome::SetupError,
            format!(
                "no result file {} from this run: the client did not run",
                file.display()
            ),
        ),
        Some(s) if s.done.is_some() => (
            Outcome::Failed,
            format!("{} has no result for this case", file.display()),
        ),
        Some(_) => (
            Outcome::TimedOut,
            format!(
                "no result in {} within {:.0} s",
                file.display(),
                timeout.as_secs_f64()
            ),
        ),
    };
    CellResult {
        logs: state.map(|s| s.notes.clone()).unwrap_or_default(),
        ..CellResult::not_run(cell.id.clone(), outcome, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Case;
    use crate::model::Problem;
    use crate::select::{KnownFailures, Selection};

    fn impls() -> Vec<Implementation> {
        let make = |name: &str, server_unsupported: &str| {
            let text = format!(
                "name = \"{name}\"\nlibrary = \"l\"\nversion = \"1\"\n\
                 [server]\ncommand = [\"s\", \"{{port}}\"]\n[server.unsupported]\n{server_unsupported}\n\
                 [client]\ncommand = [\"c\", \"{{host}}\", \"{{port}}\", \"{{cases}}\"]\n"
            );
            Implementation::parse(&text, Path::new("m.toml")).unwrap()
        };
        vec![make("a", "large_unary = \"cannot\""), make("b", "")]
    }

    /// A result line of `case` whose every check passed, or failed with `message`.
    fn line(case: Case, failed: Option<&str>) -> String {
        let checks: serde_json::Map<String, serde_json::Value> = case
            .checks()
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let state = if failed.is_some() && i == case.checks().len() - 1 {
                    "failed"
                } else {
                    "passed"
                };
                (n.to_string(), state.into())
            })
            .collect();
        let value = serde_json::json!({
            "event": "result",
            "case": case.name(),
            "outcome": if failed.is_some() { "failed" } else { "passed" },
            "duration_ms": 2.0,
            "message": failed.unwrap_or(""),
            "checks": checks,
            "not_checked": {},
        });
        format!("{value}\n")
    }

    fn done(n: usize) -> String {
        format!("{{\"event\":\"done\",\"cases\":{n}}}\n")
    }

    async fn collected(
        dir: &Path,
        sel: Selection,
        exit_codes: Option<&Path>,
        timeout: Duration,
    ) -> Summary {
        let exit_codes = exit_codes.map(|path| ExitCodes {
            path: path.to_path_buf(),
            wait: Duration::from_millis(300),
        });
        let impls = impls();
        let plan = Plan::new(&impls, &sel).unwrap();
        let sink = Arc::new(Sink::new(vec![], KnownFailures::default()));
        collect(
            dir,
            exit_codes.as_ref(),
            &impls,
            &plan,
            &Options::default(),
            timeout,
            sink,
            CancellationToken::new(),
        )
        .await
    }

    fn two_cases() -> Selection {
        Selection {
            cases: Some("empty_unary,large_unary".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn builds_the_matrix_from_files_judges_them_and_marks_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (eu, lu) = (Case::EmptyUnary, Case::LargeUnary);
        // a→a: the declared unsupported cell failed: shown. a→b: one failure.
        // b→a: the declared unsupported cell passed: unexpectedly supported.
        // b→b: no file.
        let files = [
            (
                "a",
                "a",
                format!("{}{}{}", line(eu, None), line(lu, Some("x")), done(2)),
            ),
            (
                "a",
                "b",
                format!(
                    "{}{}{}",
                    line(eu, None),
                    line(lu, Some("size = 1, want 314159")),
                    done(2)
                ),
            ),
            (
                "b",
                "a",
                format!("{}{}{}", line(eu, None), line(lu, None), done(2)),
            ),
        ];
        for (c, s, text) in &files {
            std::fs::write(result_file(dir.path(), c, s), text).unwrap();
        }
        let summary = collected(dir.path(), two_cases(), None, Duration::from_millis(600)).await;
        let got: Vec<(String, Case, Outcome)> = summary
            .results
            .iter()
            .map(|r| {
                (
                    format!("{}>{}", r.id.client, r.id.server),
                    r.id.case,
                    r.outcome,
                )
            })
            .collect();
        use Outcome::*;
        assert_eq!(
            got,
            vec![
                ("a>a".into(), eu, Passed),
                ("a>a".into(), lu, Unsupported),
                ("a>b".into(), eu, Passed),
                ("a>b".into(), lu, Failed),
                ("b>a".into(), eu, Passed),
                ("b>a".into(), lu, Passed),
                ("b>b".into(), eu, SetupError),
                ("b>b".into(), lu, SetupError),
            ]
        );
        assert_eq!(summary.results[1].message, "server a: cannot [shown: x]");
        assert_eq!(summary.results[3].message, "size = 1, want 314159");
        assert_eq!(
            summary.results[5].problem(),
            Some(Problem::UnexpectedlySupported)
        );
        assert!(!summary.ok());
    }

    #[tokio::test]
    async fn a_file_without_done_times_out_its_missing_cases() {
        let dir = tempfile::tempdir().unwrap();
        let sel = Selection {
            clients: Some("b".into()),
            servers: Some("b".into()),
            cases: Some("empty_unary,ping_pong".into()),
            ..Default::default()
        };
        std::fs::write(
            result_file(dir.path(), "b", "b"),
            line(Case::EmptyUnary, None),
        )
        .unwrap();
        let summary = collected(dir.path(), sel, None, Duration::from_millis(400)).await;
        assert_eq!(summary.results[0].outcome, Outcome::Passed);
        assert_eq!(summary.results[1].outcome, Outcome::TimedOut);
    }

    #[tokio::test]
    async fn done_counts_and_exit_statuses_are_checked_against_the_results() {
        let dir = tempfile::tempdir().unwrap();
        let (eu, lu) = (Case::EmptyUnary, Case::LargeUnary);
        let sel = Selection {
            servers: Some("b".into()),
            ..two_cases()
        };
        // a→b: all passed, exit 1. b→b: done counts 3 of 2.
        std::fs::write(
            result_file(dir.path(), "a", "b"),
            format!("{}{}{}", line(eu, None), line(lu, None), done(2)),
        )
        .unwrap();
        std::fs::write(
            result_file(dir.path(), "b", "b"),
            format!("{}{}{}", line(eu, None), line(lu, None), done(3)),
        )
        .unwrap();
        let codes = dir.path().join("exit-codes.json");
        std::fs::write(&codes, r#"{"a-to-b": 1, "b-to-b": 0}"#).unwrap();
        let summary = collected(
            dir.path(),
            sel.clone(),
            Some(&codes),
            Duration::from_secs(5),
        )
        .await;
        let messages: Vec<(Outcome, &str)> = summary
            .results
            .iter()
            .map(|r| (r.outcome, r.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    Outcome::Failed,
                    "the client ended with exit status 1 after its results, want exit status 0 (this case was reported passed)"
                ),
                (
                    Outcome::Failed,
                    "the client ended with exit status 1 after its results, want exit status 0 (this case was reported passed)"
                ),
                (
                    Outcome::Failed,
                    "the client's done line counts 3 results, but it printed 2 (this case was reported passed)"
                ),
                (
                    Outcome::Failed,
                    "the client's done line counts 3 results, but it printed 2 (this case was reported passed)"
                ),
            ]
        );
        // A client missing from the file: its exit status is unknown, which fails.
        std::fs::write(&codes, r#"{"b-to-b": 0}"#).unwrap();
        let summary = collected(
            dir.path(),
            sel.clone(),
            Some(&codes),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            summary.results[0]
                .message
                .starts_with("the client ended with exit unknown"),
            "{}",
            summary.results[0].message
        );
        assert!(summary.notes.is_empty());
        // No file at all: not checked, and the run says so; the rest is still judged.
        std::fs::remove_file(&codes).unwrap();
        let summary = collected(dir.path(), sel, Some(&codes), Duration::from_secs(5)).await;
        assert_eq!(summary.results[0].outcome, Outcome::Passed);
        assert!(
            summary.results[2]
                .message
                .starts_with("the client's done line counts 3"),
            "{}",
            summary.results[2].message
        );
        assert_eq!(summary.notes.len(), 1);
        assert!(
            summary.notes[0].contains("did not appear within 0 s"),
            "{:?}",
            summary.notes
        );
    }
}
