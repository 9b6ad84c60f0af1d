//! The Rust (tonic) interop client: runs the cases of implementations/CONTRACT.md
//! over one channel and reports one JSON line per case.
//!
//! `main.rs` is a thin command line over [`ClientOptions::channel`], [`Clients`]
//! and [`run_case`]; tests drive the same functions in-process.

pub mod cases;
pub mod checks;
pub mod load;
pub mod negative;
pub mod wire;

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use grpc_interop::cases::Case;
use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;
use grpc_interop::pb::grpc_testing::unimplemented_service_client::UnimplementedServiceClient;
use grpc_interop::pb::helloworld::greeter_client::GreeterClient;
use serde::Serialize;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::checks::{CheckState, Checks};
use crate::wire::WireChannel;

/// Bound on opening the TCP (and TLS) connection; a call waiting on a dead
/// address fails after this rather than after its whole deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Backstop for a whole case. Every RPC already has its own client-enforced
/// deadline ([`cases::RPC_DEADLINE`]); a case makes at most three RPCs one after
/// the other, so this only fires if something hangs outside an RPC.
pub const CASE_GUARD: Duration = Duration::from_secs(35);

/// Cases tonic 0.14.9 cannot express, with the reason. implementations/rust.toml
/// lists exactly these under `[client.unsupported]` (a test checks it).
pub const UNSUPPORTED: &[(Case, &str)] = &[(
    Case::ClientCompressedStreaming,
    "tonic 0.14.9 has no per-message compression control on a client stream: \
     send_compressed on the client compresses every request message of a call and \
     otherwise none is, so one stream cannot mix a compressed and an uncompressed message",
)];

/// The reason `case` is unsupported, if it is.
pub fn unsupported_reason(case: Case) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(c, _)| *c == case)
        .map(|(_, reason)| *reason)
}

/// Setup failures: bad flags values or unreadable files (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// host:port do not make a valid URI.
    #[error("invalid server address {address:?}")]
    Address {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// tonic rejected the TLS settings.
    #[error("tls configuration rejected")]
    Tls(#[source] tonic::transport::Error),
    /// `--result_file` could not be created.
    #[error("cannot create result file {}", path.display())]
    ResultFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// TLS settings of the channel.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM of the only CA trusted (`--use_test_ca`); `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
    /// The client certificate chain and key presented (mutual TLS), as PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// What the `tls` cases build their channels from: the client's TLS flags,
/// also when the client's own channel is plaintext, and the folder of the
/// test files (`$INTEROP_TLS_DIR`) for the other CA and its client certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsCaseFiles {
    /// `--ca_file` (or `$INTEROP_TLS_DIR/ca.pem`).
    pub ca: Option<PathBuf>,
    /// `--server_host_override` (or `--server_host`).
    pub server_name: String,
    /// `--client_cert_file` and `--client_key_file` (or their defaults).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `$INTEROP_TLS_DIR`.
    pub dir: Option<PathBuf>,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS, or plaintext when `None`.
    pub tls: Option<TlsOptions>,
    /// The settings of the `tls` cases.
    pub tls_cases: TlsCaseFiles,
}

/// The settings of the soak cases (the official flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoakOptions {
    pub iterations: u32,
    pub max_failures: u32,
    pub per_iteration_max_acceptable_latency: Duration,
    pub overall_timeout: Duration,
    pub min_time_between_rpcs: Duration,
    pub num_threads: u32,
}

impl Default for SoakOptions {
    /// The official client's defaults.
    fn default() -> Self {
        SoakOptions {
            iterations: 10,
            max_failures: 0,
            per_iteration_max_acceptable_latency: Duration::from_millis(1000),
            overall_timeout: Duration::from_secs(10),
            min_time_between_rpcs: Duration::ZERO,
            num_threads: 1,
        }
    }
}

impl ClientOptions {
    /// The one channel every case uses. Connects lazily, so an unreachable
    /// server fails each case with UNAVAILABLE instead of aborting the run.
    /// Must be called inside a tokio runtime.
    pub fn channel(&self) -> Result<Channel, ClientError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let address = format!("{scheme}://{host}:{}", self.port);
        let mut endpoint = Endpoint::from_shared(address.clone())
            .map_err(|source| ClientError::Address { address, source })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            let config = ClientTlsConfig::new().domain_name(tls.server_name.clone());
            let config = match &tls.ca_pem {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            let config = match &tls.identity {
                Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
                None => config,
            };
            endpoint = endpoint.tls_config(config).map_err(ClientError::Tls)?;
        }
        Ok(endpoint.connect_lazy())
    }
}

/// The generated clients, all on one channel, which records the compressed
/// flag of every message of a call that asks for it ([`wire::CallFlags`]).
#[derive(Debug, Clone)]
pub struct Clients {
    /// The channel itself, for calls made below the generated clients.
    pub channel: WireChannel,
    /// helloworld.Greeter.
    pub greeter: GreeterClient<WireChannel>,
    /// TestService sending uncompressed requests (accepts gzip responses).
    pub test: TestServiceClient<WireChannel>,
    /// TestService sending gzip-compressed requests (accepts gzip responses).
    pub test_gzip: TestServiceClient<WireChannel>,
    /// UnimplementedService, which servers do not register.
    pub unimplemented: UnimplementedServiceClient<WireChannel>,
    /// How to make another channel to the same server (`channel_soak`).
    pub options: Option<ClientOptions>,
    /// The soak cases' settings.
    pub soak: SoakOptions,
}

impl Clients {
    /// Builds every client on the channel `options` make, with the soak settings.
    pub fn connect(options: &ClientOptions, soak: SoakOptions) -> Result<Self, ClientError> {
        Ok(Clients {
            options: Some(options.clone()),
            soak,
            ..Clients::new(options.channel()?)
        })
    }

    /// Builds every client on `channel` (no other channel can be made:
    /// `channel_soak` then fails, saying so).
    pub fn new(channel: Channel) -> Self {
        let channel = WireChannel::new(channel);
        let test =
            TestServiceClient::new(channel.clone()).accept_compressed(CompressionEncoding::Gzip);
        Self {
            greeter: GreeterClient::new(channel.clone()),
            test_gzip: test.clone().send_compressed(CompressionEncoding::Gzip),
            test,
            unimplemented: UnimplementedServiceClient::new(channel.clone()),
            channel,
            options: None,
            soak: SoakOptions::default(),
        }
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// At least one check failed.
    Failed,
    /// The client library cannot express the case.
    Unsupported,
}

/// The result of one case, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    event: &'static str,
    /// The case.
    pub case: Case,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time of the case, in milliseconds.
    pub duration_ms: f64,
    /// Empty when passed; every failed check joined by `; ` when failed; the reason when unsupported.
    pub message: String,
    /// The checks made, by name (implementations/CONTRACT.md, "Checks").
    pub checks: BTreeMap<String, CheckState>,
    /// The checks tonic cannot make, with the reason.
    pub not_checked: BTreeMap<String, String>,
    /// Numbers the case measured (the soak cases).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl CaseResult {
    /// The JSON line printed for this result.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The ready and done lines: `{"event":"ready"}`, `{"event":"done","cases":N}`.
#[derive(Serialize)]
struct Event {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cases: Option<usize>,
}

/// Where the protocol lines go: `out` (stdout) always, and with
/// `--result_file` a file too (result and done lines), for containers whose
/// image has no shell to redirect stdout.
#[derive(Debug)]
pub struct ResultSink<W: Write> {
    out: W,
    file: Option<File>,
    written: usize,
}

impl<W: Write> ResultSink<W> {
    /// Creates (or truncates) `result_file` when given.
    pub fn open(out: W, result_file: Option<&Path>) -> Result<Self, ClientError> {
        let file = result_file
            .map(|path| {
                File::create(path).map_err(|source| ClientError::ResultFile {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        Ok(Self {
            out,
            file,
            written: 0,
        })
    }

    /// Writes `{"event":"ready"}` to `out`: the channel is made, the first case starts.
    pub fn ready(&mut self) -> io::Result<()> {
        let line = serde_json::to_string(&Event {
            event: "ready",
            cases: None,
        })
        .map_err(io::Error::other)?;
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// Writes one line to `out` and to the file, each flushed at once, so a
    /// reader sees every finished case even if the client is killed later.
    fn line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        if let Some(file) = &mut self.file {
            // One write per line: a reader never sees half of one.
            file.write_all(format!("{line}\n").as_bytes())?;
            file.flush()?;
        }
        Ok(())
    }

    /// Writes one result line.
    pub fn result(&mut self, result: &CaseResult) -> io::Result<()> {
        self.line(&result.json_line())?;
        self.written += 1;
        Ok(())
    }

    /// Ends with `{"event":"done","cases":N}`, which tells a reader the client
    /// finished, on `out` and in the file.
    pub fn finish(mut self) -> io::Result<()> {
        let done = serde_json::to_string(&Event {
            event: "done",
            cases: Some(self.written),
        })
        .map_err(io::Error::other)?;
        self.line(&done)?;
        if let Some(file) = self.file {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Runs `case` in its own task, so a panic becomes a failed result, under
/// [`CASE_GUARD`] (a soak case: its overall timeout and one more iteration, when longer).
pub async fn run_case(clients: &Clients, case: Case) -> CaseResult {
    let started = Instant::now();
    let guard = CASE_GUARD.max(
        clients.soak.overall_timeout
            + clients.soak.per_iteration_max_acceptable_latency
            + checks::DEADLINE_BACKSTOP,
    );
    let checks = match unsupported_reason(case) {
        Some(_) => None,
        None => {
            let clients = clients.clone();
            Some(guarded(case, async move { cases::run(case, &clients).await }, guard).await)
        }
    };
    let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let Some(checks) = checks else {
        return CaseResult {
            event: "result",
            case,
            outcome: Outcome::Unsupported,
            duration_ms,
            message: unsupported_reason(case).unwrap_or_default().to_string(),
            checks: BTreeMap::new(),
            not_checked: BTreeMap::new(),
            metrics: BTreeMap::new(),
        };
    };
    CaseResult {
        event: "result",
        case,
        outcome: if checks.passed() {
            Outcome::Passed
        } else {
            Outcome::Failed
        },
        duration_ms,
        message: checks.message(),
        checks: checks.made().clone(),
        not_checked: checks.not_checked().clone(),
        metrics: checks.metrics().clone(),
    }
}

/// Runs a case body as a task bounded by `guard`: a panic or an overrun is a
/// failed check (the case's first status check) with a message, never a
/// crash or a hang.
async fn guarded(
    case: Case,
    body: impl Future<Output = Checks> + Send + 'static,
    guard: Duration,
) -> Checks {
    let mut task = tokio::spawn(body);
    let failure = match tokio::time::timeout(guard, &mut task).await {
        Ok(Ok(checks)) => return checks,
        Ok(Err(error)) if error.is_panic() => {
            format!("case panicked: {}", panic_text(error.into_panic()))
        }
        Ok(Err(error)) => format!("case task ended abnormally: {error}"),
        Err(_) => {
            task.abort();
            format!("case did not finish within {guard:?}")
        }
    };
    let first_status = case
        .checks()
        .iter()
        .find(|n| n.ends_with("status") || n.ends_with("status_code"))
        .copied()
        .unwrap_or("status");
    let mut checks = Checks::default();
    checks.fail(first_status, failure);
    checks
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exploding_case() -> Checks {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_case_is_a_failed_status_check_with_its_message() {
        let checks = guarded(
            Case::LargeUnary,
            async { exploding_case() },
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(checks.message(), "case panicked: boom");
        assert_eq!(checks.made()["status"], CheckState::Failed);
    }

    #[tokio::test]
    async fn a_hanging_case_is_a_failure_after_the_guard() {
        let checks = guarded(
            Case::StatusCodeAndMessage,
            async {
                std::future::pending::<()>().await;
                Checks::default()
            },
            Duration::from_millis(20),
        )
        .await;
        assert_eq!(checks.message(), "case did not finish within 20ms");
        assert_eq!(checks.made()["unary.status_code"], CheckState::Failed);
    }

    fn result(case: Case) -> CaseResult {
        CaseResult {
            event: "result",
            case,
            outcome: Outcome::Passed,
            duration_ms: 1.5,
            message: String::new(),
            checks: [("status".to_string(), CheckState::Passed)].into(),
            not_checked: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }

    #[test]
    fn result_sink_writes_every_line_to_both_and_ends_the_file_with_done() {
        let path =
            std::env::temp_dir().join(format!("rust-client-sink-{}.jsonl", std::process::id()));
        std::fs::write(&path, "stale line of an earlier run\n").expect("seed the file");
        let result = result(Case::EmptyUnary);
        let mut stdout = Vec::new();
        let mut sink = ResultSink::open(&mut stdout, Some(&path)).expect("creates the file");
        sink.ready().expect("writes");
        sink.result(&result).expect("writes");
        sink.result(&result).expect("writes");
        sink.finish().expect("finishes");
        let file = std::fs::read_to_string(&path).expect("file readable");
        std::fs::remove_file(&path).expect("cleanup");

        let line = result.json_line();
        assert_eq!(
            String::from_utf8(stdout).expect("utf-8"),
            format!(
                "{{\"event\":\"ready\"}}\n{line}\n{line}\n{{\"event\":\"done\",\"cases\":2}}\n"
            )
        );
        assert_eq!(
            file,
            format!("{line}\n{line}\n{{\"event\":\"done\",\"cases\":2}}\n")
        );
    }

    #[test]
    fn result_sink_without_a_file_writes_stdout_only() {
        let mut stdout = Vec::new();
        let sink = ResultSink::open(&mut stdout, None).expect("no file to create");
        sink.finish().expect("finishes");
        assert_eq!(stdout, b"{\"event\":\"done\",\"cases\":0}\n");
        let error = ResultSink::open(Vec::new(), Some(Path::new("/nonexistent/dir/r.jsonl")))
            .expect_err("no such folder");
        assert_eq!(
            error.to_string(),
            "cannot create result file /nonexistent/dir/r.jsonl"
        );
    }

    #[test]
    fn result_line_has_the_contract_fields_in_order() {
        let mut result = result(Case::LargeUnary);
        result.duration_ms = 3.21;
        result
            .not_checked
            .insert("payload_type".into(), "why".into());
        assert_eq!(
            result.json_line(),
            r#"{"event":"result","case":"large_unary","outcome":"passed","duration_ms":3.21,"message":"","checks":{"status":"passed"},"not_checked":{"payload_type":"why"}}"#
        );
    }
}
