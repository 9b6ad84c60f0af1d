//! ghz (github.com/bojand/ghz), the reference column of `interop bench`:
//! installed by `scripts/ghz.sh` at a pinned version, played against each
//! server with the same payload, concurrency, connections and window as the
//! clients, and read from its JSON report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The ghz module version `scripts/ghz.sh` installs.
pub const VERSION: &str = "v0.121.0";

/// Where `scripts/ghz.sh` installs it.
pub fn path(root: &Path) -> PathBuf {
    root.join("target/interop/ghz/ghz")
}

/// How ghz reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    Plaintext,
    /// TLS, trusting `ca` for a certificate for `name`; with mutual TLS, the
    /// client certificate and key ghz presents.
    Tls {
        ca: String,
        name: String,
        client_cert: Option<(String, String)>,
    },
}

/// The project's test client certificate and key (testdata/tls), which the
/// servers' mutual TLS accepts, as the clients present them.
pub fn client_cert(root: &Path) -> (String, String) {
    let tls = root.join("testdata/tls");
    (
        tls.join("client.pem").display().to_string(),
        tls.join("client.key").display().to_string(),
    )
}

/// One ghz run against a server on loopback.
#[derive(Debug, Clone)]
pub struct Run {
    pub port: u16,
    pub security: Security,
    pub concurrency: u32,
    pub connections: u32,
    pub payload_bytes: u32,
    pub window: Duration,
}

/// ghz's arguments for `run`: `UnaryCall` with a request of `payload_bytes` zero bytes asking
/// for as many back, from the project's `proto/`. Calls still in flight when
/// the window closes are left out of the report (`--duration-stop=ignore`),
/// as the clients leave out what ends outside their window.
pub fn argv(binary: &Path, root: &Path, run: &Run) -> Vec<String> {
    let body = zeros_base64(run.payload_bytes as usize);
    let data = serde_json::json!({
        "response_size": run.payload_bytes,
        "payload": {"body": body},
    });
    let mut argv = vec![binary.display().to_string()];
    match &run.security {
        Security::Plaintext => argv.push("--insecure".into()),
        Security::Tls {
            ca,
            name,
            client_cert,
        } => {
            argv.extend([
                "--cacert".into(),
                ca.clone(),
                "--cname".into(),
                name.clone(),
            ]);
            if let Some((cert, key)) = client_cert {
                argv.extend(["--cert".into(), cert.clone(), "--key".into(), key.clone()]);
            }
        }
    }
    argv.extend([
        "--proto".into(),
        root.join("proto/grpc/testing/test.proto")
            .display()
            .to_string(),
        "--import-paths".into(),
        root.join("proto").display().to_string(),
        "--call".into(),
        "grpc.testing.TestService.UnaryCall".into(),
        "--data".into(),
        data.to_string(),
        "--concurrency".into(),
        run.concurrency.to_string(),
        "--connections".into(),
        run.connections.to_string(),
        "--duration".into(),
        format!("{}ms", run.window.as_millis()),
        "--duration-stop=ignore".into(),
        "--timeout".into(),
        "10s".into(),
        "--format".into(),
        "json".into(),
        format!("127.0.0.1:{}", run.port),
    ]);
    argv
}

/// `n` zero bytes in base64 (the form JSON gives protobuf `bytes`): every
/// 3 bytes are `AAAA`, a last 1 or 2 bytes `AA==` or `AAA=`.
pub fn zeros_base64(n: usize) -> String {
    let mut text = "AAAA".repeat(n / 3);
    text.push_str(match n % 3 {
        1 => "AA==",
        2 => "AAA=",
        _ => "",
    });
    text
}

#[derive(Debug, Deserialize)]
struct Latency {
    percentage: u32,
    /// Nanoseconds.
    latency: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    count: u64,
    /// The run's length, nanoseconds.
    total: u64,
    /// Nanoseconds.
    slowest: u64,
    #[serde(default)]
    status_code_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    error_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    latency_distribution: Option<Vec<Latency>>,
}

/// What one ghz run gave, in the units of a client's load line.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Calls that ended OK.
    pub count: u64,
    /// Calls that did not.
    pub errors: u64,
    /// `count` per second of the run.
    pub qps: f64,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    /// The most frequent error, `""` without errors.
    pub first_error: String,
}

fn micros(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// Reads ghz's JSON report. Its rate counts OK calls only, over the run's
/// length, as the clients' rates do; its own `rps` counts errors too.
pub fn parse(json: &str) -> Result<Figures, String> {
    let report: Report =
        serde_json::from_str(json).map_err(|e| format!("ghz's JSON report: {e}"))?;
    let ok = report
        .status_code_distribution
        .get("OK")
        .copied()
        .unwrap_or(0);
    let errors = report.count.saturating_sub(ok);
    if report.total == 0 {
        return Err("ghz's report says the run took no time".into());
    }
    let percentile = |p: u32| {
        report
            .latency_distribution
            .iter()
            .flatten()
            .find(|l| l.percentage == p)
            .map(|l| micros(l.latency))
    };
    let first_error = report
        .error_distribution
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(text, n)| format!("{text} ({n} times)"))
        .unwrap_or_default();
    Ok(Figures {
        count: ok,
        errors,
        qps: (ok as f64 / (report.total as f64 / 1e9) * 10.0).round() / 10.0,
        p50_us: percentile(50),
        p90_us: percentile(90),
        p99_us: percentile(99),
        max_us: (ok > 0).then(|| micros(report.slowest)),
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{"date":"2026-11-30T09:04:10Z","endReason":"timeout","count":21847,
        "total":2000000000,"average":3799978,"fastest":141295,"slowest":25569155,"rps":10923.5,
        "errorDistribution":{"rpc error: code = Unavailable desc = gone":34},
        "statusCodeDistribution":{"OK":21813,"Unavailable":34},
        "latencyDistribution":[{"percentage":10,"latency":1776627},{"percentage":50,"latency":3377641},
          {"percentage":90,"latency":6210900},{"percentage":99,"latency":10756282}]}"#;

    #[test]
    fn figures_count_ok_calls_over_the_run() {
        let f = parse(REPORT).unwrap();
        assert_eq!(f.count, 21813);
        assert_eq!(f.errors, 34);
        assert_eq!(f.qps, 10906.5);
        assert_eq!(f.p50_us, Some(3377.6));
        assert_eq!(f.p90_us, Some(6210.9));
        assert_eq!(f.p99_us, Some(10756.3));
        assert_eq!(f.max_us, Some(25569.2));
        assert_eq!(
            f.first_error,
            "rpc error: code = Unavailable desc = gone (34 times)"
        );
    }

    #[test]
    fn a_run_without_calls_has_no_latency() {
        let f = parse(
            r#"{"count":5,"total":1000000000,"slowest":0,
            "statusCodeDistribution":{"Unavailable":5},"errorDistribution":{"x":5},
            "latencyDistribution":null}"#,
        )
        .unwrap();
        assert_eq!((f.count, f.errors, f.qps), (0, 5, 0.0));
        assert_eq!((f.p50_us, f.max_us), (None, None));
        assert!(parse("not json").unwrap_err().contains("ghz's JSON report"));
        assert!(parse(r#"{"count":0,"total":0,"slowest":0}"#).is_err());
    }

    #[test]
    fn zeros_in_base64() {
        assert_eq!(zeros_base64(0), "");
        assert_eq!(zeros_base64(1), "AA==");
        assert_eq!(zeros_base64(2), "AAA=");
        assert_eq!(zeros_base64(3), "AAAA");
        assert_eq!(zeros_base64(100).len(), 136);
        assert!(zeros_base64(100).ends_with("AA=="));
    }

    #[test]
    fn argv_asks_for_the_same_payload_both_ways() {
        let argv = argv(
            Path::new("/g"),
            Path::new("/r"),
            &Run {
                port: 7,
                security: Security::Plaintext,
                concurrency: 50,
                connections: 2,
                payload_bytes: 3,
                window: Duration::from_millis(1500),
            },
        );
        let data = &argv[argv.iter().position(|a| a == "--data").unwrap() + 1];
        assert_eq!(data, r#"{"payload":{"body":"AAAA"},"response_size":3}"#);
        for pair in [
            ["--concurrency", "50"],
            ["--connections", "2"],
            ["--duration", "1500ms"],
        ] {
            assert!(argv.windows(2).any(|w| w == pair), "{pair:?} in {argv:?}");
        }
        assert_eq!(argv.last().unwrap(), "127.0.0.1:7");
        assert!(argv.contains(&"--duration-stop=ignore".to_string()));
        assert!(argv.contains(&"--insecure".to_string()));
    }

    #[test]
    fn argv_trusts_the_test_ca_and_presents_the_client_certificate_for_mtls() {
        let run = |client_cert: Option<(String, String)>| {
            let security = Security::Tls {
                ca: "/r/ca.pem".into(),
                name: "foo.test".into(),
                client_cert,
            };
            argv(
                Path::new("/g"),
                Path::new("/r"),
                &Run {
                    port: 7,
                    security,
                    concurrency: 1,
                    connections: 1,
                    payload_bytes: 0,
                    window: Duration::from_millis(10),
                },
            )
        };
        let plain_tls = run(None);
        let mutual = run(Some(client_cert(Path::new("/r"))));
        for argv in [&plain_tls, &mutual] {
            assert!(!argv.contains(&"--insecure".to_string()), "{argv:?}");
            for pair in [["--cacert", "/r/ca.pem"], ["--cname", "foo.test"]] {
                assert!(argv.windows(2).any(|w| w == pair), "{pair:?} in {argv:?}");
            }
        }
        assert!(!plain_tls.contains(&"--cert".to_string()), "{plain_tls:?}");
        for pair in [
            ["--cert", "/r/testdata/tls/client.pem"],
            ["--key", "/r/testdata/tls/client.key"],
        ] {
            assert!(
                mutual.windows(2).any(|w| w == pair),
                "{pair:?} in {mutual:?}"
            );
        }
    }
}
