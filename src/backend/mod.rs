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

/// Run-wide settings a backend needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tls: bool,
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
    /// Starts the implementation's server and waits until it is ready.
    fn start_server<'a>(
        &'a self,
        imp: &'a Implementation,
    ) -> BoxFuture<'a, Result<Box<dyn ServerHandle>, BackendError>>;
    /// Starts the implementation's client on `cases` against `target`.
    fn start_client<'a>(
        &'a self,
        imp: &'a Implementation,
        server: &'a str,
        target: &'a Target,
        cases: &'a [Case],
    ) -> BoxFuture<'a, Result<Box<dyn ClientHandle>, BackendError>>;
    /// Releases run-wide resources (networks, ...). Called on every exit path.
    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The arguments of a client: its command, then its TLS arguments with
/// TLS, then its soak arguments when a soak case is among `cases`.
pub fn client_argv(
    command: &[String],
    role: &crate::manifest::Role,
    template: &crate::manifest::Template,
    tls: bool,
    cases: &[Case],
) -> Vec<String> {
    let mut argv = template.expand(command);
    if tls {
        argv.extend(template.expand(&role.tls));
    }
    if cases
        .iter()
        .any(|c| c.group() == crate::cases::CaseGroup::Soak)
    {
        argv.extend(template.expand(&role.soak));
    }
    argv
}

/// Formats the last lines of a log for a failure report.
pub fn tail_text(name: &str, lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| format!("[{name}] {l}")).collect()
}
