//! `interop bench`: load figures per pairing. Every client with a load mode
//! (implementations/CONTRACT.md, "Load mode") plays each load against every
//! server, one pairing at a time, and ghz plays the unary load against each
//! server as a reference, in plaintext, TLS or mutual TLS. Servers can be
//! pinned to CPUs of their own, and the clients and ghz then run on the
//! others; the runner reads each server's CPU time at both ends of every
//! window, which gives the server's CPU per call beside the throughput.
//!
//! The runner trusts no line blindly: a client's load line must echo the
//! settings it was given, its rate must agree with its count and window, its
//! percentiles must be in order, and it must exit 0. A pairing passes when it
//! ran with nonzero throughput and no errors; the figures themselves are not
//! judged (these machines are shared and noisy).

pub mod ghz;
pub mod render;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::native::Native;
use crate::backend::{Backend, ServerHandle, Settings, Transport, transport_args};
use crate::cases::CaseGroup;
pub use crate::load::Load;
use crate::manifest::{Implementation, LoadArgs, Template};
use crate::process::{Child, Next, Spec, describe, run_to_end};
use crate::protocol::{self, Line, LoadLine};

/// Version of the JSON report's layout.
pub const REPORT_SCHEMA: &str = "interop-bench/1";

/// How long a client may take, after its window closed, to finish what is
/// in flight (the contract gives it 10 s) and print its line.
const AFTER_WINDOW: Duration = Duration::from_secs(15);

/// What to play, as the command line chose.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub root: PathBuf,
    /// Clients with a load mode, in order.
    pub clients: Vec<Implementation>,
    /// Servers, in order.
    pub servers: Vec<Implementation>,
    pub loads: Vec<Load>,
    pub concurrency: u32,
    pub connections: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub payload_bytes: u32,
    /// How many CPUs servers are pinned to (0: not pinned).
    pub server_cpus: usize,
    /// Play ghz against each server.
    pub ghz: bool,
    /// Use what is built; do not build or install.
    pub skip_build: bool,
    /// The native backend's settings.
    pub settings: Settings,
    /// What the selection left out and why, for the report.
    pub notes: Vec<String>,
}

/// The settings a report's figures were measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSettings {
    pub loads: Vec<Load>,
    pub concurrency: u32,
    pub connections: u32,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    pub payload_bytes: u32,
    /// The CPUs the runner may use.
    pub machine_cpus: Vec<usize>,
    /// The CPUs servers ran on; empty: not pinned.
    pub server_cpus: Vec<usize>,
    /// The CPUs clients and ghz ran on; empty: not pinned.
    pub client_cpus: Vec<usize>,
    /// The ghz version, when ghz played.
    pub ghz: Option<String>,
    /// `plaintext`, `tls` or `mtls`: how clients and ghz reached the servers.
    #[serde(default = "plaintext")]
    pub transport: String,
}

fn plaintext() -> String {
    Transport::Plain.name().to_string()
}

/// The figures of one pairing under one load (or of ghz against a server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub load: Load,
    pub client: String,
    pub server: String,
    /// "tonic 0.14.9", "ghz v0.121.0", ...
    pub client_library: String,
    pub server_library: String,
    /// Successes in the window.
    pub count: u64,
    /// Errors in the window.
    pub errors: u64,
    /// Successes per second of the window; `None` when it did not run.
    pub qps: Option<f64>,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    /// The first error the client saw (ghz: its most frequent one).
    pub first_error: String,
    /// Why the figures are missing or cannot be trusted (a client that did
    /// not start, crashed, or printed a line that contradicts itself).
    pub problem: Option<String>,
    /// The server's CPU time over the window, in ms (every thread, user and
    /// system); `None` when it was not measured.
    #[serde(default)]
    pub server_cpu_ms: Option<f64>,
    /// That CPU time per successful call (per round trip for ping_pong), in µs.
    #[serde(default)]
    pub server_cpu_us_per_call: Option<f64>,
}

impl Entry {
    fn empty(load: Load, client: &str, client_library: &str, server: &Implementation) -> Entry {
        Entry {
            load,
            client: client.to_string(),
            server: server.name.clone(),
            client_library: client_library.to_string(),
            server_library: server.library_version(),
            count: 0,
            errors: 0,
            qps: None,
            p50_us: None,
            p90_us: None,
            p99_us: None,
            max_us: None,
            first_error: String::new(),
            problem: None,
            server_cpu_ms: None,
            server_cpu_us_per_call: None,
        }
    }

    /// Records the server's CPU time over the window.
    fn with_server_cpu(mut self, spent: Option<Duration>) -> Entry {
        if let Some(spent) = spent {
            let ms = spent.as_secs_f64() * 1000.0;
            self.server_cpu_ms = Some((ms * 10.0).round() / 10.0);
            self.server_cpu_us_per_call =
                (self.count > 0).then(|| ((ms * 1000.0 / self.count as f64) * 10.0).round() / 10.0);
        }
        self
    }

    fn failed(mut self, problem: impl Into<String>) -> Entry {
        self.problem = Some(problem.into());
        self
    }

    /// It ran, with nonzero throughput and no errors.
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.errors == 0 && self.count > 0
    }

    /// Why it is not [`ok`](Entry::ok), in a line.
    pub fn why_not_ok(&self) -> Option<String> {
        if let Some(problem) = &self.problem {
            return Some(problem.clone());
        }
        if self.errors > 0 {
            return Some(format!(
                "{} errors in the window; first: {}",
                self.errors, self.first_error
            ));
        }
        (self.count == 0).then(|| "no call succeeded in the window".to_string())
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema: String,
    pub settings: BenchSettings,
    /// One per pairing and load, servers in order, then clients in order.
    pub entries: Vec<Entry>,
    /// ghz against each server (unary only).
    pub ghz: Vec<Entry>,
    /// What was left out and why.
    pub notes: Vec<String>,
    pub interrupted: bool,
}

impl BenchReport {
    /// Every pairing and every ghz run gave figures, with no errors.
    pub fn ok(&self) -> bool {
        !self.interrupted && self.entries.iter().chain(&self.ghz).all(Entry::ok)
    }
}

/// The servers `interop bench` plays: those serving grpc.testing.TestService.
pub fn eligible_servers(impls: &[Implementation]) -> Vec<&Implementation> {
    impls
        .iter()
        .filter(|i| {
            i.server
                .as_ref()
                .is_some_and(|role| role.groups().contains(&CaseGroup::Interop))
        })
        .collect()
}

/// The clients it plays: those with a load mode.
pub fn eligible_clients(impls: &[Implementation]) -> Vec<&Implementation> {
    impls
        .iter()
        .filter(|i| i.client.as_ref().is_some_and(|role| role.load.is_some()))
        .collect()
}

/// Splits the CPUs the runner may use: the first `server_cpus` for servers,
/// the rest for clients. With no CPU left for clients they are not pinned
/// (and share the servers' CPUs); with 0 nothing is pinned.
pub fn split_cpus(allowed: &[usize], server_cpus: usize) -> (Vec<usize>, Vec<usize>) {
    if server_cpus == 0 || allowed.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let n = server_cpus.min(allowed.len());
    let servers = allowed[..n].to_vec();
    let clients = allowed[n..].to_vec();
    (servers, clients)
}

/// Reads a load line and checks it against what was asked: the settings
/// echoed, the rate agreeing with the count and the window, the
/// percentiles present exactly when something succeeded, and in order.
fn read_load_line(line: &str, asked: &LoadArgs) -> Result<LoadLine, String> {
    let parsed = match protocol::parse(line) {
        Ok(Line::Load(parsed)) => parsed,
        Ok(_) => return Err(format!("expected the load line, got {line}")),
        Err(e) => {
            return Err(format!(
                "the load line is not what CONTRACT.md says ({e}): {line}"
            ));
        }
    };
    let mut wrong = Vec::new();
    for ((field, got), (_, want)) in parsed.settings.fields().into_iter().zip(asked.fields()) {
        if got != want {
            wrong.push(format!("{field} {got}, asked for {want}"));
        }
    }
    if parsed.elapsed_ms <= 0.0 {
        wrong.push(format!("elapsed_ms {}", parsed.elapsed_ms));
    } else {
        let rate = parsed.count as f64 / parsed.elapsed_ms * 1000.0;
        // Both are rounded to a tenth; allow for that and 0.1 % more.
        if (rate - parsed.qps).abs() > 0.2 + rate * 0.001 {
            wrong.push(format!(
                "qps {} but count {} over {} ms is {rate:.1}",
                parsed.qps, parsed.count, parsed.elapsed_ms
            ));
        }
    }
    match (&parsed.latency_us, parsed.count) {
        (None, 0) => {}
        (None, n) => wrong.push(format!("no latency_us with count {n}")),
        (Some(_), 0) => wrong.push("latency_us with count 0".to_string()),
        (Some(l), _) => {
            if !(0.0 <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max) {
                wrong.push(format!(
                    "percentiles out of order: p50 {} p90 {} p99 {} max {}",
                    l.p50, l.p90, l.p99, l.max
                ));
            }
        }
    }
    if parsed.errors > 0 && parsed.first_error.is_empty() {
        wrong.push(format!("{} errors but no first_error", parsed.errors));
    }
    if wrong.is_empty() {
        Ok(parsed)
    } else {
        Err(format!(
            "the load line contradicts itself or the run: {}",
            wrong.join("; ")
        ))
    }
}

/// Plays every client and ghz against every server of `opts`, one at a time.
pub async fn run(opts: &BenchOptions, cancel: CancellationToken) -> BenchReport {
    let allowed = crate::process::allowed_cpus();
    let (server_cpus, client_cpus) = split_cpus(&allowed, opts.server_cpus);
    let mut notes = opts.notes.clone();
    if opts.server_cpus > 0 && client_cpus.is_empty() {
        notes.push(format!(
            "the runner may use {} CPU(s): servers are pinned to {server_cpus:?}, and clients share them",
            allowed.len()
        ));
    }
    if opts.server_cpus > allowed.len() && !allowed.is_empty() {
        notes.push(format!(
            "--server-cpus {} asked for more CPUs than the runner may use ({})",
            opts.server_cpus,
            allowed.len()
        ));
    }
    if opts.ghz && opts.loads.contains(&Load::PingPong) {
        notes.push(
            "ghz plays unary only: it times a whole stream as one call, not each round trip, so it has no ping_pong figure to compare"
                .to_string(),
        );
    }
    let mut report = BenchReport {
        schema: REPORT_SCHEMA.to_string(),
        settings: BenchSettings {
            loads: opts.loads.clone(),
            concurrency: opts.concurrency,
            connections: opts.connections,
            warmup_ms: millis(opts.warmup),
            duration_ms: millis(opts.duration),
            payload_bytes: opts.payload_bytes,
            machine_cpus: allowed.clone(),
            server_cpus: server_cpus.clone(),
            client_cpus: client_cpus.clone(),
            ghz: None,
            transport: opts.settings.transport.name().to_string(),
        },
        entries: Vec::new(),
        ghz: Vec::new(),
        notes,
        interrupted: false,
    };
    let backend = Native::new(&opts.root, opts.settings.clone()).pin_servers(server_cpus);
    let ghz_binary = if opts.ghz && opts.loads.contains(&Load::Unary) {
        match install_ghz(opts, &cancel).await {
            Ok(path) => {
                report.settings.ghz = Some(ghz::VERSION.to_string());
                Some(path)
            }
            Err(e) => {
                report.notes.push(format!("ghz: {e}"));
                for server in &opts.servers {
                    report.ghz.push(
                        Entry::empty(Load::Unary, "ghz", &ghz_library(), server)
                            .failed(format!("ghz could not be installed: {e}")),
                    );
                }
                None
            }
        }
    } else {
        None
    };
    let mut built = Vec::new();
    for imp in opts.clients.iter().chain(&opts.servers) {
        if opts.skip_build || built.contains(&imp.name) || cancel.is_cancelled() {
            continue;
        }
        built.push(imp.name.clone());
        let result = tokio::select! {
            r = backend.prepare(imp) => r,
            _ = cancel.cancelled() => break,
        };
        if let Err(e) = result {
            report
                .notes
                .push(format!("{}: build failed: {e}", imp.name));
        }
    }
    let player = Player {
        opts,
        backend: &backend,
        client_cpus: &client_cpus,
        cancel: &cancel,
    };
    for server in &opts.servers {
        if cancel.is_cancelled() {
            break;
        }
        player
            .play_server(server, ghz_binary.as_deref(), &mut report)
            .await;
    }
    report.interrupted = cancel.is_cancelled();
    report
}

/// Runs `work` and takes the server's CPU time when the window opens and
/// when it closes, or when `work` ends if that comes first (a client ends
/// its window by its own clock, which can run a moment ahead of the
/// runner's estimate); returns what `work` returned and the CPU time spent
/// in between, `None` when `work` ended before the window opened or the
/// server's CPU time cannot be seen. The samples only measure the server:
/// nothing is judged by this clock.
async fn cpu_over_window<T>(
    server: &dyn ServerHandle,
    opens: Instant,
    closes: Instant,
    work: impl std::future::Future<Output = T>,
) -> (T, Option<Duration>) {
    tokio::pin!(work);
    // The look when the window opened (itself `None` when the backend
    // cannot see CPU time), and the time spent once the window closed.
    let mut at_open: Option<Option<Duration>> = None;
    let mut spent: Option<Option<Duration>> = None;
    let since = |first: Option<Duration>| {
        first
            .zip(server.cpu_time())
            .map(|(a, b)| b.saturating_sub(a))
    };
    loop {
        let next = match (at_open, spent) {
            (None, _) => opens,
            (Some(_), None) => closes,
            (Some(_), Some(_)) => return ((&mut work).await, spent.flatten()),
        };
        tokio::select! {
            biased;
            out = &mut work => {
                if let (Some(first), None) = (at_open, spent) {
                    spent = Some(since(first));
                }
                return (out, spent.flatten());
            }
            _ = tokio::time::sleep_until(next) => match at_open {
                None => at_open = Some(server.cpu_time()),
                Some(first) => spent = Some(since(first)),
            },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ghz_library() -> String {
    format!("ghz {}", ghz::VERSION)
}

/// Runs `scripts/ghz.sh` (unless the build is skipped) and returns the binary.
async fn install_ghz(opts: &BenchOptions, cancel: &CancellationToken) -> Result<PathBuf, String> {
    let binary = ghz::path(&opts.root);
    if opts.skip_build {
        return match binary.is_file() {
            true => Ok(binary),
            false => Err(format!(
                "{} is not there (run scripts/ghz.sh, or leave out --no-build)",
                binary.display()
            )),
        };
    }
    let argv = vec![
        "bash".to_string(),
        opts.root.join("scripts/ghz.sh").display().to_string(),
    ];
    let install = run_to_end(
        Spec {
            name: "install ghz".to_string(),
            argv: &argv,
            dir: &opts.root,
            env: &[],
            env_remove: &[],
            echo_logs: opts.settings.verbose,
            cpus: &[],
        },
        opts.settings.build_timeout,
        opts.settings.stop_grace,
    );
    tokio::select! {
        result = install => result?,
        _ = cancel.cancelled() => return Err("interrupted".to_string()),
    }
    Ok(binary)
}

struct Player<'a> {
    opts: &'a BenchOptions,
    backend: &'a Native,
    client_cpus: &'a [usize],
    cancel: &'a CancellationToken,
}

impl Player<'_> {
    /// One server: started once, then every load with every client, then ghz.
    async fn play_server(
        &self,
        server: &Implementation,
        ghz_binary: Option<&std::path::Path>,
        report: &mut BenchReport,
    ) {
        let started = tokio::select! {
            r = self.backend.start_server(server, self.opts.settings.transport) => r,
            _ = self.cancel.cancelled() => return,
        };
        let mut handle = match started {
            Ok(handle) => handle,
            Err(e) => {
                let why = format!("server {} did not start: {e}", server.name);
                for load in &self.opts.loads {
                    for client in &self.opts.clients {
                        report.entries.push(
                            Entry::empty(*load, &client.name, &client.library_version(), server)
                                .failed(why.clone()),
                        );
                    }
                }
                if ghz_binary.is_some() {
                    report
                        .ghz
                        .push(Entry::empty(Load::Unary, "ghz", &ghz_library(), server).failed(why));
                }
                return;
            }
        };
        for load in &self.opts.loads {
            for client in &self.opts.clients {
                if self.cancel.is_cancelled() {
                    break;
                }
                let entry = self.play_client(client, server, &mut handle, *load).await;
                report.entries.push(entry);
            }
        }
        if let Some(binary) = ghz_binary
            && !self.cancel.is_cancelled()
        {
            let entry = self.play_ghz(binary, server, &mut handle).await;
            report.ghz.push(entry);
        }
        handle.stop().await;
    }

    fn load_args(&self, load: Load) -> LoadArgs {
        LoadArgs {
            load: load.name().to_string(),
            concurrency: self.opts.concurrency,
            connections: self.opts.connections,
            warmup_ms: millis(self.opts.warmup),
            duration_ms: millis(self.opts.duration),
            payload_bytes: self.opts.payload_bytes,
        }
    }

    async fn play_client(
        &self,
        client: &Implementation,
        server: &Implementation,
        handle: &mut Box<dyn ServerHandle>,
        load: Load,
    ) -> Entry {
        let entry = Entry::empty(load, &client.name, &client.library_version(), server);
        let Some((role, command)) = client
            .client
            .as_ref()
            .and_then(|r| Some((r, r.load.as_ref()?)))
        else {
            return entry.failed("its manifest has no load command");
        };
        if let Some(how) = handle.exited() {
            return entry.failed(format!("server {} exited earlier: {how}", server.name));
        }
        let target = handle.target();
        let args = self.load_args(load);
        let template = Template {
            root: self.opts.root.display().to_string(),
            host: target.host.clone(),
            port: target.port.to_string(),
            ca: target.ca.clone(),
            tls_name: target.tls_name.clone(),
            load: args.clone(),
            ..Template::default()
        };
        let mut argv = template.expand(command);
        let transport = self.opts.settings.transport;
        match transport_args(role, &template, &role.tls, transport, "client") {
            Ok(more) => argv.extend(more),
            Err(e) => return entry.failed(e.to_string()),
        }
        let name = format!("bench {}→{} ({})", client.name, server.name, load.name());
        let mut child = match Child::spawn(Spec {
            name: name.clone(),
            argv: &argv,
            dir: &self.opts.root,
            env: self.backend.env(),
            env_remove: &[],
            echo_logs: self.opts.settings.verbose,
            cpus: self.client_cpus,
        }) {
            Ok(child) => child,
            Err(e) => return entry.failed(e.to_string()),
        };
        let outcome = tokio::select! {
            outcome = self.follow(&mut child, &args, &**handle) => outcome,
            _ = self.cancel.cancelled() => Err("interrupted".to_string()),
        };
        let grace = self.opts.settings.stop_grace;
        let status = match &outcome {
            Ok(_) => child.wait_until(Instant::now() + grace * 2).await,
            Err(_) => None,
        };
        if status.is_none() {
            child.stop(grace).await;
        }
        let logs = || {
            let tail = child.logs().last(10);
            match tail.is_empty() {
                true => String::new(),
                false => format!("\n{}", tail.join("\n")),
            }
        };
        let (line, server_cpu) = match outcome {
            Ok(line) => line,
            Err(e) => return entry.failed(format!("{e}{}", logs())),
        };
        if !status.is_some_and(|s| s.success()) {
            return entry.failed(format!(
                "{name} printed its load line, then ended: {}{}",
                describe(status),
                logs()
            ));
        }
        let mut entry = Entry {
            count: line.count,
            errors: line.errors,
            qps: Some(line.qps),
            first_error: line.first_error,
            ..entry
        };
        if let Some(l) = line.latency_us {
            entry.p50_us = Some(l.p50);
            entry.p90_us = Some(l.p90);
            entry.p99_us = Some(l.p99);
            entry.max_us = Some(l.max);
        }
        let mut entry = entry.with_server_cpu(server_cpu);
        if let Some(how) = handle.exited() {
            entry.problem = Some(format!(
                "server {} exited during the load: {how}",
                server.name
            ));
        }
        entry
    }

    /// Waits for the client's ready line, then its load line, each with a
    /// deadline; returns the load line, checked, and the server's CPU time
    /// over the client's window (which opens a warm-up after its ready line).
    async fn follow(
        &self,
        child: &mut Child,
        args: &LoadArgs,
        server: &dyn ServerHandle,
    ) -> Result<(LoadLine, Option<Duration>), String> {
        let ready_by = Instant::now() + self.opts.settings.ready_timeout;
        match child.next_line(ready_by).await {
            Next::Line(line) if protocol::parse(&line) == Ok(Line::Ready) => {}
            Next::Line(line) => return Err(format!("expected the ready line, got {line}")),
            Next::Eof => {
                let status = child
                    .wait_until(Instant::now() + Duration::from_secs(2))
                    .await;
                return Err(format!("exited before it was ready: {}", describe(status)));
            }
            Next::Deadline => {
                return Err(format!(
                    "not ready within {:?}",
                    self.opts.settings.ready_timeout
                ));
            }
        }
        let opens = Instant::now() + self.opts.warmup;
        let closes = opens + self.opts.duration;
        let done_by = closes + AFTER_WINDOW;
        let (next, server_cpu) =
            cpu_over_window(server, opens, closes, child.next_line(done_by)).await;
        match next {
            Next::Line(line) => read_load_line(&line, args).map(|line| (line, server_cpu)),
            Next::Eof => {
                let status = child
                    .wait_until(Instant::now() + Duration::from_secs(2))
                    .await;
                Err(format!("ended without a load line: {}", describe(status)))
            }
            Next::Deadline => Err(format!(
                "no load line within the warm-up, the window and {AFTER_WINDOW:?}"
            )),
        }
    }

    /// ghz's warm-up, then its measured run, against `handle`.
    async fn play_ghz(
        &self,
        binary: &std::path::Path,
        server: &Implementation,
        handle: &mut Box<dyn ServerHandle>,
    ) -> Entry {
        let entry = Entry::empty(Load::Unary, "ghz", &ghz_library(), server);
        if let Some(how) = handle.exited() {
            return entry.failed(format!("server {} exited earlier: {how}", server.name));
        }
        let target = handle.target();
        let o = self.opts;
        let security = match o.settings.transport {
            Transport::Plain => ghz::Security::Plaintext,
            transport => ghz::Security::Tls {
                ca: target.ca.clone(),
                name: target.tls_name.clone(),
                client_cert: (transport == Transport::Mtls).then(|| ghz::client_cert(&o.root)),
            },
        };
        let mut figures = None;
        for (what, window) in [("warm-up", o.warmup), ("run", o.duration)] {
            if window.is_zero() {
                continue;
            }
            let argv = ghz::argv(
                binary,
                &o.root,
                &ghz::Run {
                    port: target.port,
                    security: security.clone(),
                    concurrency: o.concurrency,
                    connections: o.connections,
                    payload_bytes: o.payload_bytes,
                    window,
                },
            );
            let name = format!("ghz→{} ({what})", server.name);
            // ghz prints nothing until it is done, and it reads the proto
            // and connects before its clock starts, so its window is taken
            // as the whole process: the server idles while ghz starts, and
            // calls still in flight at its end are few.
            let opens = Instant::now();
            let closes = opens + window + AFTER_WINDOW;
            let run = cpu_over_window(&**handle, opens, closes, async {
                tokio::select! {
                    r = self.run_ghz(&name, &argv, window) => r,
                    _ = self.cancel.cancelled() => Err("interrupted".to_string()),
                }
            });
            match run.await {
                (Ok(f), spent) => figures = Some((f, spent)),
                (Err(e), _) => return entry.failed(format!("{name}: {e}")),
            }
        }
        let Some((f, server_cpu)) = figures else {
            return entry.failed("ghz did not run");
        };
        let mut entry = Entry {
            count: f.count,
            errors: f.errors,
            qps: Some(f.qps),
            p50_us: f.p50_us,
            p90_us: f.p90_us,
            p99_us: f.p99_us,
            max_us: f.max_us,
            first_error: f.first_error,
            ..entry
        }
        .with_server_cpu(server_cpu);
        if let Some(how) = handle.exited() {
            entry.problem = Some(format!("server {} exited during ghz: {how}", server.name));
        }
        entry
    }

    /// One ghz process: its JSON report, parsed.
    async fn run_ghz(
        &self,
        name: &str,
        argv: &[String],
        window: Duration,
    ) -> Result<ghz::Figures, String> {
        let mut child = Child::spawn(Spec {
            name: name.to_string(),
            argv,
            dir: &self.opts.root,
            env: &[],
            env_remove: &[],
            echo_logs: self.opts.settings.verbose,
            cpus: self.client_cpus,
        })
        .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + window + AFTER_WINDOW;
        let mut json = None;
        loop {
            match child.next_line(deadline).await {
                Next::Line(line) => json = json.or(Some(line)),
                Next::Eof => break,
                Next::Deadline => {
                    child.stop(self.opts.settings.stop_grace).await;
                    return Err(format!("did not finish within {:?}", window + AFTER_WINDOW));
                }
            }
        }
        let status = child.wait_until(deadline).await;
        if status.is_none() {
            child.stop(self.opts.settings.stop_grace).await;
        }
        let tail = child.logs().last(10).join("\n");
        let Some(json) = json else {
            return Err(format!("no JSON report: {}\n{tail}", describe(status)));
        };
        // ghz exits 0 even when calls failed; its report says how they ended.
        if !status.is_some_and(|s| s.success()) {
            return Err(format!("{}\n{tail}", describe(status)));
        }
        ghz::parse(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> LoadArgs {
        LoadArgs {
            load: "unary".into(),
            concurrency: 4,
            connections: 2,
            warmup_ms: 100,
            duration_ms: 300,
            payload_bytes: 100,
        }
    }

    const LINE: &str = r#"{"event":"load","load":"unary","concurrency":4,"connections":2,"warmup_ms":100,
        "duration_ms":300,"payload_bytes":100,"count":3000,"errors":0,"elapsed_ms":300.0,"qps":10000.0,
        "latency_us":{"p50":300.0,"p90":500.0,"p99":900.0,"max":1500.0},"first_error":""}"#;

    #[test]
    fn a_consistent_load_line_is_read() {
        let line = read_load_line(&LINE.replace('\n', ""), &asked()).unwrap();
        assert_eq!((line.count, line.errors, line.qps), (3000, 0, 10000.0));
        assert_eq!(line.latency_us.unwrap().p99, 900.0);
    }

    #[test]
    fn a_line_that_contradicts_itself_or_the_run_is_refused() {
        let line = LINE.replace('\n', "");
        for (from, to, words) in [
            (
                r#""concurrency":4"#,
                r#""concurrency":5"#,
                "concurrency 5, asked for 4",
            ),
            (
                r#""load":"unary""#,
                r#""load":"ping_pong""#,
                "load ping_pong, asked for unary",
            ),
            (r#""qps":10000.0"#, r#""qps":20000.0"#, "qps 20000"),
            (r#""p90":500.0"#, r#""p90":1000.0"#, "out of order"),
            (r#""count":3000"#, r#""count":0"#, "latency_us with count 0"),
            (r#""errors":0"#, r#""errors":2"#, "no first_error"),
            (
                r#""event":"load""#,
                r#""event":"done""#,
                "not what CONTRACT.md says",
            ),
        ] {
            let bad = line.replace(from, to);
            let error = read_load_line(&bad, &asked()).unwrap_err();
            assert!(error.contains(words), "{words}: {error}");
        }
        let error = read_load_line(r#"{"event":"load"}"#, &asked()).unwrap_err();
        assert!(error.contains("not what CONTRACT.md says"), "{error}");
    }

    #[test]
    fn cpus_split_between_servers_and_clients() {
        assert_eq!(split_cpus(&[0, 1, 2, 3], 1), (vec![0], vec![1, 2, 3]));
        assert_eq!(split_cpus(&[2, 5], 1), (vec![2], vec![5]));
        assert_eq!(split_cpus(&[0, 1], 2), (vec![0, 1], vec![]));
        assert_eq!(split_cpus(&[0], 3), (vec![0], vec![]));
        assert_eq!(split_cpus(&[0, 1], 0), (vec![], vec![]));
    }

    fn a_server() -> Implementation {
        Implementation::parse(
            "name = \"s\"\nlibrary = \"l\"\nversion = \"1\"\n[server]\ncommand = [\"x\", \"{port}\"]\n",
            std::path::Path::new("s.toml"),
        )
        .unwrap()
    }

    /// A server whose CPU time grows by a second at every look.
    struct Counting(std::sync::Mutex<u64>, bool);

    impl ServerHandle for Counting {
        fn target(&self) -> crate::backend::Target {
            unreachable!("not asked")
        }
        fn exited(&mut self) -> Option<String> {
            None
        }
        fn logs(&self, _: usize) -> Vec<String> {
            Vec::new()
        }
        fn stop(&mut self) -> crate::backend::BoxFuture<'_, ()> {
            Box::pin(async {})
        }
        fn cpu_time(&self) -> Option<Duration> {
            let mut looks = self.0.lock().unwrap();
            *looks += 1;
            self.1.then(|| Duration::from_secs(*looks))
        }
    }

    #[tokio::test]
    async fn server_cpu_is_the_difference_of_a_look_at_each_end_of_the_window() {
        let ms = Duration::from_millis;
        // A window of 20..60 ms from now, around work that ends at `ends`;
        // the spent time and the number of looks.
        async fn play(sees: bool, ends: Option<Duration>) -> (Option<Duration>, u64) {
            let server = Counting(Default::default(), sees);
            let now = Instant::now();
            let work = async {
                if let Some(after) = ends {
                    tokio::time::sleep_until(now + after).await;
                }
            };
            let (_, spent) = cpu_over_window(
                &server,
                now + Duration::from_millis(20),
                now + Duration::from_millis(60),
                work,
            )
            .await;
            let looks = *server.0.lock().unwrap();
            (spent, looks)
        }
        assert_eq!(
            play(true, Some(ms(300))).await,
            (Some(Duration::from_secs(1)), 2),
            "one look at each end"
        );
        assert_eq!(
            play(true, Some(ms(40))).await,
            (Some(Duration::from_secs(1)), 2),
            "work that ends inside the window closes it"
        );
        assert_eq!(
            play(true, None).await,
            (None, 0),
            "work that ends before the window opens has none"
        );
        assert_eq!(
            play(false, Some(ms(100))).await.0,
            None,
            "a backend that cannot see CPU time measures nothing"
        );
    }

    #[test]
    fn server_cpu_is_spread_over_the_successful_calls() {
        let server = a_server();
        let entry = Entry {
            count: 3000,
            ..Entry::empty(Load::Unary, "rust", "tonic", &server)
        };
        let measured = entry
            .clone()
            .with_server_cpu(Some(Duration::from_millis(450)));
        assert_eq!(measured.server_cpu_ms, Some(450.0));
        assert_eq!(measured.server_cpu_us_per_call, Some(150.0));
        let unmeasured = entry.clone().with_server_cpu(None);
        assert_eq!(unmeasured.server_cpu_ms, None);
        assert_eq!(unmeasured.server_cpu_us_per_call, None);
        let no_calls =
            Entry { count: 0, ..entry }.with_server_cpu(Some(Duration::from_millis(450)));
        assert_eq!(no_calls.server_cpu_ms, Some(450.0));
        assert_eq!(no_calls.server_cpu_us_per_call, None);
    }

    #[test]
    fn an_entry_is_ok_with_throughput_and_no_errors() {
        let server = a_server();
        let entry = Entry::empty(Load::Unary, "c", "lib 1", &server);
        assert_eq!(
            entry.why_not_ok().unwrap(),
            "no call succeeded in the window"
        );
        let ran = Entry {
            count: 10,
            qps: Some(5.0),
            ..entry.clone()
        };
        assert!(ran.ok());
        let erred = Entry {
            errors: 1,
            first_error: "Unavailable: gone".into(),
            ..ran.clone()
        };
        assert!(!erred.ok());
        assert!(erred.why_not_ok().unwrap().contains("Unavailable: gone"));
        assert!(!ran.failed("crashed").ok());
    }
}
