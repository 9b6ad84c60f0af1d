//! `interop bench` for real: every client with a load mode against every
//! server, both loads, with ghz; a short smoke run whose figures are not
//! judged (these machines are noisy), only that every run gave throughput
//! without errors. And the runner's cross-checks of a client's load line,
//! shown to fail.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{
    assert_no_leftovers, ensure_built, impls, output_text as text, root, run_interop, serial,
};
use serde_json::Value;

fn interop(args: &[&str], limit: Duration) -> Output {
    run_interop(args, limit, &[])
}

#[test]
fn every_pairing_gives_throughput_without_errors_and_ghz_plays_each_server() {
    let _serial = serial();
    ensure_built();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let html = dir.path().join("bench.html");
    let out = interop(
        &[
            "bench",
            "--warmup-ms",
            "100",
            "--duration-ms",
            "300",
            "--concurrency",
            "4",
            "--connections",
            "2",
            "--payload",
            "64",
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        Duration::from_secs(20 * 60),
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_no_leftovers();

    let impls = impls();
    let clients: Vec<&str> = grpc_interop::bench::eligible_clients(&impls)
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let servers: Vec<&str> = grpc_interop::bench::eligible_servers(&impls)
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(
        clients,
        ["go", "python", "rust"],
        "clients with a load mode"
    );
    assert_eq!(servers, ["go-official", "go", "python", "rust"]);

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "interop-bench/1");
    let settings = &report["settings"];
    assert_eq!(settings["concurrency"], 4);
    assert_eq!(settings["connections"], 2);
    assert_eq!(settings["payload_bytes"], 64);
    assert_eq!(settings["duration_ms"], 300);
    assert_eq!(settings["ghz"], grpc_interop::bench::ghz::VERSION);
    let entries = report["entries"].as_array().unwrap();
    assert_eq!(entries.len(), clients.len() * servers.len() * 2, "{shown}");
    for load in ["unary", "ping_pong"] {
        for client in &clients {
            for server in &servers {
                let e = entries
                    .iter()
                    .find(|e| e["load"] == load && e["client"] == *client && e["server"] == *server)
                    .unwrap_or_else(|| panic!("no {load} {client}→{server}"));
                let what = format!("{load} {client}→{server}: {e}");
                assert!(e["count"].as_u64().unwrap() > 0, "{what}");
                assert_eq!(e["errors"], 0, "{what}");
                assert!(e["qps"].as_f64().unwrap() > 0.0, "{what}");
                let p50 = e["p50_us"].as_f64().unwrap();
                let p99 = e["p99_us"].as_f64().unwrap();
                assert!(0.0 < p50 && p50 <= p99, "{what}");
                assert!(e["problem"].is_null(), "{what}");
                server_cpu_agrees(e, &what);
            }
        }
    }
    let ghz = report["ghz"].as_array().unwrap();
    assert_eq!(ghz.len(), servers.len(), "{shown}");
    for e in ghz {
        assert_eq!(e["load"], "unary");
        assert!(e["count"].as_u64().unwrap() > 0, "{e}");
        assert_eq!(e["errors"], 0, "{e}");
        assert!(e["p99_us"].as_f64().unwrap() > 0.0, "{e}");
        server_cpu_agrees(e, &e.to_string());
    }

    let stdout = String::from_utf8_lossy(&out.stdout);
    for title in [
        "unary: throughput (calls/s)",
        "unary: p99 latency (ms)",
        "ping_pong: throughput (round trips/s)",
        "ping_pong: p99 latency (ms)",
        "unary: server CPU per call (µs)",
        "ping_pong: server CPU per round trip (µs)",
    ] {
        assert!(stdout.contains(title), "{title}: {shown}");
    }
    let header = stdout
        .lines()
        .skip_while(|l| !l.starts_with("unary: throughput"))
        .nth(1)
        .unwrap();
    assert!(header.contains('│') && header.ends_with("ghz"), "{header}");
    assert!(stdout.contains("verdict: PASS: 28 runs"), "{shown}");
    assert!(
        stdout.contains("note: client go-official has no load mode"),
        "a client left out is named: {shown}"
    );

    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 6);
    assert!(
        page.contains("rust → python"),
        "bar labels name the pairing"
    );
}

/// The server's CPU time over a window was measured, and its figure per
/// call is that time over the calls. The grpcio server, which spends the
/// most per call, shows time in every window; the others may spend less
/// than a clock tick in a window this short.
fn server_cpu_agrees(e: &serde_json::Value, what: &str) {
    let cpu_ms = e["server_cpu_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no server CPU: {what}"));
    let per_call = e["server_cpu_us_per_call"].as_f64().unwrap();
    let count = e["count"].as_u64().unwrap() as f64;
    assert!(
        (per_call - cpu_ms * 1000.0 / count).abs() <= 0.1,
        "per call = CPU / calls: {what}"
    );
    if e["server"] == "python" {
        assert!(cpu_ms > 0.0, "a grpcio server under load uses CPU: {what}");
    }
}

/// A manifest directory with the Rust server and a client `name` whose load
/// command is `script` (a file run by sh with host, port and load as $1..$3).
fn with_client(dir: &Path, name: &str, script: &str) {
    let file = dir.join(format!("{name}.sh"));
    std::fs::write(&file, script).unwrap();
    std::fs::copy(
        root().join("implementations/rust.toml"),
        dir.join("rust.toml"),
    )
    .unwrap();
    let manifest = format!(
        "name = \"{name}\"\nlibrary = \"sh\"\nversion = \"1\"\n\n[client]\n\
         command = [\"false\", \"{{host}}\", \"{{port}}\", \"{{cases}}\"]\n\
         load = [\"sh\", {file:?}, \"{{host}}\", \"{{port}}\", \"{{load}}\", \"{{load_concurrency}}\"]\n",
        file = file.display().to_string()
    );
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
}

const GOOD_LINE: &str = r#"{"event":"load","load":"unary","concurrency":50,"connections":1,"warmup_ms":0,"duration_ms":200,"payload_bytes":100,"count":1000,"errors":0,"elapsed_ms":200.0,"qps":5000.0,"latency_us":{"p50":100.0,"p90":200.0,"p99":300.0,"max":400.0},"first_error":""}"#;

#[test]
fn the_runner_checks_what_a_client_says_of_its_load() {
    let _serial = serial();
    ensure_built();
    let cases = [
        // A rate its count and window do not give.
        (
            "liar",
            format!(
                "echo '{{\"event\":\"ready\"}}'; echo '{}'",
                GOOD_LINE.replace("5000.0", "9000.0")
            ),
            "qps 9000 but count 1000 over 200 ms is 5000.0",
        ),
        // Settings other than those asked for.
        (
            "deaf",
            format!(
                "echo '{{\"event\":\"ready\"}}'; echo '{}'",
                GOOD_LINE.replace("\"concurrency\":50", "\"concurrency\":8")
            ),
            "concurrency 8, asked for 50",
        ),
        // A good line, then a failing exit.
        (
            "crasher",
            format!("echo '{{\"event\":\"ready\"}}'; echo '{GOOD_LINE}'; exit 3"),
            "printed its load line, then ended: exit status 3",
        ),
        // No line at all.
        (
            "mute",
            "echo '{\"event\":\"ready\"}'; exit 0".to_string(),
            "ended without a load line",
        ),
    ];
    for (name, script, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        with_client(dir.path(), name, &script);
        let out = interop(
            &[
                "bench",
                "--implementations",
                dir.path().to_str().unwrap(),
                "--client",
                name,
                "--load",
                "unary",
                "--no-ghz",
                "--warmup-ms",
                "0",
                "--duration-ms",
                "200",
            ],
            Duration::from_secs(10 * 60),
        );
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {shown}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(words), "{name}: {words}: {shown}");
        assert!(
            stdout.contains("verdict: FAIL: 1 of 1 runs did not"),
            "{name}: {shown}"
        );
    }
    assert_no_leftovers();
}

#[test]
fn bad_settings_are_usage_errors() {
    for (args, words) in [
        (&["--load", "stream"][..], "unknown load \"stream\""),
        (&["--concurrency", "0"][..], "at least 1"),
        (
            &["--concurrency", "2", "--connections", "3"][..],
            "must not exceed",
        ),
        (&["--duration-ms", "0"][..], "--duration-ms"),
        (&["--client", "nobody"][..], "nobody"),
    ] {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let out = interop(&all, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{args:?}: {}",
            text(&out)
        );
    }
}

/// Runs a short unary bench with `extra` arguments and returns the exit
/// code, the output and the JSON report.
fn short_unary_bench(extra: &[&str]) -> (Option<i32>, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let mut args = vec![
        "bench",
        "--load",
        "unary",
        "--warmup-ms",
        "100",
        "--duration-ms",
        "300",
        "--concurrency",
        "2",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = interop(&args, Duration::from_secs(20 * 60));
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), text(&out), report)
}

/// Every entry and ghz run of `report` gave throughput without errors.
fn all_ran(report: &Value, shown: &str) -> usize {
    let runs: Vec<&Value> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["ghz"].as_array().unwrap())
        .collect();
    for e in &runs {
        assert!(e["count"].as_u64().unwrap() > 0, "{e}: {shown}");
        assert_eq!(e["errors"], 0, "{e}: {shown}");
        assert!(e["problem"].is_null(), "{e}: {shown}");
    }
    runs.len()
}

#[test]
fn tls_and_mutual_tls_load_every_pairing_that_can_and_ghz_too() {
    let _serial = serial();
    ensure_built();
    let (code, shown, report) = short_unary_bench(&["--tls"]);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(report["settings"]["transport"], "tls", "{shown}");
    assert_eq!(all_ran(&report, &shown), 3 * 4 + 4, "{shown}");
    assert!(
        shown.contains("2 workers over 1 tls connection(s)"),
        "{shown}"
    );

    let (code, shown, report) = short_unary_bench(&["--mtls", "--client", "rust,python"]);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(report["settings"]["transport"], "mtls", "{shown}");
    // The official interop server has no mutual TLS: it sits out, said so.
    assert_eq!(all_ran(&report, &shown), 2 * 3 + 3, "{shown}");
    assert!(
        shown.contains("note: server go-official cannot do mutual TLS"),
        "{shown}"
    );
    assert_no_leftovers();
}

/// The Rust implementation's manifest with its client's `key` arguments
/// (`tls` or `mtls`) replaced by `args`, in `dir`: a client that says it
/// does TLS, or presents a certificate, and does not.
fn rust_client_without(dir: &Path, key: &str, args: &str) {
    let manifest = std::fs::read_to_string(root().join("implementations/rust.toml")).unwrap();
    let client = manifest.find("[client]").unwrap();
    let line_start = client + manifest[client..].find(&format!("\n{key} = [")).unwrap() + 1;
    let line_end = line_start + manifest[line_start..].find('\n').unwrap();
    let changed = format!(
        "{}{key} = {args}{}",
        &manifest[..line_start],
        &manifest[line_end..]
    );
    assert_ne!(changed, manifest);
    std::fs::write(dir.join("rust.toml"), changed).unwrap();
}

#[test]
fn a_client_that_skips_tls_or_its_certificate_is_refused_not_measured() {
    let _serial = serial();
    ensure_built();
    for (flag, key, args) in [
        // Plaintext to a TLS server.
        (
            "--tls",
            "tls",
            r#"["--server_host_override", "{tls_name}"]"#,
        ),
        // TLS without a client certificate to a server that requires one.
        ("--mtls", "mtls", "[]"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        rust_client_without(dir.path(), key, args);
        let (code, shown, report) = short_unary_bench(&[
            flag,
            "--implementations",
            dir.path().to_str().unwrap(),
            "--no-ghz",
        ]);
        assert_eq!(code, Some(1), "{flag}: {shown}");
        let entry = &report["entries"][0];
        assert_eq!(entry["client"], "rust", "{flag}: {shown}");
        assert_eq!(entry["server"], "rust", "{flag}: {shown}");
        assert_eq!(entry["count"], 0, "{flag}: no call got through: {shown}");
        assert!(entry["errors"].as_u64().unwrap() > 0, "{flag}: {shown}");
        assert!(
            shown.contains("verdict: FAIL: 1 of 1 runs did not"),
            "{flag}: {shown}"
        );
    }
    assert_no_leftovers();
}
