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
pub use crate::process::Next;

pub mod docker;
pub mod native;

/// A boxed future, so backends can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a client finds a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
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
    /// Waits for it to exit until `deadline`; describes the exit.
    fn wait(&mut self, deadline: Instant) -> BoxFuture<'_, Option<String>>;
    /// Stops it (grace period, then kill); describes the exit.
    fn stop(&mut self) -> BoxFuture<'_, String>;
    /// Last lines of its logs.
    fn logs(&self, lines: usize) -> Vec<String>;
}

/// Runs implementations somewhere.
pub trait Backend: Send + Sync {
    /// `native` or `docker`.
    fn name(&self) -> &'static str;
    /// Builds what the implementation needs; the error is for humans.
    fn prepare<'a>(&'a self, imp: &'a Implementation) -> BoxFuture<'a, Result<(), String>>;
    /// Starts the implementation's server and waits until it is ready.
    fn start_server<'a>(
        &'a self,
        imp: &'a Implementation,
    ) -> BoxFuture<'a, Result<Box<dyn ServerHandle>, String>>;
    /// Starts the implementation's client on `cases` against `target`.
    fn start_client<'a>(
        &'a self,
        imp: &'a Implementation,
        server: &'a str,
        target: &'a Target,
        cases: &'a [Case],
    ) -> BoxFuture<'a, Result<Box<dyn ClientHandle>, String>>;
    /// Releases run-wide resources (networks, ...). Called on every exit path.
    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Parses the readiness line of a server: `{"event":"listening","port":N,...}`.
pub fn parse_listening(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("event")?.as_str()? != "listening" {
        return None;
    }
    u16::try_from(v.get("port")?.as_u64()?)
        .ok()
        .filter(|p| *p != 0)
}

/// Formats the last lines of a log for a failure report.
pub fn tail_text(name: &str, lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| format!("[{name}] {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening(r#"{"event":"listening","port":40123,"tls":false}"#),
            Some(40123)
        );
        assert_eq!(parse_listening(r#"{"event":"listening","port":0}"#), None);
        assert_eq!(parse_listening(r#"{"event":"result","port":1}"#), None);
        assert_eq!(
            parse_listening(r#"{"event":"listening","port":70000}"#),
            None
        );
        assert_eq!(parse_listening("listening on 1"), None);
    }
}
