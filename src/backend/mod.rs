//! Where implementations run: native processes or Docker containers.
//!
//! The matrix logic talks to a [`Backend`] only, so it does not know which
//! one it runs on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::cases::Case;
use crate::manifest::Implementation;
pub use crate::process::{Exit, Next};

pub mod docker;
pub mod native;

/// A boxed future, so backends can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a client finds a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// With TLS: where the client finds the CA the server's certificate chains to.
    pub ca: String,
    /// With TLS: the name the server's certificate is for.
    pub tls_name: String,
}

/// How clients and a server talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Transport {
    /// Plaintext HTTP/2 (h2c).
    #[default]
    Plain,
    /// TLS: clients verify the server.
    Tls,
    /// Mutual TLS: the server requires and verifies client certificates too.
    Mtls,
}

impl Transport {
    /// The transport the `--tls` and `--mtls` flags choose.
    pub fn from_flags(tls: bool, mtls: bool) -> Transport {
        match (tls, mtls) {
            (_, true) => Transport::Mtls,
            (true, false) => Transport::Tls,
            (false, false) => Transport::Plain,
        }
    }

    /// `plaintext`, `tls` or `mtls`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Plain => "plaintext",
            Transport::Tls => "tls",
            Transport::Mtls => "mtls",
        }
    }

    /// The transport a cell of `case` is played over in a run over `run`:
    /// the `tls` group always against a server requiring client
    /// certificates; the groups of the bad server and the bad client always
    /// in plaintext (they speak h2c); every other case as the run says.
    pub fn for_case(case: Case, run: Transport) -> Transport {
        use crate::cases::CaseGroup;
        match case.group() {
            CaseGroup::Tls => Transport::Mtls,
            CaseGroup::BadInput | CaseGroup::Http2Negative | CaseGroup::Wire => Transport::Plain,
            _ => run,
        }
    }
}

/// Run-wide settings a backend needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The transport of the run (the cases of the `tls` and `bad_input`
    /// groups have their own, see [`Transport::for_case`]).
    pub transport: Transport,
    /// How long a server may take to announce readiness.
    pub ready_timeout: Duration,
    /// How long one build step may take.
    pub build_timeout: Duration,
    /// Grace period between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Stream child logs to stderr, prefixed with the child's name.
    pub verbose: bool,
    /// The soak cases' settings, for the clients' `{soak_*}` arguments.
    pub soak: crate::manifest::Soak,
}

/// Why a backend could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The manifest lacks what this backend needs (a role, a docker section).
    #[error("{0}")]
    Config(String),
    /// A build step failed or did not finish in time.
    #[error("{0}")]
    Build(String),
    /// A server or client could not be started or never got ready.
    #[error("{0}")]
    Start(String),
    /// The run was cancelled while waiting.
    #[error("interrupted")]
    Interrupted,
}

/// A started server.
pub trait ServerHandle: Send {
    /// Address for clients of this backend.
    fn target(&self) -> Target;
    /// `Some(description)` when the server has exited.
    fn exited(&mut self) -> Option<String>;
    /// Last lines of its logs.
    fn logs(&self, lines: usize) -> Vec<String>;
    /// Stops it and releases everything it holds.
    fn stop(&mut self) -> BoxFuture<'_, ()>;
    /// Its resident memory in KiB, where the backend can see it.
    fn memory_kib(&self) -> Option<u64> {
        None
    }
    /// The CPU time it has used so far, where the backend can see it.
    fn cpu_time(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A running client process.
pub trait ClientHandle: Send {
    /// Next protocol line on its stdout, until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Next>;
    /// Waits for it to exit until `deadline`; `None` if it is still running.
    fn wait(&mut self, deadline: Instant) -> BoxFuture<'_, Option<Exit>>;
    /// Stops it (grace period, then kill); `None` when the exit is unknown.
    fn stop(&mut self) -> BoxFuture<'_, Option<Exit>>;
    /// Last lines of its logs.
    fn logs(&self, lines: usize) -> Vec<String>;
}

/// Runs implementations somewhere.
pub trait Backend: Send + Sync {
    /// `native` or `docker`.
    fn name(&self) -> &'static str;
    /// Builds what the implementation needs.
    fn prepare<'a>(&'a self, imp: &'a Implementation) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Starts the implementation's server over `transport` and waits until
    /// it is ready.
    fn start_server<'a>(
        &'a self,
        imp: &'a Implementation,
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ServerHandle>, BackendError>>;
    /// Starts the implementation's client on `cases` against `target`, over
    /// `transport`.
    fn start_client<'a>(
        &'a self,
        imp: &'a Implementation,
        server: &'a str,
        target: &'a Target,
        cases: &'a [Case],
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ClientHandle>, BackendError>>;
    /// Releases run-wide resources (networks, ...). Called on every exit path.
    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The arguments of a client: its command, then its TLS arguments with
/// TLS (and its mutual-TLS ones with mTLS), then its soak arguments when a
/// soak case is among `cases`.
pub fn client_argv(
    command: &[String],
    role: &crate::manifest::Role,
    template: &crate::manifest::Template,
    transport: Transport,
    cases: &[Case],
) -> Result<Vec<String>, BackendError> {
    let mut argv = template.expand(command);
    argv.extend(transport_args(
        role, template, &role.tls, transport, "client",
    )?);
    if cases
        .iter()
        .any(|c| c.group() == crate::cases::CaseGroup::Soak)
    {
        argv.extend(template.expand(&role.soak));
    }
    Ok(argv)
}

/// The arguments `transport` adds to a side: none in plaintext, `tls` with
/// TLS, `tls` then the role's `mtls` with mutual TLS (an error when the
/// role has none).
pub fn transport_args(
    role: &crate::manifest::Role,
    template: &crate::manifest::Template,
    tls: &[String],
    transport: Transport,
    side: &str,
) -> Result<Vec<String>, BackendError> {
    let mut argv = Vec::new();
    if transport != Transport::Plain {
        if tls.is_empty() {
            return Err(BackendError::Config(format!(
                "this {side} has no TLS arguments (`tls` of its manifest)"
            )));
        }
        argv.extend(template.expand(tls));
    }
    if transport == Transport::Mtls {
        let Some(mtls) = &role.mtls else {
            return Err(BackendError::Config(format!(
                "this {side} cannot do mutual TLS (no `mtls` in its manifest)"
            )));
        };
        argv.extend(template.expand(mtls));
    }
    Ok(argv)
}

/// Formats the last lines of a log for a failure report.
pub fn tail_text(name: &str, lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| format!("[{name}] {l}")).collect()
}
