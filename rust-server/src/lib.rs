//! The Rust (tonic) interop server: `helloworld.Greeter`, `grpc.testing.TestService`,
//! health and reflection, as `implementations/CONTRACT.md` describes.
//!
//! `main.rs` is a thin command line over [`bind`], [`readiness_line`] and [`serve`]
//! (and [`health_check`] for `--health_check`); tests start the same server in-process.

pub mod greeter;
pub mod test_service;
pub mod wire;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use grpc_interop::cases::Case;
use grpc_interop::pb::FILE_DESCRIPTOR_SET;
use grpc_interop::pb::grpc_testing::test_service_server;
use grpc_interop::pb::helloworld::greeter_server;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as CheckedStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// `implementation` field of the readiness line.
pub const IMPLEMENTATION: &str = "rust";
/// `library` field of the readiness line.
pub const LIBRARY: &str = "tonic 0.14.9";
/// Pending connections the kernel may queue before `accept`.
const LISTEN_BACKLOG: i32 = 1024;

/// Cases this server cannot serve as the contract asks, with the reason.
/// implementations/rust.toml lists exactly these under `[server.unsupported]`
/// (a test checks it; `tests/test_service_wire.rs` shows the behaviour).
pub const UNSUPPORTED: &[(Case, &str)] = &[(
    Case::ServerCompressedStreaming,
    "tonic 0.14.9 compresses a response stream as a whole or not at all: send_compressed \
     compresses every message of a stream to a client that accepts gzip \
     (Response::disable_compression applies only to unary and client-streaming replies), \
     so ResponseParameters.compressed cannot be honoured per message; the server leaves \
     every streamed message uncompressed",
)];

/// The reason this server cannot serve `case`, if it cannot.
pub fn unsupported_reason(case: Case) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(c, _)| *c == case)
        .map(|(_, reason)| *reason)
}

/// Everything that can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The port could not be bound.
    #[error("cannot listen on port {port}")]
    Bind {
        port: u16,
        #[source]
        source: io::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read {}", path.display())]
    ReadTlsFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// tonic rejected the TLS certificate or key.
    #[error("tls certificate or key rejected")]
    Tls(#[source] tonic::transport::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server stopped with an error.
    #[error("serving failed")]
    Serve(#[source] tonic::transport::Error),
}

/// What the server serves with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// First word of every Greeter reply.
    pub greeting: String,
    /// Certificate chain and key when serving TLS.
    pub tls: Option<Identity>,
    /// With TLS: require a client certificate chaining to this CA (mutual TLS).
    pub client_ca: Option<Certificate>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_string(),
            tls: None,
            client_ca: None,
        }
    }
}

/// The TLS configuration of `identity`, requiring client certificates that
/// chain to `client_ca` when given.
fn tls_config(identity: Identity, client_ca: Option<Certificate>) -> ServerTlsConfig {
    let config = ServerTlsConfig::new().identity(identity);
    match client_ca {
        Some(ca) => config.client_ca_root(ca).client_auth_optional(false),
        None => config,
    }
}

/// Reads a PEM certificate chain and key into a TLS identity, and checks that
/// tonic accepts them, so a bad file is a start-up error rather than a serve error.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, ServerError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ServerError::ReadTlsFile {
            path: path.to_path_buf(),
            source,
        })
    };
    let identity = Identity::from_pem(read(cert)?, read(key)?);
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity.clone()))
        .map_err(ServerError::Tls)?;
    Ok(identity)
}

/// Binds `port` on all interfaces: dual-stack `[::]` (IPv4 too, whatever the
/// host's `bindv6only` default), or `0.0.0.0` where IPv6 is unavailable.
/// Must be called inside a tokio runtime.
pub fn bind(port: u16) -> Result<TcpListener, ServerError> {
    let bind_error = |source| ServerError::Bind { port, source };
    match listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), false) {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => Err(bind_error(error)),
        Err(error) => {
            tracing::debug!(%error, "IPv6 dual-stack bind failed, binding IPv4 only");
            listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), true).map_err(bind_error)
        }
    }
}

fn listen(addr: SocketAddr, v4: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if !v4 {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

#[derive(Serialize)]
struct Listening {
    event: &'static str,
    port: u16,
    tls: bool,
    implementation: &'static str,
    library: &'static str,
}

/// The one stdout line announcing readiness.
pub fn readiness_line(port: u16, tls: bool) -> String {
    let line = Listening {
        event: "listening",
        port,
        tls,
        implementation: IMPLEMENTATION,
        library: LIBRARY,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Serves every service on `listener` until `shutdown` completes, then drains
/// open calls (unbounded here: the caller bounds the grace period).
pub async fn serve(
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for name in [
        "",
        greeter_server::SERVICE_NAME,
        test_service_server::SERVICE_NAME,
        tonic_health::pb::health_server::SERVICE_NAME,
        tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
    ] {
        health_reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let mut builder = Server::builder();
    if let Some(identity) = options.tls {
        builder = builder
            .tls_config(tls_config(identity, options.client_ca))
            .map_err(ServerError::Tls)?;
    }
    // serve_with_incoming ignores the builder's TCP settings, so Nagle is turned
    // off here: ping-pong exchanges small messages and must not wait on it.
    let incoming = TcpListenerStream::new(listener).map(|accepted| {
        accepted.and_then(|stream: TcpStream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    });
    builder
        .add_service(greeter::service(&options.greeting))
        .add_service(test_service::service())
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ServerError::Serve)
}

/// Bound on a whole `--health_check` (connect, TLS handshake and call). Docker
/// runs the check every couple of seconds; a server that cannot answer within
/// this is reported unhealthy rather than left to pile up checks.
pub const HEALTH_CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// How `--health_check` reaches a server that serves TLS.
#[derive(Debug, Clone)]
pub struct HealthCheckTls {
    /// PEM of the only CA trusted.
    pub ca_pem: Vec<u8>,
    /// Name used for SNI and certificate verification.
    pub server_name: String,
    /// The client certificate chain and key presented, as PEM (a server
    /// requiring client certificates).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Why a health check got no serving status back.
#[derive(Debug, thiserror::Error)]
pub enum HealthCheckError {
    /// tonic rejected the address or the TLS settings.
    #[error("cannot set up the channel: {0}")]
    Channel(#[source] tonic::transport::Error),
    /// The call ended with an error status (nothing listening, TLS mismatch, ...).
    #[error("{code:?}: {message}", code = .0.code(), message = .0.message())]
    Call(tonic::Status),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// The server answered with a status number this health proto does not know.
    #[error("unknown serving status {0}")]
    UnknownStatus(i32),
}

/// Calls `grpc.health.v1.Health/Check` for the overall status (service `""`) of
/// the server on `127.0.0.1:port`, with the health client of tonic-health, all
/// within `deadline`. Returns the status the server reported.
pub async fn health_check(
    port: u16,
    tls: Option<&HealthCheckTls>,
    deadline: Duration,
) -> Result<CheckedStatus, HealthCheckError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://127.0.0.1:{port}"))
        .map_err(HealthCheckError::Channel)?
        .connect_timeout(deadline)
        .timeout(deadline);
    if let Some(tls) = tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca_pem))
            .domain_name(tls.server_name.clone());
        let config = match &tls.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        };
        endpoint = endpoint
            .tls_config(config)
            .map_err(HealthCheckError::Channel)?;
    }
    let mut client = HealthClient::new(endpoint.connect_lazy());
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    let reply = tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| HealthCheckError::Deadline(deadline))?
        .map_err(HealthCheckError::Call)?
        .into_inner();
    CheckedStatus::try_from(reply.status).map_err(|_| HealthCheckError::UnknownStatus(reply.status))
}
