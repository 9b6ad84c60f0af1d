//! Plays the planned cells on a backend and reports them as events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, ClientHandle, Next, ServerHandle, tail_text};
use crate::cases::Case;
use crate::manifest::Implementation;
use crate::model::{CellId, CellResult, Event, ImplInfo, Outcome, Reporter, RunInfo};
use crate::select::{KnownFailures, Plan};

/// How many log lines of each process involved are attached to a failure.
const FAILURE_LOG_LINES: usize = 15;

/// Options of a run that are not the plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pairings played at the same time.
    pub jobs: usize,
    /// Time one case may take, from the previous result of the same client.
    pub case_timeout: Duration,
    /// Extra time for the first case of a client process: its start-up.
    pub client_startup: Duration,
    /// One client process per case instead of one per pairing.
    pub process_per_case: bool,
    /// Skip the build step (everything is already built).
    pub skip_build: bool,
    /// `i/n` for reports, when sharded.
    pub shard: Option<String>,
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: 4,
            case_timeout: Duration::from_secs(20),
            client_startup: Duration::from_secs(15),
            process_per_case: false,
            skip_build: false,
            shard: None,
            tls: false,
        }
    }
}

/// What a run gives back.
#[derive(Debug, Clone)]
pub struct Summary {
    pub results: Vec<CellResult>,
    pub duration: Duration,
    pub interrupted: bool,
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
        result.known_failure = self.known.reason(&result.id).map(String::from);
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(result.clone());
        self.emit(&Event::CellFinished(result));
    }

    /// Ends the run: the results in plan order, reported as `RunFinished`.
    pub(crate) fn finish_run(&self, plan: &Plan, started: Instant, interrupted: bool) -> Summary {
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
        };
        self.emit(&Event::RunFinished {
            results: summary.results.clone(),
            duration: summary.duration,
            interrupted: summary.interrupted,
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

/// A result line of a client: `{"event":"result","case":...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultLine {
    pub(crate) event: String,
    pub(crate) case: String,
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) duration_ms: f64,
    #[serde(default)]
    pub(crate) message: String,
}

/// The outcome and message of a reported result. A client may only report
/// `unsupported` for cases its manifest declares (those are never asked of
/// it), so an undeclared one is a failure.
pub(crate) fn reported_outcome(
    r: &ResultLine,
    client: &str,
    manifest: &std::path::Path,
) -> (Outcome, String) {
    match r.outcome.as_str() {
        "passed" => (Outcome::Passed, String::new()),
        "failed" => (Outcome::Failed, r.message.clone()),
        "unsupported" => (
            Outcome::Failed,
            format!(
                "client {client} reported unsupported, but {} does not declare it: {}",
                manifest.display(),
                r.message
            ),
        ),
        other => (
            Outcome::Failed,
            format!("client {client} reported unknown outcome {other:?}"),
        ),
    }
}

/// The duration a result line reports, or `measured` if it is not usable.
pub(crate) fn reported_duration(r: &ResultLine, measured: Duration) -> Duration {
    if r.duration_ms.is_finite() && r.duration_ms >= 0.0 && r.duration_ms < 1e9 {
        Duration::from_secs_f64(r.duration_ms / 1000.0)
    } else {
        measured
    }
}

pub(crate) fn parse_result(line: &str) -> Option<ResultLine> {
    serde_json::from_str::<ResultLine>(line)
        .ok()
        .filter(|r| r.event == "result")
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
        tls: opts.tls,
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
    let by_name: BTreeMap<&str, &Implementation> =
        impls.iter().map(|i| (i.name.as_str(), i)).collect();
    let info = run_info(backend.name(), impls, plan, opts);
    sink.emit(&Event::RunStarted(info));

    // Cells that a manifest declares unsupported are reported without running.
    let mut to_run: BTreeMap<(String, String), Vec<Case>> = BTreeMap::new();
    for cell in &plan.cells {
        match &cell.unsupported {
            Some(reason) => sink.finish_cell(CellResult::not_run(
                cell.id.clone(),
                Outcome::Unsupported,
                reason.clone(),
            )),
            None => to_run
                .entry((cell.id.client.clone(), cell.id.server.clone()))
                .or_default()
                .push(cell.id.case),
        }
    }

    // Build each implementation that plays a role in a cell to run, once.
    let needed: BTreeSet<&str> = to_run
        .keys()
        .flat_map(|(c, s)| [c.as_str(), s.as_str()])
        .collect();
    let mut broken: BTreeMap<String, String> = BTreeMap::new();
    if !opts.skip_build {
        for name in &needed {
            if cancel.is_cancelled() {
                break;
            }
            sink.emit(&Event::Phase(format!("building {name}")));
            let result = tokio::select! {
                r = backend.prepare(by_name[name]) => r,
                () = cancel.cancelled() => Err("interrupted".to_string()),
            };
            if let Err(e) = result {
                broken.insert(name.to_string(), format!("build of {name} failed: {e}"));
            }
        }
    }

    // Start each server once, all at the same time.
    let server_names: BTreeSet<&str> = to_run.keys().map(|(_, s)| s.as_str()).collect();
    let mut servers: BTreeMap<String, Box<dyn ServerHandle>> = BTreeMap::new();
    if !cancel.is_cancelled() {
        sink.emit(&Event::Phase(format!(
            "starting servers: {}",
            server_names.iter().copied().collect::<Vec<_>>().join(", ")
        )));
        let starts = server_names
            .iter()
            .filter(|n| !broken.contains_key(**n))
            .map(|name| {
                let backend = backend.clone();
                let imp = by_name[name].clone();
                async move {
                    let result = backend.start_server(&imp).await;
                    (imp.name, result)
                }
            });
        let started = tokio::select! {
            all = join_all(starts) => all,
            () = cancel.cancelled() => Vec::new(),
        };
        for (name, result) in started {
            match result {
                Ok(handle) => {
                    servers.insert(name, handle);
                }
                Err(e) => {
                    broken.insert(name.clone(), format!("server {name} did not start: {e}"));
                }
            }
        }
    }

    let servers: BTreeMap<String, Arc<tokio::sync::Mutex<Box<dyn ServerHandle>>>> = servers
        .into_iter()
        .map(|(k, v)| (k, Arc::new(tokio::sync::Mutex::new(v))))
        .collect();
    let semaphore = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for ((client, server), cases) in to_run {
        let setup_error = [&client, &server]
            .iter()
            .find_map(|n| broken.get(n.as_str()).cloned())
            .or_else(|| {
                (!servers.contains_key(&server))
                    .then(|| "interrupted before the server started".to_string())
            });
        if let Some(message) = setup_error {
            for case in cases {
                let id = CellId {
                    client: client.clone(),
                    server: server.clone(),
                    case,
                };
                sink.finish_cell(CellResult::not_run(
                    id,
                    Outcome::SetupError,
                    message.clone(),
                ));
            }
            continue;
        }
        let pairing = Pairing {
            backend: backend.clone(),
            imp: by_name[client.as_str()].clone(),
            client,
            server_name: server.clone(),
            server: servers[&server].clone(),
            opts: opts.clone(),
            sink: sink.clone(),
            cancel: cancel.clone(),
        };
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let Ok(_permit) = semaphore.acquire_owned().await else {
                return;
            };
            pairing.play(cases).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            // A bug in the runner, not in an implementation: keep going, say so.
            eprintln!("interop: internal error in a pairing task: {e}");
        }
    }

    for server in servers.values() {
        server.lock().await.stop().await;
    }
    backend.finish().await;

    sink.finish_run(plan, started, cancel.is_cancelled())
}

async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out
}

/// One client implementation against one running server.
struct Pairing {
    backend: Arc<dyn Backend>,
    imp: Implementation,
    client: String,
    server_name: String,
    server: Arc<tokio::sync::Mutex<Box<dyn ServerHandle>>>,
    opts: Options,
    sink: Arc<Sink>,
    cancel: CancellationToken,
}

impl Pairing {
    fn id(&self, case: Case) -> CellId {
        CellId {
            client: self.client.clone(),
            server: self.server_name.clone(),
            case,
        }
    }

    async fn play(&self, cases: Vec<Case>) {
        if self.opts.process_per_case {
            for case in cases {
                self.play_batch(vec![case]).await;
            }
        } else {
            self.play_batch(cases).await;
        }
    }

    /// Plays `cases` in one client process; when the process hangs or dies,
    /// the case it was on gets the outcome and the rest go to a new process.
    async fn play_batch(&self, mut remaining: Vec<Case>) {
        while !remaining.is_empty() {
            if self.cancel.is_cancelled() {
                self.give_up(&mut remaining, "interrupted");
                return;
            }
            let (target, server_gone) = {
                let mut server = self.server.lock().await;
                (server.target(), server.exited())
            };
            if let Some(status) = server_gone {
                let logs = tail_text(
                    &format!("server {}", self.server_name),
                    &self.server.lock().await.logs(FAILURE_LOG_LINES),
                );
                let message = format!("server {} is not running ({status})", self.server_name);
                for case in remaining.drain(..) {
                    self.sink.finish_cell(CellResult {
                        logs: logs.clone(),
                        ..CellResult::not_run(self.id(case), Outcome::Failed, message.clone())
                    });
                }
                return;
            }
            self.sink.emit(&Event::CellsStarted(
                remaining.iter().map(|c| self.id(*c)).collect(),
            ));
            let started = Instant::now();
            let client = tokio::select! {
                c = self.backend.start_client(&self.imp, &self.server_name, &target, &remaining) => c,
                () = self.cancel.cancelled() => Err("interrupted".to_string()),
            };
            let mut client = match client {
                Ok(c) => c,
                Err(e) => {
                    self.give_up(
                        &mut remaining,
                        &format!("client {} did not start: {e}", self.client),
                    );
                    return;
                }
            };
            self.drive(&mut *client, &mut remaining, started).await;
        }
    }

    /// Reads results until every case reported, the client hangs or dies,
    /// or the run is cancelled. Removes the cases that got an outcome.
    async fn drive(
        &self,
        client: &mut dyn ClientHandle,
        remaining: &mut Vec<Case>,
        started: Instant,
    ) {
        let mut deadline = started + self.opts.client_startup + self.opts.case_timeout;
        let mut last = started;
        while !remaining.is_empty() {
            let next = tokio::select! {
                n = client.next_line(deadline) => n,
                () = self.cancel.cancelled() => {
                    client.stop().await;
                    self.give_up(remaining, "interrupted");
                    return;
                }
            };
            match next {
                Next::Line(line) => {
                    let Some(r) = parse_result(&line) else {
                        continue;
                    };
                    let Some(pos) = remaining.iter().position(|c| c.name() == r.case) else {
                        continue;
                    };
                    let case = remaining.remove(pos);
                    let now = Instant::now();
                    self.finish_reported(case, r, now - last, client).await;
                    last = now;
                    deadline = now + self.opts.case_timeout;
                }
                Next::Deadline => {
                    let status = client.stop().await;
                    let case = remaining.remove(0);
                    let mut logs = self.logs(client.logs(FAILURE_LOG_LINES)).await;
                    logs.push(format!(
                        "[runner] client stopped after the deadline: {status}"
                    ));
                    self.sink.finish_cell(CellResult {
                        id: self.id(case),
                        outcome: Outcome::TimedOut,
                        duration: last.elapsed(),
                        message: format!(
                            "no result within {:.1} s",
                            (deadline - last).as_secs_f64()
                        ),
                        known_failure: None,
                        logs,
                    });
                    return;
                }
                Next::Eof => {
                    // Output closed: the client exited (or crashed) early.
                    let status = client
                        .wait(Instant::now() + Duration::from_secs(5))
                        .await
                        .unwrap_or_else(|| "closed its output but kept running".to_string());
                    client.stop().await;
                    let case = remaining.remove(0);
                    self.sink.finish_cell(CellResult {
                        id: self.id(case),
                        outcome: Outcome::Failed,
                        duration: last.elapsed(),
                        message: format!(
                            "client {} ended ({status}) before reporting this case",
                            self.client
                        ),
                        known_failure: None,
                        logs: self.logs(client.logs(FAILURE_LOG_LINES)).await,
                    });
                    return;
                }
            }
        }
        // Every case reported: the client should now exit by itself.
        if client
            .wait(Instant::now() + Duration::from_secs(5))
            .await
            .is_none()
        {
            client.stop().await;
        }
    }

    async fn finish_reported(
        &self,
        case: Case,
        r: ResultLine,
        measured: Duration,
        client: &mut dyn ClientHandle,
    ) {
        let (outcome, message) = reported_outcome(&r, &self.client, &self.imp.source);
        let duration = reported_duration(&r, measured);
        let mut message = message;
        let logs = if outcome == Outcome::Passed {
            vec![]
        } else {
            if let Some(status) = self.server.lock().await.exited() {
                message.push_str(&format!(
                    " (server {} exited during the run: {status})",
                    self.server_name
                ));
            }
            self.logs(client.logs(FAILURE_LOG_LINES)).await
        };
        self.sink.finish_cell(CellResult {
            id: self.id(case),
            outcome,
            duration,
            message,
            known_failure: None,
            logs,
        });
    }

    async fn logs(&self, client_lines: Vec<String>) -> Vec<String> {
        let mut logs = tail_text(&format!("client {}", self.client), &client_lines);
        logs.extend(tail_text(
            &format!("server {}", self.server_name),
            &self.server.lock().await.logs(FAILURE_LOG_LINES),
        ));
        logs
    }

    fn give_up(&self, remaining: &mut Vec<Case>, why: &str) {
        for case in remaining.drain(..) {
            self.sink
                .finish_cell(CellResult::not_run(self.id(case), Outcome::SetupError, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        let r = parse_result(r#"{"event":"result","case":"ping_pong","outcome":"failed","duration_ms":2.5,"message":"x"}"#)
            .unwrap();
        assert_eq!(
            (
                r.case.as_str(),
                r.outcome.as_str(),
                r.duration_ms,
                r.message.as_str()
            ),
            ("ping_pong", "failed", 2.5, "x")
        );
        assert!(parse_result(r#"{"event":"listening","port":1}"#).is_none());
        assert!(parse_result("{not json").is_none());
    }
}
