//! `interop collect`: builds the matrix from result files that clients wrote
//! elsewhere (the compose run, where every client is its own container and
//! writes `--result_file <dir>/<client>-to-<server>.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cases::Case;
use crate::manifest::Implementation;
use crate::model::{CellId, CellResult, Event, Outcome};
use crate::runner::{
    self, Options, Sink, Summary, parse_result, reported_duration, reported_outcome,
};
use crate::select::Plan;

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
    results: BTreeMap<Case, CellResult>,
    done: bool,
}

fn read_file(
    path: &Path,
    since: SystemTime,
    client: &str,
    server: &str,
    manifest: &Path,
) -> Option<FileState> {
    let meta = std::fs::metadata(path).ok()?;
    // A file from an earlier run is not this run's result.
    if meta.modified().ok()? + START_SLACK < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut state = FileState::default();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && v.get("event").and_then(|e| e.as_str()) == Some("done")
        {
            state.done = true;
            continue;
        }
        let Some(r) = parse_result(line) else {
            continue;
        };
        let Ok(case) = r.case.parse::<Case>() else {
            continue;
        };
        let (outcome, message) = reported_outcome(&r, client, manifest);
        state.results.insert(
            case,
            CellResult {
                id: CellId {
                    client: client.to_string(),
                    server: server.to_string(),
                    case,
                },
                outcome,
                duration: reported_duration(&r, Duration::ZERO),
                message,
                known_failure: None,
                logs: vec![],
            },
        );
    }
    Some(state)
}

/// Waits until every pairing of `plan` has a finished result file in `dir`
/// (or `timeout` passes, or `cancel` fires), then reports the matrix.
pub async fn collect(
    dir: &Path,
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
    let mut pairings: Vec<(String, String)> = plan
        .cells
        .iter()
        .map(|c| (c.id.client.clone(), c.id.server.clone()))
        .collect();
    pairings.dedup();

    let deadline = started + timeout;
    let mut states: BTreeMap<(String, String), FileState> = BTreeMap::new();
    loop {
        for (client, server) in &pairings {
            let path = result_file(dir, client, server);
            let manifest = manifests
                .get(client.as_str())
                .copied()
                .unwrap_or(Path::new("?"));
            if let Some(state) = read_file(&path, since, client, server, manifest) {
                states.insert((client.clone(), server.clone()), state);
            }
        }
        let all_done = pairings
            .iter()
            .all(|p| states.get(p).is_some_and(|s| s.done));
        if all_done || Instant::now() >= deadline || cancel.is_cancelled() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {},
            () = cancel.cancelled() => {},
        }
    }

    for cell in &plan.cells {
        let key = (cell.id.client.clone(), cell.id.server.clone());
        let state = states.get(&key);
        let result = match (
            &cell.unsupported,
            state.and_then(|s| s.results.get(&cell.id.case)),
        ) {
            (Some(reason), _) => {
                CellResult::not_run(cell.id.clone(), Outcome::Unsupported, reason.clone())
            }
            (None, Some(reported)) => reported.clone(),
            (None, None) => {
                let file = result_file(dir, &cell.id.client, &cell.id.server);
                let (outcome, message) = match state {
                    None => (
                        Outcome::SetupError,
                        format!(
                            "no result file {} from this run: the client did not run",
                            file.display()
                        ),
                    ),
                    Some(s) if s.done => (
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
                CellResult::not_run(cell.id.clone(), outcome, message)
            }
        };
        sink.finish_cell(result);
    }
    sink.finish_run(plan, started, cancel.is_cancelled())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn line(case: &str, outcome: &str, message: &str) -> String {
        format!(
            "{{\"event\":\"result\",\"case\":\"{case}\",\"outcome\":\"{outcome}\",\"duration_ms\":2.0,\"message\":\"{message}\"}}\n"
        )
    }

    #[tokio::test]
    async fn builds_the_matrix_from_files_and_marks_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let impls = impls();
        let sel = Selection {
            cases: Some("empty_unary,large_unary".into()),
            ..Default::default()
        };
        let plan = Plan::new(&impls, &sel).unwrap();
        // a→a: complete; a→b: one failure, complete; b→a: never finished; b→b: no file.
        let done = "{\"event\":\"done\",\"cases\":2}\n";
        std::fs::write(
            result_file(dir.path(), "a", "a"),
            format!(
                "{}{}{done}",
                line("empty_unary", "passed", ""),
                line("large_unary", "failed", "x")
            ),
        )
        .unwrap();
        std::fs::write(
            result_file(dir.path(), "a", "b"),
            format!(
                "{}{}{done}",
                line("empty_unary", "passed", ""),
                line("large_unary", "failed", "size = 1, want 314159")
            ),
        )
        .unwrap();
        std::fs::write(
            result_file(dir.path(), "b", "a"),
            line("empty_unary", "passed", ""),
        )
        .unwrap();
        let sink = Arc::new(Sink::new(vec![], KnownFailures::default()));
        let summary = collect(
            dir.path(),
            &impls,
            &plan,
            &Options::default(),
            Duration::from_millis(600),
            sink,
            CancellationToken::new(),
        )
        .await;
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
                ("a>a".into(), Case::EmptyUnary, Passed),
                ("a>a".into(), Case::LargeUnary, Unsupported),
                ("a>b".into(), Case::EmptyUnary, Passed),
                ("a>b".into(), Case::LargeUnary, Failed),
                ("b>a".into(), Case::EmptyUnary, Passed),
                ("b>a".into(), Case::LargeUnary, Unsupported),
                ("b>b".into(), Case::EmptyUnary, SetupError),
                ("b>b".into(), Case::LargeUnary, SetupError),
            ]
        );
        assert_eq!(summary.results[3].message, "size = 1, want 314159");
        assert!(!summary.ok());
    }

    #[tokio::test]
    async fn a_file_without_done_times_out_its_missing_cases() {
        let dir = tempfile::tempdir().unwrap();
        let impls = impls();
        let sel = Selection {
            clients: Some("b".into()),
            servers: Some("b".into()),
            cases: Some("empty_unary,ping_pong".into()),
            ..Default::default()
        };
        let plan = Plan::new(&impls, &sel).unwrap();
        std::fs::write(
            result_file(dir.path(), "b", "b"),
            line("empty_unary", "passed", ""),
        )
        .unwrap();
        let sink = Arc::new(Sink::new(vec![], KnownFailures::default()));
        let summary = collect(
            dir.path(),
            &impls,
            &plan,
            &Options::default(),
            Duration::from_millis(400),
            sink,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(summary.results[0].outcome, Outcome::Passed);
        assert_eq!(summary.results[1].outcome, Outcome::TimedOut);
    }
}
