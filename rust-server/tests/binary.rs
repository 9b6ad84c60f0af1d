//! The `rust-server` binary: readiness line, flags, exit codes, graceful stop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use grpc_interop::pb::grpc_testing::StreamingOutputCallRequest;
use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;
use grpc_interop::pb::helloworld::HelloRequest;
use grpc_interop::pb::helloworld::greeter_client::GreeterClient;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio_stream::wrappers::ReceiverStream;

/// Upper bound on start-up; it normally takes milliseconds.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The server's shutdown grace (2 s) plus room for a busy machine.
const STOP_TIMEOUT: Duration = Duration::from_secs(6);

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls")
}

fn server(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rust-server"));
    command
        .args(args)
        .env("INTEROP_TLS_DIR", tls_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A started server and the rest of its stdout.
struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts the server and returns it with its parsed readiness line.
async fn start(args: &[&str]) -> (Running, serde_json::Value) {
    let mut child = server(args).spawn().expect("server starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stdout = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, stdout.next_line())
        .await
        .expect("readiness line in time")
        .expect("stdout readable")
        .expect("a readiness line");
    (
        Running { child, stdout },
        serde_json::from_str(&line).expect("readiness line is JSON"),
    )
}

/// Sends SIGTERM and returns the exit code; checks nothing else reached stdout.
async fn terminate(mut running: Running) -> Option<i32> {
    let pid = running.child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(STOP_TIMEOUT, running.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    let extra = running.stdout.next_line().await.expect("stdout readable");
    assert_eq!(extra, None, "only the readiness line goes to stdout");
    exit.code()
}

#[tokio::test]
async fn announces_the_bound_port_serves_and_exits_0_on_sigterm() {
    let (running, ready) = start(&["--port", "0", "--greeting", "Howdy"]).await;
    assert_eq!(ready["event"], "listening");
    assert_eq!(ready["tls"], false);
    assert_eq!(ready["implementation"], "rust");
    assert_eq!(ready["library"], "tonic 0.14.9");
    let port = ready["port"].as_u64().expect("port number");
    assert!(port > 0);

    // Both address families reach the dual-stack listener.
    for host in ["127.0.0.1", "[::1]"] {
        let mut greeter = GreeterClient::connect(format!("http://{host}:{port}"))
            .await
            .expect("connects");
        let reply = greeter
            .say_hello(HelloRequest { name: "x".into() })
            .await
            .expect("SayHello")
            .into_inner();
        assert_eq!(reply.message, "Howdy x");
    }

    assert_eq!(terminate(running).await, Some(0));
}

#[tokio::test]
async fn sigterm_with_a_call_still_open_exits_0_within_the_grace_period() {
    let (running, ready) = start(&[]).await;
    let port = ready["port"].as_u64().expect("port number");
    let mut test = TestServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connects");
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamingOutputCallRequest>(1);
    let _open_call = test
        .full_duplex_call(ReceiverStream::new(rx))
        .await
        .expect("call starts");

    let stopping = Instant::now();
    assert_eq!(terminate(running).await, Some(0));
    assert!(stopping.elapsed() < STOP_TIMEOUT);
    drop(tx);
}

#[tokio::test]
async fn serves_tls_with_every_use_tls_form() {
    for form in ["--use_tls", "--use_tls=true"] {
        let (running, ready) = start(&[form]).await;
        assert_eq!(ready["tls"], true, "{form}");
        assert_eq!(terminate(running).await, Some(0));
    }
    let (running, ready) = start(&["--use_tls=false"]).await;
    assert_eq!(ready["tls"], false);
    assert_eq!(terminate(running).await, Some(0));
}

/// Runs the server expecting it to fail at once; returns its stderr.
async fn fails_with_2(command: &mut Command) -> String {
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .expect("exits in time")
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "no readiness line on failure");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    stderr
}

#[tokio::test]
async fn bad_flags_and_busy_port_exit_2_with_one_line() {
    fails_with_2(&mut server(&["--port", "http"])).await;
    fails_with_2(&mut server(&["--no_such_flag"])).await;
    fails_with_2(&mut server(&["--use_tls=maybe"])).await;
    let stderr = fails_with_2(&mut server(&[
        "--use_tls",
        "--tls_cert_file",
        "/nonexistent/server.pem",
    ]))
    .await;
    assert!(stderr.contains("/nonexistent/server.pem"), "{stderr}");
    fails_with_2(server(&["--use_tls"]).env_remove("INTEROP_TLS_DIR")).await;

    let (running, ready) = start(&[]).await;
    let port = ready["port"].to_string();
    let stderr = fails_with_2(&mut server(&["--port", &port])).await;
    assert!(
        stderr.contains(&format!("cannot listen on port {port}")),
        "{stderr}"
    );
    assert_eq!(terminate(running).await, Some(0));
}

/// Runs `rust-server --health_check ...`; returns its exit code and stdout.
async fn health_check(args: &[&str]) -> (Option<i32>, String) {
    let mut command = server(&["--health_check"]);
    command.args(args);
    // The check's own deadline is 2 s; this only catches a check that hangs.
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .expect("health check exits in time")
        .expect("runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn health_check_exits_0_when_serving_and_1_when_nothing_answers() {
    let (running, ready) = start(&[]).await;
    let port = ready["port"].to_string();
    assert_eq!(
        health_check(&["--port", &port]).await,
        (Some(0), "SERVING\n".to_string())
    );
    // TLS asked of a plaintext server: no status, exit 1, one line saying why.
    let (code, stdout) = health_check(&["--port", &port, "--use_tls"]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert_eq!(terminate(running).await, Some(0));

    let (running, ready) = start(&["--use_tls"]).await;
    let port = ready["port"].to_string();
    assert_eq!(
        health_check(&["--port", &port, "--use_tls"]).await,
        (Some(0), "SERVING\n".to_string())
    );
    assert_eq!(terminate(running).await, Some(0));

    // A port that nothing listens on: bound by us, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("address").port().to_string();
    drop(free);
    let (code, stdout) = health_check(&["--port", &port]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.starts_with("Unavailable"), "{stdout}");

    // Without --port there is nothing to check: bad usage.
    fails_with_2(&mut server(&["--health_check"])).await;
}
