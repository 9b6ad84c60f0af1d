//! The Rust (tonic) interop client: runs the cases of implementations/CONTRACT.md
//! over one channel and reports one JSON line per case.
//!
//! `main.rs` is a thin command line over [`ClientOptions::channel`], [`Clients`]
//! and [`run_case`]; tests drive the same functions in-process.

pub mod cases;
pub mod checks;

use std::future::Future;
use std::time::Duration;

use grpc_interop::cases::Case;
use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;
use grpc_interop::pb::grpc_testing::unimplemented_service_client::UnimplementedServiceClient;
use grpc_interop::pb::helloworld::greeter_client::GreeterClient;
use serde::Serialize;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::checks::Checks;

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
}

/// TLS settings of the channel.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM of the only CA trusted.
    pub ca_pem: Vec<u8>,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
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
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls.server_name.clone());
            endpoint = endpoint.tls_config(config).map_err(ClientError::Tls)?;
        }
        Ok(endpoint.connect_lazy())
    }
}

/// The generated clients, all on one channel.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The channel itself, for calls made below the generated clients.
    pub channel: Channel,
    /// helloworld.Greeter.
    pub greeter: GreeterClient<Channel>,
    /// TestService sending uncompressed requests (accepts gzip responses).
    pub test: TestServiceClient<Channel>,
    /// TestService sending gzip-compressed requests (accepts gzip responses).
    pub test_gzip: TestServiceClient<Channel>,
    /// UnimplementedService, which servers do not register.
    pub unimplemented: UnimplementedServiceClient<Channel>,
}

impl Clients {
    /// Builds every client on `channel`.
    pub fn new(channel: Channel) -> Self {
        let test =
            TestServiceClient::new(channel.clone()).accept_compressed(CompressionEncoding::Gzip);
        Self {
            greeter: GreeterClient::new(channel.clone()),
            test_gzip: test.clone().send_compressed(CompressionEncoding::Gzip),
            test,
            unimplemented: UnimplementedServiceClient::new(channel.clone()),
            channel,
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
}

impl CaseResult {
    /// The JSON line printed for this result.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs `case` in its own task, so a panic becomes a failed result, under [`CASE_GUARD`].
pub async fn run_case(clients: &Clients, case: Case) -> CaseResult {
    let started = Instant::now();
    let (outcome, message) = match unsupported_reason(case) {
        Some(reason) => (Outcome::Unsupported, reason.to_string()),
        None => {
            let clients = clients.clone();
            guarded(async move { cases::run(case, &clients).await }, CASE_GUARD).await
        }
    };
    let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    CaseResult {
        event: "result",
        case,
        outcome,
        duration_ms,
        message,
    }
}

/// Runs a case body as a task bounded by `guard`: a panic or an overrun is a
/// failure with a message, never a crash or a hang.
async fn guarded(
    body: impl Future<Output = Checks> + Send + 'static,
    guard: Duration,
) -> (Outcome, String) {
    let mut task = tokio::spawn(body);
    match tokio::time::timeout(guard, &mut task).await {
        Ok(Ok(checks)) if checks.passed() => (Outcome::Passed, String::new()),
        Ok(Ok(checks)) => (Outcome::Failed, checks.message()),
        Ok(Err(error)) if error.is_panic() => (
            Outcome::Failed,
            format!("case panicked: {}", panic_text(error.into_panic())),
        ),
        Ok(Err(error)) => (
            Outcome::Failed,
            format!("case task ended abnormally: {error}"),
        ),
        Err(_) => {
            task.abort();
            (
                Outcome::Failed,
                format!("case did not finish within {guard:?}"),
            )
        }
    }
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
    async fn a_panicking_case_is_a_failure_with_its_message() {
        let (outcome, message) = guarded(async { exploding_case() }, Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(message, "case panicked: boom");
    }

    #[tokio::test]
    async fn a_hanging_case_is_a_failure_after_the_guard() {
        let (outcome, message) = guarded(
            async {
                std::future::pending::<()>().await;
                Checks::default()
            },
            Duration::from_millis(20),
        )
        .await;
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(message, "case did not finish within 20ms");
    }

    #[tokio::test]
    async fn failed_checks_are_joined_and_passes_are_empty() {
        let (outcome, message) = guarded(async { Checks::default() }, Duration::from_secs(5)).await;
        assert_eq!((outcome, message.as_str()), (Outcome::Passed, ""));
        let (outcome, message) = guarded(
            async {
                let mut checks = Checks::default();
                checks.equal("a", 1, 2);
                checks.equal("b", 3, 4);
                checks
            },
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            (outcome, message.as_str()),
            (Outcome::Failed, "a = 1, want 2; b = 3, want 4")
        );
    }

    #[test]
    fn result_line_has_the_contract_fields_in_order() {
        let result = CaseResult {
            event: "result",
            case: Case::LargeUnary,
            outcome: Outcome::Passed,
            duration_ms: 3.21,
            message: String::new(),
        };
        assert_eq!(
            result.json_line(),
            r#"{"event":"result","case":"large_unary","outcome":"passed","duration_ms":3.21,"message":""}"#
        );
    }
}
