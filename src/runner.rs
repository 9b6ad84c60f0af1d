//! Plays the planned cells on a backend and reports them as events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{
    Backend, BackendError, ClientHandle, Exit, Next, ServerHandle, Transport, tail_text,
};
use crate::baselines::Baselines;
use crate::cases::CaseGroup;
use crate::judge::{judge, judge_exit};
use crate::manifest::{Implementation, Results};
use crate::model::{CellId, CellResult, Event, ImplInfo, Outcome, Reporter, RunInfo};
use crate::protocol::{self, Line, Reported};
use crate::select::{KnownFailures, Plan, PlannedCell};

/// The metrics of a `bad_input` cell: the server's resident memory (KiB)
/// when its case began and when its result came.
pub const SERVER_MEMORY_BEFORE: &str = "server_rss_before_kib";
pub const SERVER_MEMORY_AFTER: &str = "server_rss_after_kib";

/// How many log lines of each process involved are attached to a failure.
const FAILURE_LOG_LINES: usize = 15;

/// Options of a run that are not the plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pairings played at the same time.
    pub jobs: usize,
    /// Time one case may take: from the client's ready line or its previous
    /// result line to the case's result line.
    pub case_timeout: Duration,
    /// Time a soak case may take (its overall timeout and then some).
    pub soak_case_timeout: Duration,
    /// Time a client process may take from its start to its ready line.
    pub client_startup: Duration,
    /// One client process per case instead of one per pairing.
    pub process_per_case: bool,
    /// Skip the build step (everything is already built).
    pub skip_build: bool,
    /// `i/n` for reports, when sharded.
    pub shard: Option<String>,
    /// The transport of the run (see [`Transport::for_case`]).
    pub transport: Transport,
    /// Each bad_input case's answer where the spec is silent, by server.
    pub baselines: Baselines,
    /// What the plan left out and why, for the reports.
    pub notes: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: 8,
            case_timeout: Duration::from_secs(20),
            soak_case_timeout: Duration::from_secs(25),
            client_startup: Duration::from_secs(15),
            process_per_case: false,
            skip_build: false,
            shard: None,
            transport: Transport::Plain,
            baselines: Baselines::default(),
            notes: Vec::new(),
        }
    }
}

/// What a run gives back.
#[derive(Debug, Clone)]
pub struct Summary {
    pub results: Vec<CellResult>,
    pub duration: Duration,
    pub interrupted: bool,
    /// Checks of the run as a whole that were not made, and why.
    pub notes: Vec<String>,
}

impl Summary {
    /// True when every cell passed, was unsupported, or is a known failure
    /// that still fails, and the run was not interrupted.
    pub fn ok(&self) -> bool {
        crate::model::run_ok(&self.results, self.interrupted)
    }
}

/// Hands events to every reporter; a reporter error is kept, not fatal.
pub struct Sink {
    reporters: Mutex<Vec<Box<dyn Reporter>>>,
    errors: Mutex<Vec<String>>,
    known: KnownFailures,
    results: Mutex<Vec<CellResult>>,
}

impl Sink {
    /// A sink feeding `reporters`, marking cells listed in `known`.
    pub fn new(reporters: Vec<Box<dyn Reporter>>, known: KnownFailures) -> Sink {
        Sink {
            reporters: Mutex::new(reporters),
            errors: Mutex::new(Vec::new()),
            known,
            results: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn emit(&self, event: &Event) {
        let mut reporters = self.reporters.lock().unwrap_or_else(|p| p.into_inner());
        for r in reporters.iter_mut() {
            if let Err(e) = r.event(event) {
                self.errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{e:#}"));
            }
        }
    }

    pub(crate) fn finish_cell(&self, mut result: CellResult) {
        result.known_failure = self.known.get(&result.id).cloned();
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(result.clone());
        self.emit(&Event::CellFinished(result));
    }

    /// Ends the run: the results in plan order, reported as `RunFinished`.
    pub(crate) fn finish_run(
        &self,
        plan: &Plan,
        started: Instant,
        interrupted: bool,
        notes: Vec<String>,
    ) -> Summary {
        let mut results = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let order: BTreeMap<&CellId, usize> = plan
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.id, i))
            .collect();
        results.sort_by_key(|r| order.get(&r.id).copied().unwrap_or(usize::MAX));
        let summary = Summary {
            results,
            duration: started.elapsed(),
            interrupted,
            notes,
        };
        self.emit(&Event::RunFinished {
            results: summary.results.clone(),
            duration: summary.duration,
            interrupted: summary.interrupted,
            notes: summary.notes.clone(),
        });
        summary
    }

    /// Errors reporters returned.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The metadata of a run of `plan`.
pub(crate) fn run_info(
    backend: &str,
    impls: &[Implementation],
    plan: &Plan,
    opts: &Options,
) -> RunInfo {
    RunInfo {
        backend: backend.to_string(),
        tls: opts.transport != Transport::Plain,
        transport: opts.transport.name().to_string(),
        shard: opts.shard.clone(),
        implementations: impls
            .iter()
            .filter(|i| plan.clients.contains(&i.name) || plan.servers.contains(&i.name))
            .map(|i| ImplInfo {
                name: i.name.clone(),
                library: i.library.clone(),
                version: i.version.clone(),
                server: plan.servers.contains(&i.name),
                client: plan.clients.contains(&i.name),
            })
            .collect(),
        clients: plan.clients.clone(),
        servers: plan.servers.clone(),
        cases: plan.cases.clone(),
        cells: plan.cells.len(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// How long a client may take, after its last result line, to print its
/// done line and exit. Both come at once from a working client.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Plays `plan` on `backend`. Every cell of the plan gets exactly one result,
/// also when builds fail, servers die, clients hang or the run is cancelled.
pub async fn run(
    backend: Arc<dyn Backend>,
    impls: &[Implementation],
    plan: &Plan,
    opts: &Options,
    sink: Arc<Sink>,
    cancel: CancellationToken,
) -> Summary {
    let started = Instant::now();
    sink.emit(&Event::RunStarted(run_info(
        backend.name(),
        impls,
        plan,
        opts,
    )));
    let by_name: BTreeMap<&str, &Implementation> =
        impls.iter().map(|i| (i.name.as_str(), i)).collect();
    let pairings = pairings(plan, opts.transport);
    let mut broken = if opts.skip_build {
        BTreeMap::new()
    } else {
        build(&*backend, &by_name, &pairings, &sink, &cancel).await
    };
    let servers = start_servers(
        &backend,
        &by_name,
        &pairings,
        &mut broken,
        opts.transport,
        &sink,
        &cancel,
    )
    .await;
    play(
        &backend, &by_name, pairings, &servers, &broken, opts, &sink, &cancel,
    )
    .await;
    for server in servers.values() {
        server.lock().await.stop().await;
    }
    backend.finish().await;
    sink.finish_run(plan, started, cancel.is_cancelled(), opts.notes.clone())
}

/// A client, a server and the transport between them.
/// A client, a server, the transport between them, and the case group
/// when its cases run in a client process of their own.
type PairingKey = (String, String, Transport, Option<CaseGroup>);

/// The groups whose cases get a client process of their own: each holds
/// cases that wait (deadlines, pauses, holds), so they run beside the rest
/// rather than after it.
fn own_process(group: CaseGroup) -> Option<CaseGroup> {
    matches!(
        group,
        CaseGroup::Http2Negative | CaseGroup::Wire | CaseGroup::BadInput
    )
    .then_some(group)
}

/// The planned cells of each client→server pairing over each transport, in
/// plan order.
fn pairings(plan: &Plan, run: Transport) -> BTreeMap<PairingKey, Vec<PlannedCell>> {
    let mut pairings: BTreeMap<PairingKey, Vec<PlannedCell>> = BTreeMap::new();
    for cell in &plan.cells {
        pairings
            .entry((
                cell.id.client.clone(),
                cell.id.server.clone(),
                Transport::for_case(cell.id.case, run),
                own_process(cell.id.case.group()),
            ))
            .or_default()
            .push(cell.clone());
    }
    pairings
}

/// Builds every implementation that plays a role, once. Returns why each
/// broken one cannot play.
async fn build(
    backend: &dyn Backend,
    by_name: &BTreeMap<&str, &Implementation>,
    pairings: &BTreeMap<PairingKey, Vec<PlannedCell>>,
    sink: &Sink,
    cancel: &CancellationToken,
) -> BTreeMap<String, String> {
    let needed: BTreeSet<&str> = pairings
        .keys()
        .flat_map(|(c, s, _, _)| [c.as_str(), s.as_str()])
        .collect();
    let mut broken = BTreeMap::new();
    for name in needed {
        if cancel.is_cancelled() {
            break;
        }
        sink.emit(&Event::Phase(format!("building {name}")));
        let result = tokio::select! {
            r = backend.prepare(by_name[name]) => r,
            () = cancel.cancelled() => Err(BackendError::Interrupted),
        };
        match result {
            Ok(()) => {}
            Err(BackendError::Interrupted) => {}
            Err(e) => {
                broken.insert(name.to_string(), format!("build of {name} failed: {e}"));
            }
        }
    }
    broken
}

/// A running server: an implementation over a transport.
type ServerKey = (String, Transport);
type Servers = BTreeMap<ServerKey, Arc<tokio::sync::Mutex<Box<dyn ServerHandle>>>>;

/// The name of a server instance in messages: `go`, `go (mtls)`.
fn instance(name: &str, transport: Transport, run: Transport) -> String {
    if transport == run {
        name.to_string()
    } else {
        format!("{name} ({})", transport.name())
    }
}

/// Starts each server once per transport its cells need, all at the same
/// time. Servers that do not start make their cells setup errors (in
/// `broken`, by instance).
async fn start_servers(
    backend: &Arc<dyn Backend>,
    by_name: &BTreeMap<&str, &Implementation>,
    pairings: &BTreeMap<PairingKey, Vec<PlannedCell>>,
    broken: &mut BTreeMap<String, String>,
    run: Transport,
    sink: &Sink,
    cancel: &CancellationToken,
) -> Servers {
    let keys: BTreeSet<ServerKey> = pairings
        .keys()
        .map(|(_, s, t, _)| (s.clone(), *t))
        .collect();
    let mut servers = Servers::new();
    if cancel.is_cancelled() {
        return servers;
    }
    sink.emit(&Event::Phase(format!(
        "starting servers: {}",
        keys.iter()
            .map(|(n, t)| instance(n, *t, run))
            .collect::<Vec<_>>()
            .join(", ")
    )));
    let mut starts = tokio::task::JoinSet::new();
    for (name, transport) in keys.into_iter().filter(|(n, _)| !broken.contains_key(n)) {
        let backend = backend.clone();
        let imp = by_name[name.as_str()].clone();
        starts.spawn(async move {
            let result = backend.start_server(&imp, transport).await;
            ((imp.name, transport), result)
        });
    }
    loop {
        let joined = tokio::select! {
            j = starts.join_next() => j,
            () = cancel.cancelled() => break,
        };
        let Some(joined) = joined else { break };
        match joined {
            Ok((key, Ok(handle))) => {
                servers.insert(key, Arc::new(tokio::sync::Mutex::new(handle)));
            }
            Ok(((name, transport), Err(e))) => {
                let shown = instance(&name, transport, run);
                broken.insert(shown.clone(), format!("server {shown} did not start: {e}"));
            }
            // A bug in the runner, not in an implementation: keep going, say so.
            Err(e) => eprintln!("interop: internal error starting a server: {e}"),
        }
    }
    servers
}

/// Plays every pairing, `opts.jobs` at a time.
#[allow(clippy::too_many_arguments)]
async fn play(
    backend: &Arc<dyn Backend>,
    by_name: &BTreeMap<&str, &Implementation>,
    pairings: BTreeMap<PairingKey, Vec<PlannedCell>>,
    servers: &Servers,
    broken: &BTreeMap<String, String>,
    opts: &Options,
    sink: &Arc<Sink>,
    cancel: &CancellationToken,
) {
    let semaphore = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    // The longest pairings first, so that none of them is left for last.
    let mut pairings: Vec<_> = pairings.into_iter().collect();
    pairings.sort_by_key(|(_, cells)| {
        std::cmp::Reverse(cells.iter().map(|c| expected_ms(c.id.case)).sum::<u64>())
    });
    for ((client, server, transport, _), cells) in pairings {
        let key = (server.clone(), transport);
        let server_instance = instance(&server, transport, opts.transport);
        let setup_error = [&client, &server, &server_instance]
            .iter()
            .find_map(|n| broken.get(n.as_str()).cloned())
            .or_else(|| {
                (!servers.contains_key(&key))
                    .then(|| "interrupted before the server started".to_string())
            });
        if let Some(message) = setup_error {
            for cell in cells {
                sink.finish_cell(CellResult::not_run(
                    cell.id,
                    Outcome::SetupError,
                    message.clone(),
                ));
            }
            continue;
        }
        let pairing = Pairing {
            backend: backend.clone(),
            imp: by_name[client.as_str()].clone(),
            server_name: server_instance,
            server_impl: server.clone(),
            server: servers[&key].clone(),
            transport,
            opts: opts.clone(),
            sink: sink.clone(),
            cancel: cancel.clone(),
        };
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let Ok(_permit) = semaphore.acquire_owned().await else {
                return;
            };
            pairing.play(cells).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            // A bug in the runner, not in an implementation: keep going, say so.
            eprintln!("interop: internal error in a pairing task: {e}");
        }
    }
}

/// A rough guess of how long a case takes, for the order pairings start in:
/// the cases that wait (a pause, a deadline, a hold) or move much data.
fn expected_ms(case: crate::cases::Case) -> u64 {
    use crate::cases::Case;
    match case {
        Case::UnfinishedPrefaces200 => 2_500,
        Case::Goaway
        | Case::SilentServer
        | Case::HeldStreams64
        | Case::Streams500
        | Case::TimeoutOnSleepingServer => 1_000,
        Case::RpcSoak | Case::ChannelSoak => 300,
        _ => match case.group() {
            CaseGroup::BadInput | CaseGroup::Wire | CaseGroup::Http2Negative => 100,
            _ => 20,
        },
    }
}

/// One client implementation against one running server.
struct Pairing {
    backend: Arc<dyn Backend>,
    imp: Implementation,
    /// The server instance, as messages name it.
    server_name: String,
    /// The server's implementation.
    server_impl: String,
    transport: Transport,
    server: Arc<tokio::sync::Mutex<Box<dyn ServerHandle>>>,
    opts: Options,
    sink: Arc<Sink>,
    cancel: CancellationToken,
}

/// What one client process said so far, held until it ends so that what it
/// does last (its done line, its exit status) can still fail its results.
#[derive(Default)]
struct Transcript {
    /// Judged results, in the order they came.
    results: Vec<CellResult>,
    /// How many result lines it printed, and whether one said failed.
    result_lines: usize,
    reported_failed: bool,
    /// The count of its done line, once printed.
    done: Option<usize>,
    /// What the runner noticed on the way (lines it could not read, ...).
    notes: Vec<String>,
}

impl Pairing {
    async fn play(&self, cells: Vec<PlannedCell>) {
        if self
            .imp
            .client
            .as_ref()
            .is_some_and(|c| c.results == Results::ExitStatus)
        {
            for cell in cells {
                self.play_by_exit_status(cell).await;
            }
        } else if self.opts.process_per_case {
            for cell in cells {
                self.play_batch(vec![cell]).await;
            }
        } else {
            self.play_batch(cells).await;
        }
    }

    /// Plays `remaining` in one client process; when the process hangs or
    /// dies, the case it was on gets the outcome and the rest go to a new one.
    async fn play_batch(&self, mut remaining: Vec<PlannedCell>) {
        while !remaining.is_empty() {
            let Some(target) = self.live_target(&mut remaining).await else {
                return;
            };
            self.sink.emit(&Event::CellsStarted(
                remaining.iter().map(|c| c.id.clone()).collect(),
            ));
            let cases: Vec<_> = remaining.iter().map(|c| c.id.case).collect();
            let client = tokio::select! {
                c = self.backend.start_client(&self.imp, &self.server_impl, &target, &cases, self.transport) => c,
                () = self.cancel.cancelled() => Err(BackendError::Interrupted),
            };
            match client {
                Ok(mut client) => self.drive(&mut *client, &mut remaining).await,
                Err(BackendError::Interrupted) => self.give_up(&mut remaining, "interrupted"),
                Err(e) => {
                    let why = format!("client {} did not start: {e}", self.imp.name);
                    self.give_up(&mut remaining, &why);
                }
            }
        }
    }

    /// Plays one case in a process of its own, for a client that reports a
    /// case by its exit status only. It prints no ready line: start-up and
    /// the case share one deadline.
    async fn play_by_exit_status(&self, cell: PlannedCell) {
        let mut one = vec![cell];
        let Some(target) = self.live_target(&mut one).await else {
            return;
        };
        self.sink
            .emit(&Event::CellsStarted(vec![one[0].id.clone()]));
        let cases = [one[0].id.case];
        let client = tokio::select! {
            c = self.backend.start_client(&self.imp, &self.server_impl, &target, &cases, self.transport) => c,
            () = self.cancel.cancelled() => Err(BackendError::Interrupted),
        };
        let mut client = match client {
            Ok(c) => c,
            Err(BackendError::Interrupted) => return self.give_up(&mut one, "interrupted"),
            Err(e) => {
                let why = format!("client {} did not start: {e}", self.imp.name);
                return self.give_up(&mut one, &why);
            }
        };
        let started = Instant::now();
        let deadline = started + self.opts.client_startup + self.case_timeout(&one);
        let mut notes = Vec::new();
        let ended = loop {
            let next = tokio::select! {
                n = client.next_line(deadline) => n,
                () = self.cancel.cancelled() => {
                    client.stop().await;
                    return self.give_up(&mut one, "interrupted");
                }
            };
            match next {
                Next::Line(text) => notes.push(format!("[client {}] {text}", self.imp.name)),
                Next::Eof => break true,
                Next::Deadline => break false,
            }
        };
        let cell = one.remove(0);
        if !ended {
            let exit = client.stop().await;
            let mut logs = self.logs(client.logs(FAILURE_LOG_LINES), &notes).await;
            logs.push(format!(
                "[runner] client stopped after the deadline: {}",
                describe_exit(exit)
            ));
            return self.sink.finish_cell(CellResult {
                duration: started.elapsed(),
                logs,
                reported_by: Some("exit_status"),
                ..CellResult::not_run(
                    cell.id,
                    Outcome::TimedOut,
                    format!(
                        "no exit within {:.1} s (start-up included)",
                        (deadline - started).as_secs_f64()
                    ),
                )
            });
        }
        let exit = match client.wait(Instant::now() + EXIT_GRACE).await {
            Some(exit) => Some(exit),
            None => {
                notes
                    .push("[runner] the client closed its output but did not exit; stopped".into());
                client.stop().await;
                None
            }
        };
        let output = client.logs(FAILURE_LOG_LINES);
        let mut result = judge_exit(&cell, exit, &output, started.elapsed());
        if !result.outcome.is_pass() {
            result.logs = self.logs(output, &notes).await;
        }
        self.sink.finish_cell(result);
    }

    /// The server's address, or `None` after failing `cells` when it is gone.
    async fn live_target(&self, cells: &mut Vec<PlannedCell>) -> Option<crate::backend::Target> {
        if self.cancel.is_cancelled() {
            self.give_up(cells, "interrupted");
            return None;
        }
        let (target, server_gone) = {
            let mut server = self.server.lock().await;
            (server.target(), server.exited())
        };
        if let Some(status) = server_gone {
            let logs = self.server_logs().await;
            let message = format!("server {} is not running ({status})", self.server_name);
            for cell in cells.drain(..) {
                self.sink.finish_cell(CellResult {
                    logs: logs.clone(),
                    ..CellResult::not_run(cell.id, Outcome::Failed, message.clone())
                });
            }
            return None;
        }
        Some(target)
    }

    /// Reads one client process to its end: its results, then its done line
    /// and exit status, which are checked against the results. Removes the
    /// cells that got an outcome; the rest go to a new process.
    async fn drive(&self, client: &mut dyn ClientHandle, remaining: &mut Vec<PlannedCell>) {
        let spawned = Instant::now();
        // Until the ready line, start-up and the first case share one deadline.
        let mut deadline = spawned + self.opts.client_startup + self.case_timeout(remaining);
        let mut last = spawned;
        let mut t = Transcript::default();
        // The server's memory when the current case began (bad_input cells).
        let mut memory_before = self.server_memory().await;
        while !remaining.is_empty() {
            let next = tokio::select! {
                n = client.next_line(deadline) => n,
                () = self.cancel.cancelled() => {
                    client.stop().await;
                    self.emit(t.results);
                    self.give_up(remaining, "interrupted");
                    return;
                }
            };
            let now = Instant::now();
            match next {
                Next::Line(text) => match protocol::parse(&text) {
                    Ok(Line::Ready) => {
                        last = now;
                        deadline = now + self.case_timeout(remaining);
                        memory_before = self.server_memory().await;
                    }
                    Ok(Line::Result(r)) => {
                        t.result_lines += 1;
                        t.reported_failed |= r.outcome == Reported::Failed;
                        let memory_after = self.server_memory().await;
                        match remaining.iter().position(|c| c.id.case.name() == r.case) {
                            Some(pos) => {
                                let cell = remaining.remove(pos);
                                let mut result = judge(&cell, &r, &self.imp.source, now - last);
                                self.opts.baselines.apply(&self.server_impl, &mut result);
                                if cell.id.case.group() == CaseGroup::BadInput {
                                    for (key, kib) in [
                                        (SERVER_MEMORY_BEFORE, memory_before),
                                        (SERVER_MEMORY_AFTER, memory_after),
                                    ] {
                                        if let Some(kib) = kib {
                                            result.metrics.insert(key.to_string(), kib as f64);
                                        }
                                    }
                                }
                                t.results.push(result);
                            }
                            None => t.notes.push(format!(
                                "[runner] a result for case {:?}, which this process was not asked to play or already reported",
                                r.case
                            )),
                        }
                        last = now;
                        deadline = now + self.case_timeout(remaining);
                        memory_before = memory_after;
                    }
                    Ok(Line::Done { cases }) => {
                        t.done = Some(cases);
                        let message = format!(
                            "client {} printed its done line after {} results without reporting this case",
                            self.imp.name, t.result_lines
                        );
                        let logs = self.logs(client.logs(FAILURE_LOG_LINES), &t.notes).await;
                        for cell in remaining.drain(..) {
                            t.results.push(CellResult {
                                logs: logs.clone(),
                                ..CellResult::not_run(cell.id, Outcome::Failed, message.clone())
                            });
                        }
                    }
                    Ok(Line::Listening { .. }) => {
                        t.notes
                            .push(format!("[runner] a client printed a server's line: {text}"));
                    }
                    Ok(Line::Load(_)) => {
                        t.notes.push(format!(
                            "[runner] a client printed a load line while playing cases: {text}"
                        ));
                    }
                    Err(e) => t
                        .notes
                        .push(format!("[runner] unreadable protocol line ({e}): {text}")),
                },
                Next::Deadline => {
                    let exit = client.stop().await;
                    let cell = remaining.remove(0);
                    let mut logs = self.logs(client.logs(FAILURE_LOG_LINES), &t.notes).await;
                    logs.push(format!(
                        "[runner] client stopped after the deadline: {}",
                        describe_exit(exit)
                    ));
                    let waited = deadline - last;
                    let before = if t.result_lines == 0 && last == spawned {
                        " (start-up included: no ready line came)"
                    } else {
                        ""
                    };
                    t.results.push(CellResult {
                        duration: last.elapsed(),
                        logs,
                        ..CellResult::not_run(
                            cell.id,
                            Outcome::TimedOut,
                            format!("no result within {:.1} s{before}", waited.as_secs_f64()),
                        )
                    });
                    self.emit(t.results);
                    return;
                }
                Next::Eof => {
                    // Output closed: the client exited (or crashed) early.
                    let exit = match client.wait(Instant::now() + EXIT_GRACE).await {
                        Some(exit) => exit.to_string(),
                        None => "closed its output but kept running".to_string(),
                    };
                    client.stop().await;
                    let cell = remaining.remove(0);
                    let logs = self.logs(client.logs(FAILURE_LOG_LINES), &t.notes).await;
                    t.results.push(CellResult {
                        duration: last.elapsed(),
                        logs,
                        ..CellResult::not_run(
                            cell.id,
                            Outcome::Failed,
                            format!(
                                "client {} ended ({exit}) before reporting this case",
                                self.imp.name
                            ),
                        )
                    });
                    self.emit(t.results);
                    return;
                }
            }
        }
        self.finish_process(client, t).await;
    }

    /// Every case reported: reads the done line, waits for the exit, and
    /// fails every result of the process if either does not match them.
    async fn finish_process(&self, client: &mut dyn ClientHandle, mut t: Transcript) {
        let until = Instant::now() + EXIT_GRACE;
        while t.done.is_none() {
            match client.next_line(until).await {
                Next::Line(text) => match protocol::parse(&text) {
                    Ok(Line::Done { cases }) => t.done = Some(cases),
                    Ok(_) => t
                        .notes
                        .push(format!("[runner] a line after the last result: {text}")),
                    Err(e) => t
                        .notes
                        .push(format!("[runner] unreadable protocol line ({e}): {text}")),
                },
                Next::Eof | Next::Deadline => break,
            }
        }
        let exit = match client.wait(Instant::now() + EXIT_GRACE).await {
            Some(exit) => Some(exit),
            None => {
                t.notes.push(format!(
                    "[runner] the client did not exit within {EXIT_GRACE:?} after its last line; stopped"
                ));
                client.stop().await;
                None
            }
        };
        let problems = cross_check(t.result_lines, t.reported_failed, t.done, Some(exit));
        let needs_logs = !problems.is_empty() || t.results.iter().any(|r| !r.outcome.is_pass());
        let logs = if needs_logs {
            self.logs(client.logs(FAILURE_LOG_LINES), &t.notes).await
        } else {
            Vec::new()
        };
        if problems.is_empty() {
            for r in t.results.iter_mut().filter(|r| !r.outcome.is_pass()) {
                r.logs = logs.clone();
            }
        }
        fail_for(&mut t.results, &problems, &logs);
        self.emit(t.results);
    }

    /// The time the next of `remaining` may take: a soak case has its own.
    fn case_timeout(&self, remaining: &[PlannedCell]) -> Duration {
        match remaining.first() {
            Some(c) if c.id.case.group() == CaseGroup::Soak => self.opts.soak_case_timeout,
            _ => self.opts.case_timeout,
        }
    }

    fn emit(&self, results: Vec<CellResult>) {
        for r in results {
            self.sink.finish_cell(r);
        }
    }

    /// The server's resident memory now, where the backend can see it.
    async fn server_memory(&self) -> Option<u64> {
        self.server.lock().await.memory_kib()
    }

    async fn server_logs(&self) -> Vec<String> {
        tail_text(
            &format!("server {}", self.server_name),
            &self.server.lock().await.logs(FAILURE_LOG_LINES),
        )
    }

    async fn logs(&self, client_lines: Vec<String>, notes: &[String]) -> Vec<String> {
        let mut logs = tail_text(&format!("client {}", self.imp.name), &client_lines);
        logs.extend(self.server_logs().await);
        logs.extend(notes.iter().cloned());
        if let Some(status) = self.server.lock().await.exited() {
            logs.push(format!(
                "[runner] server {} exited during the run: {status}",
                self.server_name
            ));
        }
        logs
    }

    fn give_up(&self, remaining: &mut Vec<PlannedCell>, why: &str) {
        for cell in remaining.drain(..) {
            self.sink
                .finish_cell(CellResult::not_run(cell.id, Outcome::SetupError, why));
        }
    }
}

fn describe_exit(exit: Option<Exit>) -> String {
    exit.map_or_else(|| "exit unknown".to_string(), |e| e.to_string())
}

/// What a finished client did last that does not match its result lines:
/// its done count, and its exit status (CONTRACT.md: 0 when no result said
/// failed, 1 when one did). `exit` is `None` when the exit status is not
/// known to the caller at all (not checked), `Some(None)` when it should be
/// but is not.
pub(crate) fn cross_check(
    result_lines: usize,
    reported_failed: bool,
    done: Option<usize>,
    exit: Option<Option<Exit>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match done {
        None => problems.push("the client printed no done line".to_string()),
        Some(n) if n != result_lines => problems.push(format!(
            "the client's done line counts {n} results, but it printed {result_lines}"
        )),
        Some(_) => {}
    }
    let want = i64::from(reported_failed);
    if let Some(exit) = exit
        && exit != Some(Exit::Code(want))
    {
        problems.push(format!(
            "the client ended with {} after its results, want exit status {want}",
            describe_exit(exit)
        ));
    }
    problems
}

/// Fails every result of one client process for `problems` (what the
/// process did that its results do not match), keeping what each result
/// said in its message.
pub(crate) fn fail_for(results: &mut [CellResult], problems: &[String], logs: &[String]) {
    if problems.is_empty() {
        return;
    }
    let problem = problems.join("; ");
    for r in results {
        let said = if r.message.is_empty() {
            r.outcome.words().to_string()
        } else {
            format!("{}: {}", r.outcome.words(), r.message)
        };
        r.message = format!("{problem} (this case was reported {said})");
        r.outcome = Outcome::Failed;
        r.logs = logs.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_checks_of_a_finished_process() {
        assert!(cross_check(2, true, Some(2), Some(Some(Exit::Code(1)))).is_empty());
        assert!(
            cross_check(2, false, Some(2), None).is_empty(),
            "exit not checked"
        );
        assert_eq!(
            cross_check(2, true, Some(2), Some(Some(Exit::Code(0)))),
            ["the client ended with exit status 0 after its results, want exit status 1"]
        );
        assert_eq!(
            cross_check(2, false, Some(3), Some(Some(Exit::Signal(9)))),
            [
                "the client's done line counts 3 results, but it printed 2",
                "the client ended with killed by signal 9 after its results, want exit status 0"
            ]
        );
        assert_eq!(
            cross_check(0, false, None, Some(None)),
            [
                "the client printed no done line",
                "the client ended with exit unknown after its results, want exit status 0"
            ]
        );
    }

    #[test]
    fn a_failed_cross_check_fails_every_result_and_keeps_what_it_said() {
        let id = |case| CellId {
            client: "c".into(),
            server: "s".into(),
            case,
        };
        let mut results = vec![
            CellResult::not_run(id(crate::cases::Case::EmptyUnary), Outcome::Passed, ""),
            CellResult::not_run(
                id(crate::cases::Case::LargeUnary),
                Outcome::Unsupported,
                "server s: x",
            ),
        ];
        fail_for(
            &mut results,
            &["the client printed no done line".into()],
            &["log".into()],
        );
        assert_eq!(results[0].outcome, Outcome::Failed);
        assert_eq!(
            results[0].message,
            "the client printed no done line (this case was reported passed)"
        );
        assert_eq!(
            results[1].message,
            "the client printed no done line (this case was reported unsupported: server s: x)"
        );
        assert_eq!(results[1].logs, ["log"]);
    }
}
