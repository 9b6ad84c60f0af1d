//! The runner does not take a client's word for it. Scripted clients that
//! print well-formed lines and then misbehave — a wrong exit status, a wrong
//! done count, a result that made no check, a pass of a cell declared
//! unsupported, a hang on their first case — must fail what they cover, with
//! a plain message. Known failures absorb only the outcome they name.

#![allow(clippy::await_holding_lock)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use grpc_interop::backend::Backend;
use grpc_interop::backend::native::Native;
use grpc_interop::cases::Case;
use grpc_interop::manifest::Implementation;
use grpc_interop::model::{Outcome, Problem};
use grpc_interop::runner::{self, Options, Sink, Summary};
use grpc_interop::select::{KnownFailures, Plan, Selection};
use tokio_util::sync::CancellationToken;

/// A server that only says it listens; the scripted clients never connect.
const FAKE_SERVER: &str = r#"
name = "fake"
library = "sh"
version = "0"
[server]
# printf's \173 and \175 are the braces, which a manifest reads as placeholders.
command = ["sh", "-c", "printf '\\173\"event\":\"listening\",\"port\":9\\175\\n'; exec sleep 300", "{port}"]
[server.unsupported]
server_streaming = "the fake server declares it cannot stream"
"#;

/// A result line of `case` with every check of its row passed, or the
/// given outcome and checks.
fn result(case: Case, outcome: &str, checks: Option<serde_json::Value>) -> String {
    let checks = checks.unwrap_or_else(|| {
        case.checks()
            .iter()
            .map(|n| (n.to_string(), serde_json::Value::from("passed")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    });
    serde_json::json!({
        "event": "result", "case": case.name(), "outcome": outcome,
        "duration_ms": 1.0, "message": if outcome == "failed" { "it failed" } else { "" },
        "checks": checks, "not_checked": {},
    })
    .to_string()
}

/// A client manifest running a shell script that prints `lines` (each its
/// own `echo`) and exits with `exit`. `extra` is appended to the manifest.
fn scripted(dir: &Path, lines: &[String], exit: i32, extra: &str) -> Implementation {
    let script = dir.join("client.sh");
    let mut text = String::new();
    for line in lines {
        text.push_str(&format!("echo '{line}'\n"));
    }
    text.push_str(&format!("exit {exit}\n"));
    std::fs::write(&script, text).unwrap();
    let manifest = format!(
        "name = \"scripted\"\nlibrary = \"sh\"\nversion = \"0\"\n[client]\ncommand = [\"sh\", \"{}\", \"{{cases}}\", \"{{host}}\", \"{{port}}\"]\n{extra}",
        script.display()
    );
    Implementation::parse(&manifest, Path::new("scripted.toml")).unwrap()
}

async fn play(client: Implementation, cases: &str, known: KnownFailures, opts: Options) -> Summary {
    let server = Implementation::parse(FAKE_SERVER, Path::new("fake.toml")).unwrap();
    let impls = vec![client, server];
    let plan = Plan::new(
        &impls,
        &Selection {
            cases: Some(cases.into()),
            ..Default::default()
        },
    )
    .unwrap();
    let backend: Arc<dyn Backend> = Arc::new(Native::new(&root(), settings(false)));
    let sink = Arc::new(Sink::new(vec![], known));
    runner::run(
        backend,
        &impls,
        &plan,
        &opts,
        sink,
        CancellationToken::new(),
    )
    .await
}

/// Plays `cases` with a scripted client printing `lines` and exiting `exit`,
/// with no known failures.
async fn play_lines(dir: &Path, lines: &[String], exit: i32, cases: &str) -> Summary {
    play(
        scripted(dir, lines, exit, ""),
        cases,
        KnownFailures::default(),
        prebuilt(),
    )
    .await
}

fn outcomes(summary: &Summary) -> Vec<(Case, Outcome, String)> {
    summary
        .results
        .iter()
        .map(|r| (r.id.case, r.outcome, r.message.clone()))
        .collect()
}

const READY: &str = r#"{"event":"ready"}"#;

fn done(n: usize) -> String {
    format!(r#"{{"event":"done","cases":{n}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_exit_status_after_the_results_fails_every_cell_of_the_process() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        READY.to_string(),
        result(Case::EmptyUnary, "passed", None),
        result(Case::LargeUnary, "passed", None),
        done(2),
    ];
    let client = scripted(dir.path(), &lines, 1, "");
    let summary = play(
        client,
        "empty_unary,large_unary",
        KnownFailures::default(),
        prebuilt(),
    )
    .await;
    let want = "the client ended with exit status 1 after its results, want exit status 0 (this case was reported passed)";
    assert_eq!(
        outcomes(&summary),
        [
            (Case::EmptyUnary, Outcome::Failed, want.to_string()),
            (Case::LargeUnary, Outcome::Failed, want.to_string()),
        ]
    );
    // The same lines with the right exit status pass.
    let client = scripted(dir.path(), &lines, 0, "");
    let summary = play(
        client,
        "empty_unary,large_unary",
        KnownFailures::default(),
        prebuilt(),
    )
    .await;
    assert!(summary.ok(), "{:?}", outcomes(&summary));
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_count_that_does_not_match_fails_every_cell_of_the_process() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        READY.to_string(),
        result(Case::EmptyUnary, "passed", None),
        result(Case::LargeUnary, "passed", None),
        done(3),
    ];
    let summary = play_lines(dir.path(), &lines, 0, "empty_unary,large_unary").await;
    for (_, outcome, message) in outcomes(&summary) {
        assert_eq!(outcome, Outcome::Failed);
        assert!(
            message.starts_with("the client's done line counts 3 results, but it printed 2"),
            "{message}"
        );
    }
    // No done line at all.
    let summary = play_lines(dir.path(), &lines[..3], 0, "empty_unary,large_unary").await;
    assert!(
        summary.results[0]
            .message
            .starts_with("the client printed no done line"),
        "{}",
        summary.results[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_made_no_check_fails_its_cell() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        READY.to_string(),
        result(Case::EmptyUnary, "passed", Some(serde_json::json!({}))),
        result(Case::LargeUnary, "passed", None),
        done(2),
    ];
    let summary = play_lines(dir.path(), &lines, 0, "empty_unary,large_unary").await;
    assert_eq!(
        outcomes(&summary),
        [
            (
                Case::EmptyUnary,
                Outcome::Failed,
                "client scripted broke the result contract: the result made no check".to_string()
            ),
            (Case::LargeUnary, Outcome::Passed, String::new()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_unsupported_cell_is_played_and_a_full_pass_fails_the_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The fake server declares server_streaming unsupported; the client plays it.
    let passing = [
        READY.to_string(),
        result(Case::ServerStreaming, "passed", None),
        done(1),
    ];
    let summary = play_lines(dir.path(), &passing, 0, "server_streaming").await;
    let cell = &summary.results[0];
    assert_eq!(cell.outcome, Outcome::Passed);
    assert_eq!(cell.problem(), Some(Problem::UnexpectedlySupported));
    assert!(!summary.ok());
    // Failing shows it is unsupported, with the failure as evidence.
    let failing = [
        READY.to_string(),
        result(
            Case::ServerStreaming,
            "failed",
            Some(serde_json::json!({"status": "passed", "response_count": "failed"})),
        ),
        done(1),
    ];
    let summary = play_lines(dir.path(), &failing, 1, "server_streaming").await;
    let cell = &summary.results[0];
    assert_eq!(cell.outcome, Outcome::Unsupported);
    assert_eq!(
        cell.message,
        "server fake: the fake server declares it cannot stream [shown: it failed]"
    );
    assert!(summary.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_unsupported_report_must_match_its_manifest() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let unsupported = |reason: &str| {
        serde_json::json!({"event": "result", "case": "ping_pong", "outcome": "unsupported",
            "duration_ms": 0.0, "message": reason, "checks": {}, "not_checked": {}})
        .to_string()
    };
    let declared = "[client.unsupported]\nping_pong = \"no duplex here\"\n";
    for (reported, want) in [
        ("no duplex here", Outcome::Unsupported),
        ("another story", Outcome::Failed),
    ] {
        let lines = [READY.to_string(), unsupported(reported), done(1)];
        let summary = play(
            scripted(dir.path(), &lines, 0, declared),
            "ping_pong",
            KnownFailures::default(),
            prebuilt(),
        )
        .await;
        assert_eq!(
            summary.results[0].outcome, want,
            "{}",
            summary.results[0].message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_timeout_bounds_the_first_case_too() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Ready at once, then nothing: the first case hangs.
    let script = dir.path().join("hang.sh");
    std::fs::write(&script, format!("echo '{READY}'\nexec sleep 300\n")).unwrap();
    let client = Implementation::parse(
        &format!(
            "name = \"hang\"\nlibrary = \"sh\"\nversion = \"0\"\n[client]\ncommand = [\"sh\", \"{}\", \"{{cases}}\", \"{{host}}\", \"{{port}}\"]\n",
            script.display()
        ),
        Path::new("hang.toml"),
    )
    .unwrap();
    let opts = Options {
        case_timeout: Duration::from_secs(1),
        client_startup: Duration::from_secs(30),
        ..prebuilt()
    };
    let summary = play(client, "empty_unary", KnownFailures::default(), opts).await;
    let cell = &summary.results[0];
    assert_eq!(cell.outcome, Outcome::TimedOut);
    // Bounded by the case timeout from the ready line, not by start-up + case.
    assert_eq!(cell.message, "no result within 1.0 s");
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_failures_absorb_only_the_outcome_they_name() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        READY.to_string(),
        result(
            Case::EmptyUnary,
            "failed",
            Some(serde_json::json!({"status": "failed"})),
        ),
        done(1),
    ];
    let entry = |outcome: &str| {
        KnownFailures::parse(
            &format!(
                "[[failure]]\nclient = \"scripted\"\nserver = \"*\"\ncase = \"empty_unary\"\nreason = \"r\"\noutcome = \"{outcome}\"\n"
            ),
            Path::new("kf.toml"),
        )
        .unwrap()
    };
    for (accepts, ok) in [("failed", true), ("timed_out", false), ("race", true)] {
        let summary = play(
            scripted(dir.path(), &lines, 1, ""),
            "empty_unary",
            entry(accepts),
            prebuilt(),
        )
        .await;
        assert_eq!(
            summary.ok(),
            ok,
            "an entry that is {accepts} and a failed cell"
        );
    }
    // A pass of a failed entry is an unexpected pass; of a race entry, fine.
    let passing = [
        READY.to_string(),
        result(Case::EmptyUnary, "passed", None),
        done(1),
    ];
    for (accepts, ok) in [("failed", false), ("race", true)] {
        let summary = play(
            scripted(dir.path(), &passing, 0, ""),
            "empty_unary",
            entry(accepts),
            prebuilt(),
        )
        .await;
        assert_eq!(
            summary.ok(),
            ok,
            "an entry that is {accepts} and a passed cell"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reports_by_exit_status_plays_one_case_per_process() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Passes large_unary, fails empty_unary with a last line of output, hangs on ping_pong.
    let script = dir.path().join("official.sh");
    std::fs::write(
        &script,
        "case \"$1\" in\n  large_unary) echo ok; exit 0 ;;\n  empty_unary) echo 'Unsupported test case' >&2; exit 1 ;;\n  *) exec sleep 300 ;;\nesac\n",
    )
    .unwrap();
    let client = Implementation::parse(
        &format!(
            "name = \"official\"\nlibrary = \"sh\"\nversion = \"0\"\n[client]\n\
             command = [\"sh\", \"{}\", \"{{cases}}\", \"{{host}}\", \"{{port}}\"]\nresults = \"exit_status\"\n",
            script.display()
        ),
        Path::new("official.toml"),
    )
    .unwrap();
    let opts = Options {
        case_timeout: Duration::from_secs(1),
        client_startup: Duration::from_secs(1),
        ..prebuilt()
    };
    let summary = play(
        client,
        "large_unary,empty_unary,ping_pong",
        KnownFailures::default(),
        opts,
    )
    .await;
    let got: Vec<(Case, Outcome)> = summary
        .results
        .iter()
        .map(|r| (r.id.case, r.outcome))
        .collect();
    assert_eq!(
        got,
        [
            (Case::EmptyUnary, Outcome::Failed),
            (Case::LargeUnary, Outcome::Passed),
            (Case::PingPong, Outcome::TimedOut),
        ]
    );
    assert_eq!(
        summary.results[0].message,
        "client official ended with exit status 1; its last output: Unsupported test case"
    );
    assert!(
        summary
            .results
            .iter()
            .all(|r| r.reported_by == Some("exit_status"))
    );
    assert_eq!(summary.results[1].checks, None, "its checks are its own");
    assert_eq!(
        summary.results[2].message,
        "no exit within 2.0 s (start-up included)"
    );
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_accepts_on_its_port_is_a_setup_error() {
    let _serial = serial();
    let server = Implementation::parse(
        "name = \"deaf\"\nlibrary = \"sh\"\nversion = \"0\"\n[server]\n\
         command = [\"sh\", \"-c\", \"exec sleep 300\", \"{port}\"]\nready = \"tcp\"\n",
        Path::new("deaf.toml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = scripted(dir.path(), &[READY.to_string(), done(0)], 0, "");
    let impls = vec![client, server];
    let plan = Plan::new(&impls, &Selection::default()).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(Native::new(
        &root(),
        grpc_interop::backend::Settings {
            ready_timeout: Duration::from_secs(1),
            ..settings(false)
        },
    ));
    let sink = Arc::new(Sink::new(vec![], KnownFailures::default()));
    let summary = runner::run(
        backend,
        &impls,
        &plan,
        &prebuilt(),
        sink,
        CancellationToken::new(),
    )
    .await;
    let cell = &summary.results[0];
    assert_eq!(cell.outcome, Outcome::SetupError);
    assert!(
        cell.message.contains("accepted no connection on port")
            && cell.message.contains("within 1s"),
        "{}",
        cell.message
    );
    assert_no_leftovers();
}
