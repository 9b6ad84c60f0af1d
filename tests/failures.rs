//! What the runner does when things go wrong: servers that die or never get
//! ready, clients that hang or crash, bad input, Ctrl-C. Nothing may hang and
//! no process may be left behind.

// Each test holds the serial lock for its whole run, awaits included: it
// has a runtime of its own, so nothing else on that runtime waits for it.
#![allow(clippy::await_holding_lock)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use grpc_interop::cases::Case;
use grpc_interop::manifest::Implementation;
use grpc_interop::model::{Event, Outcome, Reporter};
use grpc_interop::runner::Options;
use grpc_interop::select::Selection;

fn manifest(text: &str) -> Implementation {
    Implementation::parse(text, Path::new("test.toml")).expect("test manifest is valid")
}

/// Kills every process whose command line contains `marker` when the first
/// cell finishes: a server dying in the middle of a run.
struct KillOnFirstCell {
    marker: String,
    done: bool,
}

impl Reporter for KillOnFirstCell {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        if self.done || !matches!(event, Event::CellFinished(_)) {
            return Ok(());
        }
        self.done = true;
        for (pid, cmdline) in processes() {
            if cmdline.contains(&self.marker) {
                // SAFETY: plain kill(2) of a process this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_gives_failed_cells_not_a_hang() {
    let _serial = serial();
    ensure_built();
    let mut impls = impls();
    let mut victim = impls.iter().find(|i| i.name == "go").unwrap().clone();
    victim.name = "go-victim".into();
    victim.client = None;
    // A distinctive flag value lets the test find exactly this server's process.
    victim.server.as_mut().unwrap().command.extend([
        "--greeting".into(),
        "Hello".into(),
        "--port".into(),
        "0".into(),
    ]);
    impls.push(victim);
    let selection = Selection {
        clients: Some("rust".into()),
        servers: Some("go-victim".into()),
        cases: Some("greeter_unary,large_unary,ping_pong,empty_unary".into()),
        ..Default::default()
    };
    let opts = Options {
        process_per_case: true,
        jobs: 1,
        case_timeout: Duration::from_secs(10),
        ..prebuilt()
    };
    let killer = KillOnFirstCell {
        marker: ["--greeting", "Hello", "--port", "0"].join("\0"),
        done: false,
    };
    let started = Instant::now();
    let summary = run_native(&impls, selection, opts, false, vec![Box::new(killer)]).await;
    assert_eq!(summary.results.len(), 4);
    assert_eq!(
        summary.results[0].outcome,
        Outcome::Passed,
        "{}",
        summary.results[0].message
    );
    for r in &summary.results[1..] {
        assert!(
            matches!(r.outcome, Outcome::Failed | Outcome::TimedOut),
            "{}: {:?} {}",
            r.id,
            r.outcome,
            r.message
        );
        assert!(!r.message.is_empty());
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert!(!summary.ok());
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_gets_ready_is_a_setup_error() {
    let _serial = serial();
    ensure_built();
    let mut impls = impls();
    impls.push(manifest(
        r#"
name = "mute"
library = "none"
version = "0"
[server]
command = ["sh", "-c", "echo starting >&2; exec sleep 300", "{port}"]
"#,
    ));
    let selection = Selection {
        clients: Some("rust".into()),
        servers: Some("mute,rust".into()),
        cases: Some("empty_unary".into()),
        ..Default::default()
    };
    let plan = grpc_interop::select::Plan::new(&impls, &selection).unwrap();
    let backend: std::sync::Arc<dyn grpc_interop::backend::Backend> =
        std::sync::Arc::new(grpc_interop::backend::native::Native::new(
            &root(),
            grpc_interop::backend::Settings {
                ready_timeout: Duration::from_secs(2),
                ..settings(false)
            },
        ));
    let sink = std::sync::Arc::new(grpc_interop::runner::Sink::new(vec![], Default::default()));
    let summary = grpc_interop::runner::run(
        backend,
        &impls,
        &plan,
        &prebuilt(),
        sink,
        Default::default(),
    )
    .await;
    let mute = summary
        .results
        .iter()
        .find(|r| r.id.server == "mute")
        .unwrap();
    assert_eq!(mute.outcome, Outcome::SetupError);
    assert!(
        mute.message.contains("printed no readiness line within 2s"),
        "{}",
        mute.message
    );
    assert!(
        mute.message.contains("starting"),
        "the server's log tail is shown: {}",
        mute.message
    );
    let rust = summary
        .results
        .iter()
        .find(|r| r.id.server == "rust")
        .unwrap();
    assert_eq!(rust.outcome, Outcome::Passed, "{}", rust.message);
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_crashing_client_costs_one_case_each_and_the_rest_still_run() {
    let _serial = serial();
    ensure_built();
    let mut impls = impls();
    // A client that reports the first case it was given, then hangs on the
    // second (first run) or crashes (second run: it finds the marker file).
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hung-once");
    let script = dir.path().join("flaky-client.sh");
    // Each case's result names every check of its row, passed.
    let checks_of: String = Case::all()
        .into_iter()
        .map(|case| {
            let checks: Vec<String> = case
                .checks()
                .iter()
                .map(|n| format!("\\\"{n}\\\":\\\"passed\\\""))
                .collect();
            format!("  {case}) checks=\"{{{}}}\" ;;\n", checks.join(","))
        })
        .collect();
    std::fs::write(
        &script,
        format!(
            r#"cases="$1"; first="${{cases%%,*}}"
case "$first" in
{checks_of}esac
echo '{{"event":"ready"}}'
echo "{{\"event\":\"result\",\"case\":\"$first\",\"outcome\":\"passed\",\"duration_ms\":1,\"message\":\"\",\"checks\":$checks}}"
if [ ! -e {m} ]; then touch {m}; echo hanging >&2; exec sleep 300; fi
echo crashing >&2; exit 3
"#,
            m = marker.display()
        ),
    )
    .unwrap();
    impls.push(manifest(&format!(
        r#"
name = "flaky"
library = "sh"
version = "0"
[client]
command = ["sh", "{}", "{{cases}}", "{{host}}", "{{port}}"]
"#,
        script.display()
    )));
    let selection = Selection {
        clients: Some("flaky".into()),
        servers: Some("rust".into()),
        cases: Some("empty_unary,large_unary,ping_pong,empty_stream,custom_metadata".into()),
        ..Default::default()
    };
    let opts = Options {
        case_timeout: Duration::from_secs(1),
        client_startup: Duration::from_secs(5),
        ..prebuilt()
    };
    let summary = run_native(&impls, selection, opts, false, vec![]).await;
    let got: Vec<(Case, Outcome)> = summary
        .results
        .iter()
        .map(|r| (r.id.case, r.outcome))
        .collect();
    assert_eq!(
        got,
        vec![
            (Case::EmptyUnary, Outcome::Passed),
            (Case::LargeUnary, Outcome::TimedOut),
            (Case::PingPong, Outcome::Passed),
            (Case::EmptyStream, Outcome::Failed),
            // Reported passed, then the process crashed with no done line.
            (Case::CustomMetadata, Outcome::Failed),
        ]
    );
    assert!(
        summary.results[4]
            .message
            .starts_with("the client printed no done line; the client ended with exit status 3"),
        "{}",
        summary.results[4].message
    );
    let timed_out = &summary.results[1];
    assert!(
        timed_out.message.contains("no result within"),
        "{}",
        timed_out.message
    );
    assert!(
        timed_out.logs.iter().any(|l| l.contains("hanging")),
        "{:?}",
        timed_out.logs
    );
    let crashed = &summary.results[3];
    assert!(
        crashed.message.contains("exit status 3"),
        "{}",
        crashed.message
    );
    assert!(
        crashed.logs.iter().any(|l| l.contains("crashing")),
        "{:?}",
        crashed.logs
    );
    assert_no_leftovers();
}

fn interop() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interop"));
    cmd.current_dir(root());
    cmd
}

#[test]
fn bad_input_is_a_clear_error_with_exit_status_2() {
    for (args, want) in [
        (
            vec!["run", "--case", "larg_unary"],
            "--case \"larg_unary\" matches nothing",
        ),
        (
            vec!["run", "--client", "java"],
            "choose from: bad-client, go-official, go, python, rust",
        ),
        (
            vec!["run", "--soak-iterations", "0"],
            "--soak-iterations must be a positive multiple",
        ),
        (vec!["run", "--shard", "3/2"], "bad --shard"),
        (vec!["run", "--jobs", "0"], "--jobs must be at least 1"),
        (
            vec!["run", "--known-failures", "/nonexistent.toml"],
            "no such file",
        ),
        (
            vec!["run", "--implementations", "/nonexistent"],
            "cannot read /nonexistent",
        ),
    ] {
        let out = interop().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn list_shows_implementations_cases_and_unsupported() {
    let out = interop().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "go ",
        "grpc-go 1.85.0",
        "go-official ",
        "grpc-go interop binaries 1.85.0",
        "python ",
        "grpcio 1.85.1",
        "rust ",
        "tonic 0.14.9",
        "large_unary",
        "unsupported:",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with(" interop") || l.ends_with(" greeter") || l.ends_with(" soak"))
            .count(),
        24
    );
}

#[test]
fn ctrl_c_stops_everything_and_prints_partial_results() {
    let _serial = serial();
    ensure_built();
    // One process per case with a long list keeps the run going long enough.
    let child = interop()
        .args([
            "run",
            "--no-build",
            "--process-per-case",
            "--jobs",
            "1",
            "--server",
            "python",
            "--client",
            "python",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the servers to be up and a client to be running.
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until
        && !leftover_processes()
            .iter()
            .any(|p| p.contains("interop_client.py"))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("INTERRUPTED: results are partial"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: FAIL"), "{stdout}");
    assert_no_leftovers();
}
