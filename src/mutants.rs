//! `interop mutants`: proves that every check can fail.
//!
//! The lying server (`fixtures/`, binary `lying-server`) is an honest gRPC
//! server but for one lie, chosen with `--mutation NAME`, that breaks exactly
//! one check of one case. Every client plays every mutation's case against a
//! lying server of its own; the mutation is caught when that check fails. An
//! honest lying server (no mutation) plays the whole catalogue first: only
//! what a client passes against it can show a lie.
//!
//! Verdicts per mutation and client:
//! - caught: the case failed and the broken check is among its failed ones;
//! - blind spot: the client's library cannot make that check (the result
//!   names it as not made, with the reason): declared, allowed;
//! - not applicable: the client cannot attempt the case (its manifest says
//!   so), or it does not pass the case against the honest fixture (a library
//!   deviation, listed in known-failures.toml), so a lie proves nothing;
//! - hole: anything else. Holes fail the command.
//!
//! Race mutations (the lie must beat a client's own timer or cancel, which
//! a client library may decide before any byte of the server can arrive) are
//! played again, up to `--race-attempts` times, until caught. One never
//! caught is reported as a race not won, with what came back, not as a hole:
//! whether it can be won at all depends on the client library's timing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::native::Native;
use crate::backend::{Backend, BackendError, Settings};
use crate::cases::Case;
use crate::manifest::{BuildStep, Implementation, Role};
use crate::model::{CellId, CellResult, Event, Outcome, Reporter};
use crate::process::{Child, Spec};
use crate::protocol::CheckState;
use crate::runner::{self, Options, Sink};
use crate::select::{KnownFailures, Plan, PlannedCell};

/// The schema of `interop mutants --json`.
pub const SCHEMA: &str = "polyglot-grpc-interop/mutants/v1";

/// Name of the honest fixture, as a server of the matrix (known-failures.toml
/// may name it); a mutated one is `lying-server/<mutation>`.
pub const HONEST: &str = "lying-server";

/// One lie of the lying server, as `lying-server --list-mutations` prints it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Mutation {
    pub name: String,
    /// The case it targets, by its contract name.
    pub case: String,
    /// The one check of that case it breaks.
    pub check: String,
    /// What the server does instead of the truth.
    pub lie: String,
    /// Whether catching it depends on timing.
    #[serde(default)]
    pub race: bool,
}

/// What became of one mutation against one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Caught,
    BlindSpot,
    NotApplicable,
    /// A race mutation not caught in any attempt.
    RaceNotWon,
    Hole,
}

impl Verdict {
    /// Short text for the table.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Caught => "caught",
            Verdict::BlindSpot => "blind",
            Verdict::NotApplicable => "n/a",
            Verdict::RaceNotWon => "race lost",
            Verdict::Hole => "HOLE",
        }
    }
}

/// One mutation against one client.
#[derive(Debug, Clone, Serialize)]
pub struct Played {
    pub verdict: Verdict,
    /// How the target case ended, on the last attempt.
    pub outcome: Outcome,
    /// The failed checks of that attempt.
    pub failed_checks: Vec<String>,
    /// What the client said, or why the verdict is what it is.
    pub message: String,
    /// How many times the case was played.
    pub attempts: usize,
}

/// A mutation with its results, by client.
#[derive(Debug, Clone, Serialize)]
pub struct MutationRow {
    #[serde(flatten)]
    pub mutation: Mutation,
    pub results: BTreeMap<String, Played>,
}

/// A blind spot of a client: a mutation it cannot see, and why.
#[derive(Debug, Clone, Serialize)]
pub struct BlindSpot {
    pub mutation: String,
    pub check: String,
    pub reason: String,
}

/// The catch counts of one client.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientScore {
    pub caught: usize,
    pub applicable: usize,
    pub holes: Vec<String>,
    pub blind_spots: Vec<BlindSpot>,
    /// Race mutations never caught: the lie did not beat the client's own
    /// timer or cancel in any attempt.
    pub races_not_won: Vec<String>,
    /// Cases this client does not pass against the honest fixture, with what
    /// came back. Each must be a known failure (known-failures.toml, server
    /// `lying-server`): a library deviation. Its mutations are not applicable.
    pub honest_failures: BTreeMap<String, HonestFailure>,
}

/// A case a client does not pass against the honest fixture.
#[derive(Debug, Clone, Serialize)]
pub struct HonestFailure {
    pub outcome: Outcome,
    pub message: String,
    /// The known-failures.toml entry that explains it, if one does.
    pub known_failure: Option<String>,
}

/// The whole catch table.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub schema: &'static str,
    pub clients: Vec<String>,
    pub mutations: Vec<MutationRow>,
    pub scores: BTreeMap<String, ClientScore>,
    pub duration_ms: f64,
    pub interrupted: bool,
}

impl Table {
    /// No holes, no unexplained failure against the honest fixture, and not interrupted.
    pub fn ok(&self) -> bool {
        !self.interrupted
            && self.scores.values().all(|s| {
                s.holes.is_empty()
                    && s.honest_failures
                        .values()
                        .all(|f| f.known_failure.is_some())
            })
    }
}

/// Where the fixture is and how it is built.
pub fn fixture_binary(root: &Path) -> PathBuf {
    root.join("target/release/lying-server")
}

fn fixture_build() -> BuildStep {
    BuildStep {
        command: [
            "cargo",
            "build",
            "--release",
            "--locked",
            "-p",
            "interop-fixtures",
            "--bin",
            "lying-server",
        ]
        .map(String::from)
        .to_vec(),
        dir: None,
    }
}

/// A server "implementation" running the lying server with `mutation`.
fn lying_server(root: &Path, mutation: Option<&str>) -> Implementation {
    let mut command = vec![
        fixture_binary(root).display().to_string(),
        "--port".to_string(),
        "{port}".to_string(),
    ];
    if let Some(m) = mutation {
        command.extend(["--mutation".to_string(), m.to_string()]);
    }
    Implementation {
        name: server_name(mutation),
        library: "h2".to_string(),
        version: "0.4.20".to_string(),
        build: vec![fixture_build()],
        server: Some(Role {
            command,
            ..Role::default()
        }),
        client: None,
        docker: None,
        source: root.join("fixtures/Cargo.toml"),
    }
}

/// The server name of the lying server with `mutation`, or of the honest one.
fn server_name(mutation: Option<&str>) -> String {
    match mutation {
        Some(m) => format!("{HONEST}/{m}"),
        None => HONEST.to_string(),
    }
}

/// Asks the built fixture for its mutations.
pub async fn list_mutations(root: &Path) -> anyhow::Result<Vec<Mutation>> {
    let argv = vec![
        fixture_binary(root).display().to_string(),
        "--list-mutations".to_string(),
    ];
    let mut child = Child::spawn(Spec {
        name: "lying-server --list-mutations".to_string(),
        argv: &argv,
        dir: root,
        env: &[],
        env_remove: &[],
        echo_logs: false,
        cpus: &[],
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut mutations = Vec::new();
    loop {
        match child.next_line(deadline).await {
            crate::process::Next::Line(line) => mutations.push(
                serde_json::from_str::<Mutation>(&line)
                    .map_err(|e| anyhow::anyhow!("lying-server --list-mutations: {e}: {line}"))?,
            ),
            crate::process::Next::Eof => break,
            crate::process::Next::Deadline => {
                child.kill().await;
                anyhow::bail!("lying-server --list-mutations did not finish within 10 s");
            }
        }
    }
    let status = child.wait_until(deadline).await;
    if !status.is_some_and(|s| s.success()) {
        anyhow::bail!(
            "lying-server --list-mutations failed: {}",
            crate::process::describe(status)
        );
    }
    for m in &mutations {
        let case: Case = m
            .case
            .parse()
            .map_err(|_| anyhow::anyhow!("mutation {}: unknown case {:?}", m.name, m.case))?;
        if !case.checks().contains(&m.check.as_str()) {
            anyhow::bail!(
                "mutation {}: {:?} is not a check of {case} ({})",
                m.name,
                m.check,
                case.checks().join(", ")
            );
        }
    }
    Ok(mutations)
}

/// What to play.
#[derive(Debug, Clone)]
pub struct MutantsOptions {
    pub root: PathBuf,
    /// The clients (their manifests).
    pub clients: Vec<Implementation>,
    /// Only the mutations these globs over their names select (all when `None`).
    pub only: Option<crate::select::Filter>,
    pub jobs: usize,
    pub case_timeout: Duration,
    pub race_attempts: usize,
    pub skip_build: bool,
    pub verbose: bool,
    /// Known failures: those against the honest fixture (server `lying-server`)
    /// explain why a client does not pass a case there.
    pub known: KnownFailures,
}

fn planned(client: &Implementation, server: &str, case: Case) -> PlannedCell {
    PlannedCell {
        id: CellId {
            client: client.name.clone(),
            server: server.to_string(),
            case,
        },
        client_unsupported: client.client_unsupported(case).map(String::from),
        server_unsupported: None,
    }
}

/// Plays `cells` (servers from `servers`) on the native backend.
async fn play(
    backend: &Arc<dyn Backend>,
    impls: &[Implementation],
    cells: Vec<PlannedCell>,
    opts: &MutantsOptions,
    progress: Vec<Box<dyn Reporter>>,
    known: KnownFailures,
    cancel: &CancellationToken,
) -> runner::Summary {
    let mut clients: Vec<String> = cells.iter().map(|c| c.id.client.clone()).collect();
    clients.dedup();
    let mut servers: Vec<String> = cells.iter().map(|c| c.id.server.clone()).collect();
    servers.sort();
    servers.dedup();
    let mut cases: Vec<Case> = cells.iter().map(|c| c.id.case).collect();
    cases.sort();
    cases.dedup();
    let plan = Plan {
        clients,
        servers,
        cases,
        cells,
    };
    let run_opts = Options {
        jobs: opts.jobs,
        case_timeout: opts.case_timeout,
        skip_build: true,
        ..Options::default()
    };
    let sink = Arc::new(Sink::new(progress, known));
    runner::run(
        backend.clone(),
        impls,
        &plan,
        &run_opts,
        sink,
        cancel.clone(),
    )
    .await
}

/// The verdict of one played target case.
fn verdict(mutation: &Mutation, r: &CellResult, honest_passed: bool) -> (Verdict, String) {
    if r.outcome == Outcome::Unsupported && r.unsupported.is_some() {
        return (
            Verdict::NotApplicable,
            format!("the client cannot attempt {}: {}", mutation.case, r.message),
        );
    }
    if !honest_passed {
        return (
            Verdict::NotApplicable,
            format!(
                "the client does not pass {} against the honest fixture either",
                mutation.case
            ),
        );
    }
    if let Some(reason) = r.not_checked.get(&mutation.check) {
        return (Verdict::BlindSpot, reason.clone());
    }
    let failed = r
        .checks
        .as_ref()
        .and_then(|c| c.get(&mutation.check))
        .is_some_and(|s| *s == CheckState::Failed);
    if r.outcome == Outcome::Failed && failed {
        (Verdict::Caught, r.message.clone())
    } else {
        let why = match r.outcome {
            Outcome::Failed => format!(
                "failed, but not on {} (failed checks: {}): {}",
                mutation.check,
                r.failed_checks().join(", "),
                r.message
            ),
            o => format!(
                "{}{}",
                o.words(),
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.message)
                }
            ),
        };
        (Verdict::Hole, why)
    }
}

/// Builds what is needed, plays the honest fixture and every mutation, and
/// makes the catch table.
pub async fn run(
    opts: &MutantsOptions,
    progress: impl Fn() -> Vec<Box<dyn Reporter>>,
    cancel: CancellationToken,
) -> anyhow::Result<Table> {
    let started = Instant::now();
    let settings = Settings {
        transport: crate::backend::Transport::Plain,
        ready_timeout: Duration::from_secs(60),
        build_timeout: Duration::from_secs(40 * 60),
        stop_grace: Duration::from_secs(2),
        verbose: opts.verbose,
        soak: crate::manifest::Soak::default(),
    };
    let backend: Arc<dyn Backend> = Arc::new(Native::new(&opts.root, settings));
    let honest = lying_server(&opts.root, None);
    if !opts.skip_build {
        for imp in opts.clients.iter().chain([&honest]) {
            eprintln!("interop mutants: building {}", imp.name);
            tokio::select! {
                r = backend.prepare(imp) => r.map_err(|e| anyhow::anyhow!("{e}"))?,
                () = cancel.cancelled() => return Err(BackendError::Interrupted.into()),
            }
        }
    }
    let mut mutations = list_mutations(&opts.root).await?;
    if let Some(only) = &opts.only {
        let names: Vec<String> = only
            .select(mutations.iter().map(|m| m.name.as_str()))?
            .into_iter()
            .map(String::from)
            .collect();
        mutations.retain(|m| names.contains(&m.name));
    }
    let mut impls: Vec<Implementation> = opts.clients.clone();
    impls.push(honest.clone());
    impls.extend(
        mutations
            .iter()
            .map(|m| lying_server(&opts.root, Some(&m.name))),
    );

    // The honest fixture, every case (the ones the mutations target).
    let mut cases: Vec<Case> = mutations
        .iter()
        .filter_map(|m| m.case.parse().ok())
        .collect();
    cases.sort();
    cases.dedup();
    let mut cells = Vec::new();
    for client in &opts.clients {
        for case in &cases {
            cells.push(planned(client, &honest.name, *case));
        }
        for m in &mutations {
            let case: Case = m.case.parse()?;
            cells.push(planned(client, &server_name(Some(&m.name)), case));
        }
    }
    let summary = play(
        &backend,
        &impls,
        cells,
        opts,
        progress(),
        opts.known.clone(),
        &cancel,
    )
    .await;
    let mut interrupted = summary.interrupted;
    let results: BTreeMap<CellId, CellResult> = summary
        .results
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();

    let mut rows: Vec<MutationRow> = Vec::new();
    let mut scores: BTreeMap<String, ClientScore> = BTreeMap::new();
    for client in &opts.clients {
        let score = scores.entry(client.name.clone()).or_default();
        for case in &cases {
            let id = CellId {
                client: client.name.clone(),
                server: honest.name.clone(),
                case: *case,
            };
            if let Some(r) = results.get(&id)
                && !r.outcome.is_pass()
                && r.outcome != Outcome::Unsupported
            {
                score.honest_failures.insert(
                    case.name().to_string(),
                    HonestFailure {
                        outcome: r.outcome,
                        message: r.message.clone(),
                        known_failure: r
                            .known_failure
                            .as_ref()
                            .filter(|_| r.is_ok())
                            .map(|k| k.describe()),
                    },
                );
            }
        }
    }
    for m in &mutations {
        let case: Case = m.case.parse()?;
        let mut row = MutationRow {
            mutation: m.clone(),
            results: BTreeMap::new(),
        };
        for client in &opts.clients {
            let id = CellId {
                client: client.name.clone(),
                server: server_name(Some(&m.name)),
                case,
            };
            let Some(r) = results.get(&id) else { continue };
            let honest_passed = !scores[&client.name]
                .honest_failures
                .contains_key(case.name());
            let (verdict, message) = verdict(m, r, honest_passed);
            row.results.insert(
                client.name.clone(),
                Played {
                    verdict,
                    outcome: r.outcome,
                    failed_checks: r.failed_checks().iter().map(|s| s.to_string()).collect(),
                    message,
                    attempts: 1,
                },
            );
        }
        rows.push(row);
    }

    // Race mutations: play again what was not caught, up to the attempts allowed.
    for attempt in 2..=opts.race_attempts.max(1) {
        let again: Vec<(usize, String)> = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.mutation.race)
            .flat_map(|(i, row)| {
                row.results
                    .iter()
                    .filter(|(_, p)| p.verdict == Verdict::Hole)
                    .map(move |(c, _)| (i, c.clone()))
            })
            .collect();
        if again.is_empty() || cancel.is_cancelled() {
            break;
        }
        eprintln!(
            "interop mutants: race attempt {attempt}: {} cell(s) played again",
            again.len()
        );
        let cells: Vec<PlannedCell> = again
            .iter()
            .map(|(i, c)| {
                let client = opts
                    .clients
                    .iter()
                    .find(|x| &x.name == c)
                    .expect("known client");
                let m = &rows[*i].mutation;
                planned(
                    client,
                    &server_name(Some(&m.name)),
                    m.case.parse().expect("checked"),
                )
            })
            .collect();
        let summary = play(
            &backend,
            &impls,
            cells,
            opts,
            Vec::new(),
            KnownFailures::default(),
            &cancel,
        )
        .await;
        interrupted |= summary.interrupted;
        for r in summary.results {
            let Some((i, _)) = again.iter().find(|(i, c)| {
                *c == r.id.client && r.id.server == server_name(Some(&rows[*i].mutation.name))
            }) else {
                continue;
            };
            let row = &mut rows[*i];
            let (verdict, message) = verdict(&row.mutation, &r, true);
            let played = row.results.get_mut(&r.id.client).expect("played before");
            *played = Played {
                verdict,
                outcome: r.outcome,
                failed_checks: r.failed_checks().iter().map(|s| s.to_string()).collect(),
                message,
                attempts: attempt,
            };
        }
    }

    for row in &mut rows {
        for played in row.results.values_mut() {
            if row.mutation.race && played.verdict == Verdict::Hole {
                played.verdict = Verdict::RaceNotWon;
                played.message = format!(
                    "not caught in {} attempt(s): the lie must beat the client's own timer or cancel; last: {}",
                    played.attempts, played.message
                );
            }
        }
    }
    for row in &rows {
        for (client, played) in &row.results {
            let score = scores.entry(client.clone()).or_default();
            match played.verdict {
                Verdict::RaceNotWon => score.races_not_won.push(row.mutation.name.clone()),
                Verdict::Caught => {
                    score.caught += 1;
                    score.applicable += 1;
                }
                Verdict::BlindSpot => {
                    score.applicable += 1;
                    score.blind_spots.push(BlindSpot {
                        mutation: row.mutation.name.clone(),
                        check: row.mutation.check.clone(),
                        reason: played.message.clone(),
                    });
                }
                Verdict::Hole => {
                    score.applicable += 1;
                    score.holes.push(row.mutation.name.clone());
                }
                Verdict::NotApplicable => {}
            }
        }
    }
    Ok(Table {
        schema: SCHEMA,
        clients: opts.clients.iter().map(|c| c.name.clone()).collect(),
        mutations: rows,
        scores,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        interrupted,
    })
}

/// Prints the catch table: mutations as rows, clients as columns, then the
/// counts, the holes and the blind spots.
pub fn render(table: &Table, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let name_width = table
        .mutations
        .iter()
        .map(|r| r.mutation.name.len())
        .max()
        .unwrap_or(8)
        .max(8)
        + 2;
    let col = 12;
    let mut head = format!("{:<name_width$}{:<34}", "mutation", "breaks");
    for c in &table.clients {
        head.push_str(&format!("{c:<col$}"));
    }
    writeln!(out, "{}", head.trim_end())?;
    for row in &table.mutations {
        let breaks = format!("{} {}", row.mutation.case, row.mutation.check);
        let mut line = format!("{:<name_width$}{:<34}", row.mutation.name, breaks);
        for c in &table.clients {
            let text = match row.results.get(c) {
                Some(p) if p.attempts > 1 && p.verdict == Verdict::Caught => {
                    format!("caught ({})", p.attempts)
                }
                Some(p) => p.verdict.text().to_string(),
                None => "·".to_string(),
            };
            line.push_str(&format!("{text:<col$}"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    writeln!(out)?;
    writeln!(out, "{} mutations", table.mutations.len())?;
    for c in &table.clients {
        let s = &table.scores[c];
        writeln!(
            out,
            "  client {c}: caught {}/{} applicable, {} blind spot(s), {} hole(s), {} race(s) not won",
            s.caught,
            s.applicable,
            s.blind_spots.len(),
            s.holes.len(),
            s.races_not_won.len()
        )?;
    }
    for c in &table.clients {
        let s = &table.scores[c];
        for (case, f) in &s.honest_failures {
            match &f.known_failure {
                Some(k) => writeln!(
                    out,
                    "  client {c} does not pass {case} against the honest fixture, a known failure ({k}), so its mutations are n/a: {}: {}",
                    f.outcome.words(),
                    f.message
                )?,
                None => writeln!(
                    out,
                    "  UNEXPLAINED: client {c} does not pass {case} against the honest fixture: {}: {}",
                    f.outcome.words(),
                    f.message
                )?,
            }
        }
    }
    let blind: Vec<String> = table
        .clients
        .iter()
        .flat_map(|c| {
            table.scores[c]
                .blind_spots
                .iter()
                .map(move |b| format!("  client {c}: {} ({}): {}", b.mutation, b.check, b.reason))
        })
        .collect();
    if !blind.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "blind spots (checks the client's library cannot make):"
        )?;
        for line in blind {
            writeln!(out, "{line}")?;
        }
    }
    let lost: Vec<String> = table
        .mutations
        .iter()
        .flat_map(|row| {
            row.results
                .iter()
                .filter(|(_, p)| p.verdict == Verdict::RaceNotWon)
                .map(move |(c, p)| {
                    format!("  {} against client {c}: {}", row.mutation.name, p.message)
                })
        })
        .collect();
    if !lost.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "races not won (the lie came too late for the client's own timer or cancel):"
        )?;
        for line in lost {
            writeln!(out, "{line}")?;
        }
    }
    let holes: Vec<String> = table
        .mutations
        .iter()
        .flat_map(|row| {
            row.results
                .iter()
                .filter(|(_, p)| p.verdict == Verdict::Hole)
                .map(move |(c, p)| {
                    format!(
                        "  {} against client {c}: {} {} not caught: {}",
                        row.mutation.name, row.mutation.case, row.mutation.check, p.message
                    )
                })
        })
        .collect();
    if !holes.is_empty() {
        writeln!(out)?;
        writeln!(out, "holes:")?;
        for line in holes {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "verdict: {}{}",
        if table.ok() { "PASS" } else { "FAIL" },
        if table.interrupted {
            " (INTERRUPTED: results are partial)"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// Progress of a mutants run: phases and a count of finished cells.
pub struct Progress {
    done: usize,
    total: usize,
}

impl Progress {
    pub fn new() -> Progress {
        Progress { done: 0, total: 0 }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Reporter for Progress {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(info) => {
                self.total = info.cells;
                eprintln!(
                    "interop mutants: {} client(s) × {} lying server(s): {} cells",
                    info.clients.len(),
                    info.servers.len(),
                    info.cells
                );
            }
            Event::Phase(text) if text.starts_with("starting") => {
                eprintln!("interop mutants: starting the lying servers");
            }
            Event::CellFinished(_) => {
                self.done += 1;
                if self.done.is_multiple_of(50) || self.done == self.total {
                    eprintln!("interop mutants: {}/{} cells", self.done, self.total);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutation(race: bool) -> Mutation {
        Mutation {
            name: "large_unary_size".into(),
            case: "large_unary".into(),
            check: "payload_size".into(),
            lie: "one byte short".into(),
            race,
        }
    }

    fn cell(outcome: Outcome, checks: &[(&str, CheckState)]) -> CellResult {
        CellResult {
            checks: Some(checks.iter().map(|(n, s)| (n.to_string(), *s)).collect()),
            ..CellResult::not_run(
                CellId {
                    client: "c".into(),
                    server: server_name(Some("large_unary_size")),
                    case: Case::LargeUnary,
                },
                outcome,
                "UnaryCall payload size = 314158, want 314159",
            )
        }
    }

    #[test]
    fn caught_only_when_the_broken_check_failed() {
        let m = mutation(false);
        let failed = [
            ("status", CheckState::Passed),
            ("payload_size", CheckState::Failed),
        ];
        assert_eq!(
            verdict(&m, &cell(Outcome::Failed, &failed), true).0,
            Verdict::Caught
        );
        // Failing on another check does not show this check can fail.
        let other = [("status", CheckState::Failed)];
        let (v, why) = verdict(&m, &cell(Outcome::Failed, &other), true);
        assert_eq!(v, Verdict::Hole);
        assert!(why.starts_with("failed, but not on payload_size"), "{why}");
        let passed = [
            ("status", CheckState::Passed),
            ("payload_size", CheckState::Passed),
        ];
        assert_eq!(
            verdict(&m, &cell(Outcome::Passed, &passed), true).0,
            Verdict::Hole
        );
    }

    #[test]
    fn a_check_not_made_is_a_blind_spot_and_an_honest_failure_makes_it_not_applicable() {
        let m = mutation(false);
        let mut c = cell(Outcome::PassedPartial, &[("status", CheckState::Passed)]);
        c.not_checked
            .insert("payload_size".into(), "cannot see sizes".into());
        assert_eq!(
            verdict(&m, &c, true),
            (Verdict::BlindSpot, "cannot see sizes".to_string())
        );
        let caught = cell(Outcome::Failed, &[("payload_size", CheckState::Failed)]);
        assert_eq!(verdict(&m, &caught, false).0, Verdict::NotApplicable);
        let mut refused = cell(Outcome::Unsupported, &[]);
        refused.unsupported = Some("client c: cannot".into());
        assert_eq!(verdict(&m, &refused, true).0, Verdict::NotApplicable);
    }
}
