//! Every client case against the real Rust server, started in-process on port 0:
//! plaintext, TLS, a server with the wrong greeting (failures must be caught and
//! described), and the client binary's output and exit codes.

use std::path::PathBuf;
use std::process::Command;

use grpc_interop::cases::Case;
use grpc_interop::manifest::Implementation;
use rust_client::checks::CheckState;
use rust_client::{
    ClientOptions, Clients, Outcome, SoakOptions, TlsOptions, run_case, unsupported_reason,
};
use rust_server::{ServerOptions, load_identity};
use tokio::sync::oneshot;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tls_dir() -> PathBuf {
    repo_root().join("testdata/tls")
}

/// A running in-process server; stops when dropped.
struct TestServer {
    port: u16,
    _stop: oneshot::Sender<()>,
}

async fn start_server(options: ServerOptions) -> TestServer {
    let listener = rust_server::bind(0).expect("bind port 0");
    let port = listener.local_addr().expect("bound address").port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(rust_server::serve(listener, options, async {
        let _ = stopped.await;
    }));
    TestServer { port, _stop: stop }
}

fn plaintext(port: u16) -> ClientOptions {
    ClientOptions {
        host: "localhost".to_string(),
        port,
        tls: None,
        tls_cases: Default::default(),
    }
}

async fn run_all(options: &ClientOptions) -> Vec<rust_client::CaseResult> {
    let clients = Clients::connect(options, SoakOptions::default()).expect("channel");
    let mut results = Vec::new();
    for case in Case::default_cases() {
        results.push(run_case(&clients, case).await);
    }
    results
}

/// Every case against the Rust server: passed with every check of its row
/// made; unsupported where the client says so; and failed, with a failed
/// check to show it, where the Rust server declares the case unsupported.
fn assert_all_as_expected(results: &[rust_client::CaseResult]) {
    assert_eq!(results.len(), Case::default_cases().len());
    for (result, case) in results.iter().zip(Case::default_cases()) {
        assert_eq!(result.case, case, "cases run in catalogue order");
        let line = result.json_line();
        if let Some(reason) = unsupported_reason(case) {
            assert_eq!(result.outcome, Outcome::Unsupported, "{line}");
            assert_eq!(result.message, reason);
            assert!(result.checks.is_empty(), "{line}");
        } else if case == Case::TimeoutOnSleepingServer {
            // tonic 0.14.9 reports its own deadline as CANCELLED "Timeout
            // expired" when it passes before the response headers, and does not
            // end the call at all when the headers came first, as the Rust
            // server sends them at once (known-failures.toml lists both).
            assert_eq!(result.outcome, Outcome::Failed, "{line}");
            assert!(
                result
                    .message
                    .contains("tonic did not end the call within 3s after its 1ms deadline")
                    || result
                        .message
                        .contains(r#"CANCELLED (1) "Timeout expired""#),
                "{line}"
            );
        } else if rust_server::unsupported_reason(case).is_some() {
            assert_eq!(result.outcome, Outcome::Failed, "{line}");
            assert!(
                result.checks.values().any(|s| *s == CheckState::Failed),
                "{line}"
            );
        } else {
            assert_eq!(result.outcome, Outcome::Passed, "{line}");
            assert_eq!(result.message, "");
            let names: Vec<&str> = result.checks.keys().map(String::as_str).collect();
            let mut row = case.checks().to_vec();
            row.sort_unstable();
            assert_eq!(names, row, "{case}: every check of the row is made");
            assert!(result.not_checked.is_empty(), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_the_rust_server() {
    let server = start_server(ServerOptions::default()).await;
    assert_all_as_expected(&run_all(&plaintext(server.port)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_over_tls() {
    let identity = load_identity(&tls_dir().join("server.pem"), &tls_dir().join("server.key"))
        .expect("test identity");
    let server = start_server(ServerOptions {
        tls: Some(identity),
        ..Default::default()
    })
    .await;
    let ca_pem = std::fs::read(tls_dir().join("ca.pem")).expect("test CA");
    let options = ClientOptions {
        host: "localhost".to_string(),
        port: server.port,
        tls: Some(TlsOptions {
            ca_pem: Some(ca_pem),
            server_name: "foo.test.google.fr".to_string(),
            identity: None,
        }),
        tls_cases: Default::default(),
    };
    assert_all_as_expected(&run_all(&options).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_greeting_fails_every_greeter_case_with_what_came_back() {
    let server = start_server(ServerOptions {
        greeting: "Howdy".to_string(),
        ..Default::default()
    })
    .await;
    let clients = Clients::new(plaintext(server.port).channel().expect("channel"));

    let unary = run_case(&clients, Case::GreeterUnary).await;
    assert_eq!(unary.outcome, Outcome::Failed);
    assert_eq!(
        unary.message,
        r#"SayHello message = "Howdy interop", want "Hello interop""#
    );
    let states: Vec<(&str, CheckState)> =
        unary.checks.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    assert_eq!(
        states,
        [
            ("index", CheckState::Passed),
            ("message", CheckState::Failed),
            ("status", CheckState::Passed)
        ]
    );

    let streaming = run_case(&clients, Case::GreeterServerStreaming).await;
    assert_eq!(streaming.outcome, Outcome::Failed);
    // Every one of the five replies is reported, not just the first.
    assert_eq!(
        streaming.message.split("; ").count(),
        5,
        "{}",
        streaming.message
    );
    assert!(streaming.message.starts_with(
        r#"SayHelloStream reply 1 message = "Howdy interop (1 of 5)", want "Hello interop (1 of 5)""#
    ));

    for case in [Case::GreeterClientStreaming, Case::GreeterBidiStreaming] {
        let result = run_case(&clients, case).await;
        assert_eq!(result.outcome, Outcome::Failed, "{case}");
        assert!(result.message.contains("Howdy"), "{}", result.message);
    }
    // The TestService cases do not depend on the greeting.
    assert_eq!(
        run_case(&clients, Case::LargeUnary).await.outcome,
        Outcome::Passed
    );
}

#[tokio::test]
async fn unreachable_server_fails_cases_instead_of_hanging() {
    // Bind then drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let options = ClientOptions {
        host: "127.0.0.1".to_string(),
        port,
        tls: None,
        tls_cases: Default::default(),
    };
    let clients = Clients::new(options.channel().expect("channel"));
    let result = run_case(&clients, Case::EmptyUnary).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result
            .message
            .starts_with("EmptyCall status = UNAVAILABLE (14)"),
        "{}",
        result.message
    );
}

#[test]
fn manifest_lists_exactly_the_unsupported_cases() {
    let manifest = Implementation::load(&repo_root().join("implementations/rust.toml"))
        .expect("rust.toml loads");
    for case in Case::all() {
        assert_eq!(
            manifest.client_unsupported(case),
            unsupported_reason(case),
            "client, {case}"
        );
        assert_eq!(
            manifest.server_unsupported(case),
            rust_server::unsupported_reason(case),
            "server, {case}"
        );
    }
}

fn client_binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rust-client"));
    command.env("INTEROP_TLS_DIR", tls_dir());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_one_json_line_per_case_in_the_order_given() {
    let server = start_server(ServerOptions::default()).await;
    let cases = "large_unary,client_compressed_streaming,greeter_unary";
    let port = server.port.to_string();
    let output = tokio::task::spawn_blocking(move || {
        client_binary()
            .args(["--server_port", &port, "--test_case", cases])
            .output()
    })
    .await
    .expect("join")
    .expect("client runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.first(), Some(&serde_json::json!({"event": "ready"})));
    assert_eq!(
        lines.last(),
        Some(&serde_json::json!({"event": "done", "cases": 3}))
    );
    lines = lines[1..lines.len() - 1].to_vec();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["case"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "large_unary",
            "client_compressed_streaming",
            "greeter_unary"
        ]
    );
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["passed", "unsupported", "passed"]);
    for line in &lines {
        assert_eq!(line["event"], "result");
        assert!(line["duration_ms"].is_f64(), "{line}");
        assert!(line["message"].is_string(), "{line}");
        assert!(line["checks"].is_object(), "{line}");
        assert!(line["not_checked"].is_object(), "{line}");
    }
    assert_eq!(
        lines[0]["checks"],
        serde_json::json!({"status": "passed", "payload_size": "passed", "payload_body": "passed", "payload_type": "passed"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_1_when_a_case_fails() {
    let server = start_server(ServerOptions {
        greeting: "Howdy".to_string(),
        ..Default::default()
    })
    .await;
    let port = server.port.to_string();
    let output = tokio::task::spawn_blocking(move || {
        client_binary()
            .args([
                "--server_port",
                &port,
                "--test_case",
                "greeter_unary,empty_unary",
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("client runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        4,
        "ready, both results (the next case still runs), done"
    );
}

#[test]
fn binary_exits_2_on_bad_usage_before_running_anything() {
    for args in [
        &[
            "--server_port",
            "1",
            "--test_case",
            "large_unary,larg_unary",
        ][..],
        &[
            "--server_port",
            "1",
            "--use_tls",
            "--use_test_ca",
            "--ca_file",
            "/nonexistent/ca.pem",
        ][..],
        &["--test_case", "all"][..],
        &["--server_port", "1", "--use_tls=maybe"][..],
    ] {
        let output = client_binary().args(args).output().expect("client runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {stderr:?}"
        );
    }
}

#[test]
fn binary_accepts_every_use_tls_form() {
    // `--use_tls=false` and no flag run plaintext; against a closed port the
    // case fails (exit 1) — what matters is that the flag parses (not 2).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let port = port.to_string();
    for tls in [
        &[][..],
        &["--use_tls=false"][..],
        &["--use_tls=true"][..],
        &["--use_tls"][..],
    ] {
        let output = client_binary()
            .args([
                "--server_host",
                "127.0.0.1",
                "--server_port",
                &port,
                "--test_case",
                "empty_unary",
            ])
            .args(tls)
            .output()
            .expect("client runs");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{tls:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_writes_the_result_file_then_done() {
    let server = start_server(ServerOptions::default()).await;
    let file =
        std::env::temp_dir().join(format!("rust-client-results-{}.jsonl", std::process::id()));
    std::fs::write(&file, "stale\n").expect("seed the file");
    let port = server.port.to_string();
    let path = file.clone();
    let output = tokio::task::spawn_blocking(move || {
        client_binary()
            .args([
                "--server_port",
                &port,
                "--test_case",
                "empty_unary,greeter_unary",
            ])
            .arg("--result_file")
            .arg(&path)
            .output()
    })
    .await
    .expect("join")
    .expect("client runs");
    let written = std::fs::read_to_string(&file).expect("result file written");
    std::fs::remove_file(&file).expect("cleanup");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 4);
    assert_eq!(
        stdout.lines().last(),
        Some("{\"event\":\"done\",\"cases\":2}")
    );
    assert_eq!(
        written,
        stdout
            .strip_prefix("{\"event\":\"ready\"}\n")
            .expect("ready first"),
        "the stdout lines but ready"
    );

    // An uncreatable file is a setup error: exit 2 before any case runs.
    let output = client_binary()
        .args([
            "--server_port",
            "1",
            "--result_file",
            "/nonexistent/dir/r.jsonl",
        ])
        .output()
        .expect("client runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot create result file /nonexistent/dir/r.jsonl"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compressed_flags_come_from_the_wire() {
    let server = start_server(ServerOptions::default()).await;
    let clients = Clients::new(plaintext(server.port).channel().expect("channel"));
    // The Rust server honours response_compressed on unary calls...
    let unary = run_case(&clients, Case::ServerCompressedUnary).await;
    assert_eq!(unary.outcome, Outcome::Passed, "{}", unary.json_line());
    assert_eq!(
        unary.checks["compressed.response_compressed"],
        CheckState::Passed
    );
    assert_eq!(
        unary.checks["uncompressed.response_compressed"],
        CheckState::Passed
    );
    // ...but cannot choose per message of a stream, so it compresses none of
    // them (its manifest says so), which the client sees on the wire.
    let stream = run_case(&clients, Case::ServerCompressedStreaming).await;
    assert_eq!(stream.outcome, Outcome::Failed);
    assert_eq!(stream.checks["response_compressed"], CheckState::Failed);
    assert_eq!(
        stream.message,
        "StreamingOutputCall: response messages arrived compressed = [false, false], want [true, false]"
    );
    let sent = run_case(&clients, Case::ClientCompressedUnary).await;
    assert_eq!(
        sent.checks["compressed.sent_compressed"],
        CheckState::Passed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_tonic_does_not_enforce_is_reported_not_made_up() {
    // The Rust server answers this call's headers at once and then never ends
    // it: only the client's 1 ms deadline could. tonic enforces a deadline
    // only until the headers arrive, so the backstop reports that tonic did
    // not end the call; no status is made for it.
    // The case's own 1 ms may pass before the headers come on a busy
    // machine; 200 ms leaves them time, so the headers come first for sure.
    let server = start_server(ServerOptions::default()).await;
    let clients = Clients::new(plaintext(server.port).channel().expect("channel"));
    let started = std::time::Instant::now();
    let checks = rust_client::cases::timeout_on_sleeping_server_with(
        &clients,
        std::time::Duration::from_millis(200),
    )
    .await;
    assert_eq!(
        checks.message(),
        "FullDuplexCall status = no end: tonic did not end the call within 3s after its 200ms deadline, \
         want DEADLINE_EXCEEDED (4)"
    );
    assert_eq!(checks.made()["status_code"], CheckState::Failed);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(3200),
        "the backstop waits 3 s after the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_cases_report_their_iterations_and_latencies() {
    let server = start_server(ServerOptions::default()).await;
    let soak = SoakOptions {
        iterations: 6,
        num_threads: 2,
        ..SoakOptions::default()
    };
    let clients = Clients::connect(&plaintext(server.port), soak).expect("channel");
    for case in [Case::RpcSoak, Case::ChannelSoak] {
        let result = run_case(&clients, case).await;
        assert_eq!(result.outcome, Outcome::Passed, "{}", result.json_line());
        assert_eq!(result.checks["completed"], CheckState::Passed);
        assert_eq!(result.checks["failures"], CheckState::Passed);
        assert_eq!(result.metrics["iterations"], 6.0);
        assert_eq!(result.metrics["failures"], 0.0);
        let p = |k: &str| result.metrics[k];
        assert!(
            p("latency_ms_p50") <= p("latency_ms_p90"),
            "{:?}",
            result.metrics
        );
        assert!(
            p("latency_ms_p99") <= p("latency_ms_max"),
            "{:?}",
            result.metrics
        );
    }
    // An RPC slower than the per-iteration maximum fails its iteration.
    let strict = SoakOptions {
        iterations: 3,
        per_iteration_max_acceptable_latency: std::time::Duration::from_nanos(1),
        ..SoakOptions::default()
    };
    let clients = Clients::connect(&plaintext(server.port), strict).expect("channel");
    let result = run_case(&clients, Case::RpcSoak).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.checks["failures"], CheckState::Failed);
    assert!(
        result
            .message
            .starts_with("rpc_soak: 3 of 3 iterations failed, want at most 0: iteration 0: "),
        "{}",
        result.message
    );
    assert!(
        !result.metrics.contains_key("latency_ms_p50"),
        "no iteration succeeded"
    );
}

#[test]
fn binary_rejects_bad_soak_settings() {
    for args in [
        &["--server_port", "1", "--soak_iterations", "0"][..],
        &[
            "--server_port",
            "1",
            "--soak_iterations",
            "5",
            "--soak_num_threads",
            "2",
        ][..],
    ] {
        let output = client_binary().args(args).output().expect("client runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

fn mtls_options(port: u16) -> ClientOptions {
    let dir = tls_dir();
    ClientOptions {
        host: "localhost".to_string(),
        port,
        tls: None,
        tls_cases: rust_client::TlsCaseFiles {
            ca: Some(dir.join("ca.pem")),
            server_name: "foo.test.google.fr".to_string(),
            client_cert: Some((dir.join("client.pem"), dir.join("client.key"))),
            dir: Some(dir),
        },
    }
}

/// The `tls` cases against a Rust server that requires client certificates:
/// the right certificate is accepted, a client refuses a server it cannot
/// verify. (tonic 0.14.9 reports a server's refusal of its certificate as
/// UNKNOWN "transport error" or CANCELLED, not UNAVAILABLE: known-failures.toml.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cases_against_a_server_requiring_client_certificates() {
    let dir = tls_dir();
    let identity =
        load_identity(&dir.join("server.pem"), &dir.join("server.key")).expect("test identity");
    let ca = std::fs::read(dir.join("ca.pem")).expect("test CA");
    let server = start_server(ServerOptions {
        tls: Some(identity),
        client_ca: Some(tonic::transport::Certificate::from_pem(ca)),
        ..Default::default()
    })
    .await;
    let clients =
        Clients::connect(&mtls_options(server.port), SoakOptions::default()).expect("channel");
    for case in [
        Case::MtlsAccepted,
        Case::TlsUntrustedServer,
        Case::TlsWrongName,
    ] {
        let result = run_case(&clients, case).await;
        assert_eq!(result.outcome, Outcome::Passed, "{}", result.json_line());
        let names: Vec<&str> = result.checks.keys().map(String::as_str).collect();
        assert_eq!(names, case.checks(), "{case}");
    }
    for case in [Case::MtlsNoClientCert, Case::MtlsOtherCaClient] {
        let result = run_case(&clients, case).await;
        assert_eq!(result.checks["status_code"], CheckState::Failed);
        assert!(
            result.message.starts_with("EmptyCall status = ")
                && result.message.ends_with(", want UNAVAILABLE (14)")
                && !result.message.contains("status = OK"),
            "refused, with tonic's code: {}",
            result.message
        );
    }
}

/// The refusal cases fail against a server that does not refuse: their
/// checks can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_cases_fail_against_a_server_that_accepts_anyone() {
    let dir = tls_dir();
    let identity =
        load_identity(&dir.join("server.pem"), &dir.join("server.key")).expect("test identity");
    let server = start_server(ServerOptions {
        tls: Some(identity),
        ..Default::default()
    })
    .await;
    let clients =
        Clients::connect(&mtls_options(server.port), SoakOptions::default()).expect("channel");
    for case in [Case::MtlsNoClientCert, Case::MtlsOtherCaClient] {
        let result = run_case(&clients, case).await;
        assert_eq!(result.outcome, Outcome::Failed, "{}", result.json_line());
        assert_eq!(
            result.message, "EmptyCall status = OK, want UNAVAILABLE (14)",
            "{case}"
        );
    }
    // Without the files the case fails, saying what is missing.
    let bare = Clients::connect(
        &ClientOptions {
            tls_cases: Default::default(),
            ..mtls_options(server.port)
        },
        SoakOptions::default(),
    )
    .expect("channel");
    let result = run_case(&bare, Case::TlsUntrustedServer).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result.message.contains("needs INTEROP_TLS_DIR"),
        "{}",
        result.message
    );
}
