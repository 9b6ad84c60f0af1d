//! Load mode against the real Rust server, started in-process: both loads
//! count only successes with the asked payload, errors are counted with the
//! first one named, and the binary refuses bad usage.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rust_client::ClientOptions;
use rust_client::load::{Load, LoadOptions, run_load};
use rust_server::ServerOptions;
use tokio::sync::oneshot;

fn plaintext(port: u16) -> ClientOptions {
    ClientOptions {
        host: "127.0.0.1".to_string(),
        port,
        tls: None,
        tls_cases: Default::default(),
    }
}

async fn start_server() -> (u16, oneshot::Sender<()>) {
    let listener = rust_server::bind(0).expect("bind port 0");
    let port = listener.local_addr().expect("bound address").port();
    let (stop, stopped) = oneshot::channel::<()>();
    let options = ServerOptions {
        greeting: "Hello".to_string(),
        ..ServerOptions::default()
    };
    tokio::spawn(rust_server::serve(listener, options, async {
        let _ = stopped.await;
    }));
    (port, stop)
}

fn short(load: Load, payload_bytes: usize) -> LoadOptions {
    LoadOptions {
        load,
        concurrency: 4,
        connections: 2,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(300),
        payload_bytes,
    }
}

#[tokio::test]
async fn both_loads_count_successes_in_the_window() {
    let (port, _stop) = start_server().await;
    for load in [Load::Unary, Load::PingPong] {
        for payload in [0, 100, 70_000] {
            let mut ready = false;
            let report = run_load(&plaintext(port), &short(load, payload), || ready = true)
                .await
                .unwrap();
            let line = report.json_line();
            assert!(ready, "the ready callback runs before the load");
            assert!(report.count > 0, "{line}");
            assert_eq!(report.errors, 0, "{line}");
            assert_eq!(report.first_error, "", "{line}");
            let rate = report.count as f64 / report.elapsed_ms * 1000.0;
            assert!((rate - report.qps).abs() < 0.2, "{line}");
            let l = report.latency_us.unwrap();
            assert!(
                0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
                "{line}"
            );
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed["event"], "load");
            assert_eq!(
                parsed["load"],
                if load == Load::Unary {
                    "unary"
                } else {
                    "ping_pong"
                }
            );
            assert_eq!(parsed["payload_bytes"], payload);
            assert_eq!(parsed["concurrency"], 4);
            assert_eq!(parsed["connections"], 2);
        }
    }
}

#[tokio::test]
async fn errors_are_counted_and_the_first_is_named() {
    // Nothing listens on a port just freed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for load in [Load::Unary, Load::PingPong] {
        let report = run_load(&plaintext(port), &short(load, 10), || {})
            .await
            .unwrap();
        let line = report.json_line();
        assert_eq!(report.count, 0, "{line}");
        assert!(report.errors > 0, "{line}");
        assert!(report.first_error.starts_with("Unavailable: "), "{line}");
        assert_eq!(report.latency_us, None, "{line}");
        assert!(line.contains("\"latency_us\":null"), "{line}");
    }
}

fn client() -> Command {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rust-client"));
    Command::new(exe)
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        &["--load", "stream"][..],
        &["--load", "unary", "--test_case", "large_unary"][..],
        &["--load", "unary", "--load_concurrency", "0"][..],
        &[
            "--load",
            "unary",
            "--load_concurrency",
            "2",
            "--load_connections",
            "3",
        ][..],
        &["--load", "unary", "--load_duration_ms", "0"][..],
        &["--load", "unary", "--load_payload_bytes", "1048577"][..],
    ] {
        let out = client()
            .args(["--server_port", "1"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn the_binary_prints_ready_then_one_load_line() {
    let (port, _stop) = start_server().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rust-client"))
        .args([
            "--server_host",
            "127.0.0.1",
            "--server_port",
            &port.to_string(),
        ])
        .args([
            "--load",
            "ping_pong",
            "--load_concurrency",
            "3",
            "--load_warmup_ms",
            "50",
        ])
        .args(["--load_duration_ms", "200"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], r#"{"event":"ready"}"#);
    let line: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(line["load"], "ping_pong");
    assert_eq!(line["concurrency"], 3);
    assert_eq!(line["warmup_ms"], 50);
    assert_eq!(line["duration_ms"], 200);
    assert!(line["count"].as_u64().unwrap() > 0, "{stdout}");
}
