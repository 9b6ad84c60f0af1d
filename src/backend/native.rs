//! The native backend: processes on 127.0.0.1.

use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::{
    Backend, BackendError, BoxFuture, ClientHandle, Exit, Next, ServerHandle, Settings, Target,
    Transport, client_argv, transport_args,
};
use crate::cases::Case;
use crate::manifest::{DEFAULT_TLS_CA, DEFAULT_TLS_NAME, Implementation, Ready, Role, Template};
use crate::process::{Child, Spec, describe, run_to_end};
use crate::protocol::{self, Line};

/// Runs servers and clients as local processes.
#[derive(Debug, Clone)]
pub struct Native {
    root: PathBuf,
    settings: Settings,
    env: Vec<(String, String)>,
    /// The CPUs servers run on; empty: not pinned.
    server_cpus: Vec<usize>,
}

/// Variables cargo sets for a build script or test binary; a nested cargo
/// build must not inherit them or it would see itself as part of that build.
fn is_cargo_build_var(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || key.starts_with("CARGO_CRATE_")
        || key.starts_with("CARGO_BIN_")
        || key.starts_with("CARGO_TARGET_TMPDIR")
        || key == "CARGO_PRIMARY_PACKAGE"
        || key == "OUT_DIR"
}

impl Native {
    /// A backend rooted at the repository `root`.
    pub fn new(root: &Path, settings: Settings) -> Native {
        let env = vec![
            (
                "INTEROP_TLS_DIR".to_string(),
                root.join("testdata/tls").display().to_string(),
            ),
            // Python must not hold result lines in a buffer.
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ];
        Native {
            root: root.to_path_buf(),
            settings,
            env,
            server_cpus: Vec::new(),
        }
    }

    /// Servers started from now on run on `cpus` only (`interop bench`).
    pub fn pin_servers(mut self, cpus: Vec<usize>) -> Native {
        self.server_cpus = cpus;
        self
    }

    /// The environment every child gets.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    fn template(&self) -> Template {
        Template {
            root: self.root.display().to_string(),
            soak: self.settings.soak,
            ..Template::default()
        }
    }
}

/// The CA a server's clients must trust and the name its certificate is
/// for, from its manifest (the project's test CA when it names none).
fn tls_of(role: &Role, template: &Template) -> (String, String) {
    let ca = role.tls_ca.as_deref().unwrap_or(DEFAULT_TLS_CA);
    let ca = template.expand(&[ca.to_string()]).remove(0);
    let name = role
        .tls_name
        .clone()
        .unwrap_or_else(|| DEFAULT_TLS_NAME.to_string());
    (ca, name)
}

/// The resident memory (VmRSS) of process `pid`, in KiB, from /proc.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The CPU time process `pid` and its descendants have used so far (user
/// and system, of every thread, with the children it has reaped), from /proc;
/// `None` when `pid` is gone. Its resolution is the kernel's clock tick.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let (own, _) = stat_ticks(pid)?;
    let mut ticks = own;
    // Descendants still running: a server started through a wrapper runs
    // its work in a child.
    let mut parents = vec![pid];
    let processes = process_parents();
    while let Some(parent) = parents.pop() {
        for &(child, ppid) in &processes {
            if ppid == parent
                && let Some((t, _)) = stat_ticks(child)
            {
                ticks += t;
                parents.push(child);
            }
        }
    }
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0)?;
    Some(std::time::Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// Clock ticks of `pid` (utime + stime + cutime + cstime) and its parent,
/// from /proc/PID/stat.
fn stat_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The fields of a /proc/PID/stat line that [`cpu_time`] needs: the command
/// name may hold spaces and parentheses, so fields count from its last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u32)> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // After the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17),
    // numbered as in proc(5).
    let ppid = fields.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += fields.get(i)?.parse::<u64>().ok()?;
    }
    Some((ticks, ppid))
}

/// Every process as (pid, parent pid).
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_ticks(pid)?.1)))
        .collect()
}

/// A port that is free now: bound and released.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Why a server is not ready.
enum NotReady {
    Exited,
    Deadline,
}

/// Waits for the server's `{"event":"listening","port":N}` line.
async fn wait_for_listening_line(child: &mut Child, deadline: Instant) -> Result<u16, NotReady> {
    loop {
        match child.next_line(deadline).await {
            Next::Line(line) => {
                if let Ok(Line::Listening { port }) = protocol::parse(&line) {
                    return Ok(port);
                }
            }
            Next::Eof => return Err(NotReady::Exited),
            Next::Deadline => return Err(NotReady::Deadline),
        }
    }
}

/// Waits until the server accepts a TCP connection on `port` of 127.0.0.1,
/// trying every 20 ms, as long as it runs.
async fn wait_for_accept(child: &mut Child, port: u16, deadline: Instant) -> Result<u16, NotReady> {
    loop {
        if child.try_status().is_some() {
            return Err(NotReady::Exited);
        }
        let attempt = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        );
        if let Ok(Ok(_stream)) = attempt.await {
            return Ok(port);
        }
        if Instant::now() >= deadline {
            return Err(NotReady::Deadline);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn prepare<'a>(&'a self, imp: &'a Implementation) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let cargo_vars: Vec<String> = std::env::vars()
                .map(|(k, _)| k)
                .filter(|k| is_cargo_build_var(k))
                .collect();
            for (i, step) in imp.build.iter().enumerate() {
                let argv = self.template().expand(&step.command);
                let dir = match &step.dir {
                    Some(d) => self.root.join(d),
                    None => self.root.clone(),
                };
                run_to_end(
                    Spec {
                        name: format!("build {} step {}", imp.name, i + 1),
                        argv: &argv,
                        dir: &dir,
                        env: &self.env,
                        env_remove: &cargo_vars,
                        echo_logs: self.settings.verbose,
                        cpus: &[],
                    },
                    self.settings.build_timeout,
                    self.settings.stop_grace,
                )
                .await
                .map_err(BackendError::Build)?;
            }
            Ok(())
        })
    }

    fn start_server<'a>(
        &'a self,
        imp: &'a Implementation,
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ServerHandle>, BackendError>> {
        Box::pin(async move {
            let role = imp
                .server
                .as_ref()
                .ok_or_else(|| BackendError::Config(format!("{} has no server", imp.name)))?;
            // A server that announces its port binds port 0; one that does not
            // gets a port chosen here (free a moment ago; loopback only).
            let port = match role.ready {
                Ready::Line => 0,
                Ready::Tcp => free_port().map_err(|e| {
                    BackendError::Start(format!("server {}: no free port: {e}", imp.name))
                })?,
            };
            let template = Template {
                port: port.to_string(),
                ..self.template()
            };
            let mut argv = template.expand(&role.command);
            argv.extend(
                transport_args(role, &template, &role.tls, transport, "server")
                    .map_err(|e| BackendError::Config(format!("server {}: {e}", imp.name)))?,
            );
            let name = match transport {
                Transport::Plain => format!("server {}", imp.name),
                other => format!("server {} ({})", imp.name, other.name()),
            };
            let mut child = Child::spawn(Spec {
                name: name.clone(),
                argv: &argv,
                dir: &self.root,
                env: &self.env,
                env_remove: &[],
                echo_logs: self.settings.verbose,
                cpus: &self.server_cpus,
            })
            .map_err(|e| BackendError::Start(e.to_string()))?;
            let deadline = Instant::now() + self.settings.ready_timeout;
            let ready = match role.ready {
                Ready::Line => wait_for_listening_line(&mut child, deadline).await,
                Ready::Tcp => wait_for_accept(&mut child, port, deadline).await,
            };
            let (ca, tls_name) = tls_of(role, &self.template());
            match ready {
                Ok(port) => Ok(Box::new(NativeServer {
                    child,
                    port,
                    ca,
                    tls_name,
                }) as Box<dyn ServerHandle>),
                Err(NotReady::Exited) => {
                    let status = child
                        .wait_until(Instant::now() + self.settings.stop_grace)
                        .await;
                    child.stop(self.settings.stop_grace).await;
                    Err(BackendError::Start(format!(
                        "{name} ({}) exited before it was ready: {}\n{}",
                        argv.join(" "),
                        describe(status),
                        child.logs().last(20).join("\n")
                    )))
                }
                Err(NotReady::Deadline) => {
                    child.stop(self.settings.stop_grace).await;
                    let what = match role.ready {
                        Ready::Line => "printed no readiness line".to_string(),
                        Ready::Tcp => format!("accepted no connection on port {port}"),
                    };
                    Err(BackendError::Start(format!(
                        "{name} ({}) {what} within {:?}\n{}",
                        argv.join(" "),
                        self.settings.ready_timeout,
                        child.logs().last(20).join("\n")
                    )))
                }
            }
        })
    }

    fn start_client<'a>(
        &'a self,
        imp: &'a Implementation,
        server: &'a str,
        target: &'a Target,
        cases: &'a [Case],
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ClientHandle>, BackendError>> {
        Box::pin(async move {
            let role = imp
                .client
                .as_ref()
                .ok_or_else(|| BackendError::Config(format!("{} has no client", imp.name)))?;
            let template = Template {
                host: target.host.clone(),
                port: target.port.to_string(),
                cases: cases.iter().map(|c| c.name()).collect::<Vec<_>>().join(","),
                ca: target.ca.clone(),
                tls_name: target.tls_name.clone(),
                ..self.template()
            };
            let argv = client_argv(&role.command, role, &template, transport, cases)
                .map_err(|e| BackendError::Config(format!("client {}: {e}", imp.name)))?;
            let child = Child::spawn(Spec {
                name: format!("client {}→{}", imp.name, server),
                argv: &argv,
                dir: &self.root,
                env: &self.env,
                env_remove: &[],
                echo_logs: self.settings.verbose,
                cpus: &[],
            })
            .map_err(|e| BackendError::Start(e.to_string()))?;
            Ok(Box::new(NativeClient {
                child,
                grace: self.settings.stop_grace,
            }) as Box<dyn ClientHandle>)
        })
    }
}

struct NativeServer {
    child: Child,
    port: u16,
    ca: String,
    tls_name: String,
}

impl ServerHandle for NativeServer {
    fn target(&self) -> Target {
        Target {
            host: "127.0.0.1".to_string(),
            port: self.port,
            ca: self.ca.clone(),
            tls_name: self.tls_name.clone(),
        }
    }

    fn exited(&mut self) -> Option<String> {
        self.child.try_status().map(|s| describe(Some(s)))
    }

    fn logs(&self, lines: usize) -> Vec<String> {
        self.child.logs().last(lines)
    }

    fn memory_kib(&self) -> Option<u64> {
        self.child.pid().and_then(resident_kib)
    }

    fn cpu_time(&self) -> Option<std::time::Duration> {
        self.child.pid().and_then(cpu_time)
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Servers stop gracefully within about two seconds; more is a hang.
            self.child.stop(std::time::Duration::from_secs(3)).await;
        })
    }
}

struct NativeClient {
    child: Child,
    grace: std::time::Duration,
}

impl ClientHandle for NativeClient {
    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Next> {
        Box::pin(self.child.next_line(deadline))
    }

    fn wait(&mut self, deadline: Instant) -> BoxFuture<'_, Option<Exit>> {
        Box::pin(async move { self.child.wait_until(deadline).await.map(Exit::of) })
    }

    fn stop(&mut self) -> BoxFuture<'_, Option<Exit>> {
        Box::pin(async move { self.child.stop(self.grace).await.map(Exit::of) })
    }

    fn logs(&self, lines: usize) -> Vec<String> {
        self.child.logs().last(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        // proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime cutime cstime ...
        let line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 900 0 0 0 120 30 5 2 20 0 3 0";
        assert_eq!(parse_stat(line), Some((157, 17)));
        assert_eq!(parse_stat("4242 (cut short) S 17 4242"), None);
    }

    #[test]
    fn cpu_time_counts_a_wrapper_s_busy_child() {
        // The shell waits; its child burns CPU for about 300 ms.
        let mut wrapper = std::process::Command::new("sh")
            .args(["-c", "timeout 0.3 sh -c 'while :; do :; done'; exit 0"])
            .spawn()
            .expect("sh starts");
        let pid = wrapper.id();
        let before = cpu_time(pid).expect("the wrapper is running");
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut seen = Duration::ZERO;
        while Instant::now() < give_up {
            match cpu_time(pid) {
                Some(t) => seen = t,
                None => break,
            }
            if wrapper.try_wait().expect("wait works").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = wrapper.wait();
        assert!(
            seen >= before + Duration::from_millis(100),
            "the busy child's CPU shows in its parent's tree: {before:?} then {seen:?}"
        );
        assert_eq!(cpu_time(u32::MAX), None);
    }
}
