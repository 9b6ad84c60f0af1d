//! The `interop` command line, as a library so tests drive it the same way.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::backend::docker::Docker;
use crate::backend::native::Native;
use crate::backend::{Backend, Settings, Transport};
use crate::baselines::Baselines;
use crate::cases::Case;
use crate::manifest::{self, Implementation};
use crate::model::Reporter;
use crate::report;
use crate::runner::{self, Options, Sink, Summary};
use crate::select::{KnownFailures, Plan, Selection, Shard};

/// Exit status: every cell passed, was unsupported or is a known failure.
pub const EXIT_OK: i32 = 0;
/// Exit status: some cell failed, timed out or could not be set up.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: bad usage or configuration (nothing was run).
pub const EXIT_USAGE: i32 = 2;
/// Exit status: interrupted by SIGINT or SIGTERM (results are partial).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Plays every gRPC client against every gRPC server, for every case.
#[derive(Debug, Parser)]
#[command(name = "interop", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build what is needed, run the matrix, report it.
    Run(Box<RunArgs>),
    /// List implementations, their versions, the cases, and what is unsupported where.
    List(CommonArgs),
    /// Report the matrix from result files written by clients elsewhere
    /// (`--result_file <dir>/<client>-to-<server>.jsonl`), as the compose run does.
    Collect(Box<CollectArgs>),
    /// Prove that every check can fail: every client against a lying server
    /// that breaks one checked property at a time; prints the catch table.
    Mutants(Box<MutantsArgs>),
    /// HTTP/2 conformance of every server with h2spec, against the
    /// baselines in h2spec/: a test the baseline says passes that fails now
    /// is a regression.
    H2spec(Box<H2specArgs>),
    /// Load figures per pairing: every client with a load mode against every
    /// server, unary and ping-pong, with ghz against each server as the
    /// reference; prints throughput and p99 matrices.
    Bench(Box<BenchArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct MutantsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Clients: comma-separated globs, e.g. `go,py*`.
    #[arg(long)]
    pub client: Option<String>,
    /// Mutations: comma-separated globs over their names (`lying-server --list-mutations`).
    #[arg(long)]
    pub mutation: Option<String>,
    /// Also write the catch table as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Client processes played at the same time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Seconds one case may take.
    #[arg(long, default_value_t = 20.0)]
    pub case_timeout: f64,
    /// How many times a race mutation (one whose lie must beat a client's
    /// timer) is played before a miss counts as a hole.
    #[arg(long, default_value_t = 5)]
    pub race_attempts: usize,
    /// Known-failures file (default: <root>/known-failures.toml, if present);
    /// its entries for server `lying-server` explain failures against the
    /// honest fixture.
    #[arg(long)]
    pub known_failures: Option<PathBuf>,
    /// Do not build; use what is already built.
    #[arg(long)]
    pub no_build: bool,
    /// Stream every child's logs to stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Processes on 127.0.0.1.
    Native,
    /// Docker containers on a private network.
    Docker,
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Repository root (default: found from the current folder upwards).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Folder of implementation manifests (default: <root>/implementations).
    #[arg(long)]
    pub implementations: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    /// Where implementations run.
    #[arg(long, value_enum, default_value_t = BackendKind::Native)]
    pub backend: BackendKind,
    /// Use TLS between clients and servers (test certificates in testdata/tls).
    #[arg(long)]
    pub tls: bool,
    /// Use mutual TLS: servers require and verify client certificates, and
    /// every client presents one (implies TLS).
    #[arg(long, conflicts_with = "tls")]
    pub mtls: bool,
    /// Client processes playing at the same time (most of their time is
    /// spent waiting on deadlines, pauses and holds, so more than the cores).
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Seconds one case may take before it is stopped and reported timed out,
    /// from the client's ready line (or its previous result) to the case's result.
    #[arg(long, default_value_t = 20.0)]
    pub case_timeout: f64,
    /// Seconds a client process may take from its start to its ready line.
    /// A client that prints none gets this plus --case-timeout for its first case.
    #[arg(long, default_value_t = 15.0)]
    pub startup_timeout: f64,
    /// Seconds a server may take to announce readiness.
    #[arg(long, default_value_t = 60.0)]
    pub ready_timeout: f64,
    /// Start one client process per case (slower; for comparison).
    #[arg(long)]
    pub process_per_case: bool,
    #[command(flatten)]
    pub soak: SoakArgs,
    /// Do not build; use what is already built.
    #[arg(long)]
    pub no_build: bool,
    /// Stream every child's logs to stderr, prefixed with its name.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The soak cases' settings, passed to every client with the official flags.
/// The defaults keep the matrix fast and steady on a loaded machine (a
/// generous latency limit: the latencies are reported anyway); a real soak
/// raises the iterations and sets the limits it means.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// rpc_soak, channel_soak: RPCs per case.
    #[arg(long, default_value_t = 10)]
    pub soak_iterations: u32,
    /// How many of them may fail.
    #[arg(long, default_value_t = 0)]
    pub soak_max_failures: u32,
    /// Milliseconds an RPC may take before its iteration fails.
    #[arg(long, default_value_t = 5000)]
    pub soak_per_iteration_max_acceptable_latency_ms: u32,
    /// Seconds after which a soak case stops, failing.
    #[arg(long, default_value_t = 30)]
    pub soak_overall_timeout_seconds: u32,
    /// Milliseconds between the starts of two iterations of a worker, at least.
    #[arg(long, default_value_t = 0)]
    pub soak_min_time_ms_between_rpcs: u32,
    /// Workers per soak case.
    #[arg(long, default_value_t = 1)]
    pub soak_num_threads: u32,
}

impl SoakArgs {
    fn soak(&self) -> Result<crate::manifest::Soak, UsageError> {
        if self.soak_iterations == 0
            || self.soak_num_threads == 0
            || !self.soak_iterations.is_multiple_of(self.soak_num_threads)
        {
            return Err(UsageError(anyhow::anyhow!(
                "--soak-iterations must be a positive multiple of --soak-num-threads (at least 1)"
            )));
        }
        Ok(crate::manifest::Soak {
            iterations: self.soak_iterations,
            max_failures: self.soak_max_failures,
            per_iteration_max_acceptable_latency_ms: self
                .soak_per_iteration_max_acceptable_latency_ms,
            overall_timeout_seconds: self.soak_overall_timeout_seconds,
            min_time_ms_between_rpcs: self.soak_min_time_ms_between_rpcs,
            num_threads: self.soak_num_threads,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    /// Folder the clients write their result files to.
    #[arg(long)]
    pub results: PathBuf,
    /// Seconds to wait for every pairing's file to be complete.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// JSON file of the clients' exit statuses, `{"<client>-to-<server>": N}`,
    /// written once every client has exited (scripts/compose-matrix.sh does),
    /// checked against each client's results. Without it, or when it does not
    /// come within --exit-codes-wait, the exit statuses are not checked, and
    /// the report says so.
    #[arg(long)]
    pub exit_codes: Option<PathBuf>,
    /// Seconds to wait for --exit-codes once every result file is complete.
    #[arg(long, default_value_t = 60.0)]
    pub exit_codes_wait: f64,
}

/// Selection and report options shared by `run` and `collect`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Clients: comma-separated globs, e.g. `go,py*`.
    #[arg(long)]
    pub client: Option<String>,
    /// Servers: comma-separated globs.
    #[arg(long)]
    pub server: Option<String>,
    /// Cases: comma-separated globs, e.g. `greeter_*,large_unary`.
    #[arg(long)]
    pub case: Option<String>,
    /// Also play the slow cases (unfinished_prefaces_200, streams_500: many
    /// connections or streams held for a while), which only a `--case` that
    /// names them plays otherwise.
    #[arg(long)]
    pub slow: bool,
    /// Only shard i of n of the matrix, e.g. `2/4`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Known-failures file (default: <root>/known-failures.toml, if present).
    #[arg(long)]
    pub known_failures: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the report as JUnit XML (one testcase per cell) to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write a self-contained HTML page of the matrix to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Finds the repository root: the nearest folder upwards with an
/// `implementations/` folder and a `Cargo.toml`, else the one this binary
/// was built from.
pub fn find_root(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(root) = explicit {
        return root
            .canonicalize()
            .with_context(|| format!("--root {}", root.display()));
    }
    let cwd = std::env::current_dir().context("reading the current folder")?;
    for dir in cwd.ancestors() {
        if dir.join("implementations").is_dir() && dir.join("Cargo.toml").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("implementations").is_dir() {
        return Ok(built);
    }
    bail!(
        "cannot find the repository root (a folder with implementations/ and Cargo.toml); pass --root"
    )
}

fn load_impls(common: &CommonArgs, root: &Path) -> anyhow::Result<Vec<Implementation>> {
    let dir = common
        .implementations
        .clone()
        .unwrap_or_else(|| root.join("implementations"));
    Ok(manifest::load_dir(&dir)?)
}

/// A usage or configuration error: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct UsageError(anyhow::Error);

/// Everything `run` needs, resolved from the arguments.
pub struct Prepared {
    pub root: PathBuf,
    pub impls: Vec<Implementation>,
    pub plan: Plan,
    pub known: KnownFailures,
    pub options: Options,
    pub settings: Settings,
}

/// The manifests, plan and known failures a selection resolves to.
pub struct Selected {
    pub root: PathBuf,
    pub impls: Vec<Implementation>,
    pub plan: Plan,
    pub known: KnownFailures,
}

/// Resolves the selection; every error here is a usage error.
pub fn select(args: &ReportArgs) -> Result<Selected, UsageError> {
    select_where(args, |_| true)
}

/// As [`select`], with only the implementations `keep` accepts.
pub fn select_where(
    args: &ReportArgs,
    keep: impl Fn(&Implementation) -> bool,
) -> Result<Selected, UsageError> {
    let inner = || -> anyhow::Result<Selected> {
        let root = find_root(args.common.root.as_deref())?;
        let impls: Vec<Implementation> = load_impls(&args.common, &root)?
            .into_iter()
            .filter(|i| keep(i))
            .collect();
        let selection = Selection {
            clients: args.client.clone(),
            servers: args.server.clone(),
            cases: args.case.clone(),
            shard: args.shard,
            slow: args.slow,
        };
        let plan = Plan::new(&impls, &selection)?;
        let known = match &args.known_failures {
            Some(path) => {
                if !path.is_file() {
                    bail!("--known-failures {}: no such file", path.display());
                }
                KnownFailures::load(path)?
            }
            None => KnownFailures::load(&root.join("known-failures.toml"))?,
        };
        Ok(Selected {
            root,
            impls,
            plan,
            known,
        })
    };
    inner().map_err(UsageError)
}

fn seconds(flag: &str, v: f64) -> Result<Duration, UsageError> {
    if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
        return Err(UsageError(anyhow::anyhow!(
            "--{flag} must be a number of seconds above 0, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Leaves out the cells played over mutual TLS (all of the `tls` group, and
/// every cell of an `--mtls` run but the fixtures' plaintext groups) whose
/// client or server cannot do it (no `mtls` in its manifest). Returns what
/// was left out, for the reports.
pub fn drop_without_mtls(plan: &mut Plan, impls: &[Implementation], run: Transport) -> Vec<String> {
    let can = |name: &str, client: bool| {
        impls
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| {
                if client {
                    i.client.as_ref()
                } else {
                    i.server.as_ref()
                }
            })
            .is_some_and(|r| r.mtls.is_some())
    };
    let mut left_out: std::collections::BTreeSet<String> = Default::default();
    plan.retain(|c| {
        if Transport::for_case(c.id.case, run) != Transport::Mtls {
            return true;
        }
        for (name, client) in [(&c.id.client, true), (&c.id.server, false)] {
            if !can(name, client) {
                left_out.insert(format!(
                    "{} {name}",
                    if client { "client" } else { "server" }
                ));
                return false;
            }
        }
        true
    });
    left_out
        .into_iter()
        .map(|who| {
            format!("{who} cannot do mutual TLS (no `mtls` in its manifest): its cells over mTLS were left out")
        })
        .collect()
}

/// Resolves `run` arguments into a plan and settings; errors are usage errors.
pub fn prepare(args: &RunArgs) -> Result<Prepared, UsageError> {
    // The docker backend plays what has an image; the fixtures (the bad
    // server and the bad client) run natively only.
    let docker = args.backend == BackendKind::Docker;
    let Selected {
        root,
        impls,
        mut plan,
        known,
    } = select_where(&args.report, |i| !docker || i.docker.is_some())?;
    if args.jobs == 0 {
        return Err(UsageError(anyhow::anyhow!("--jobs must be at least 1")));
    }
    let soak = args.soak.soak()?;
    let transport = Transport::from_flags(args.tls, args.mtls);
    let notes = drop_without_mtls(&mut plan, &impls, transport);
    if plan.cells.is_empty() {
        return Err(UsageError(anyhow::anyhow!(
            "the selection has no cell that can be played over mutual TLS: {}",
            notes.join("; ")
        )));
    }
    let case_timeout = seconds("case-timeout", args.case_timeout)?;
    // A soak case may take its overall timeout plus one more iteration.
    let soak_case_timeout = case_timeout.max(
        Duration::from_secs(u64::from(soak.overall_timeout_seconds))
            + Duration::from_millis(u64::from(soak.per_iteration_max_acceptable_latency_ms))
            + Duration::from_secs(5),
    );
    let options = Options {
        jobs: args.jobs,
        case_timeout,
        soak_case_timeout,
        client_startup: seconds("startup-timeout", args.startup_timeout)?,
        process_per_case: args.process_per_case,
        skip_build: args.no_build,
        shard: args.report.shard.map(|s| s.to_string()),
        transport,
        baselines: Baselines::load(&root.join(crate::baselines::FILE))
            .map_err(|e| UsageError(e.into()))?,
        notes,
    };
    let settings = Settings {
        transport,
        ready_timeout: seconds("ready-timeout", args.ready_timeout)?,
        // A cold cargo build of tonic on two cores takes minutes; this only
        // catches a build that hangs.
        build_timeout: Duration::from_secs(40 * 60),
        stop_grace: Duration::from_secs(2),
        verbose: args.verbose,
        soak,
    };
    Ok(Prepared {
        root,
        impls,
        plan,
        known,
        options,
        settings,
    })
}

/// Makes the backend of `kind`.
pub async fn make_backend(
    kind: BackendKind,
    prepared: &Prepared,
) -> anyhow::Result<Arc<dyn Backend>> {
    match kind {
        BackendKind::Native => Ok(Arc::new(Native::new(
            &prepared.root,
            prepared.settings.clone(),
        ))),
        BackendKind::Docker => Ok(Arc::new(
            Docker::connect(&prepared.root, prepared.settings.clone()).await?,
        )),
    }
}

/// The terminal report plus the files asked for.
fn reporters(args: &ReportArgs, verbose: bool) -> Vec<Box<dyn Reporter>> {
    let stderr_live = std::io::stderr().is_terminal();
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(report::terminal::Terminal::new(
        Box::new(std::io::stdout()),
        Some(Box::new(std::io::stderr())),
        stderr_live && !verbose,
    ))];
    if let Some(path) = &args.json {
        reporters.push(Box::new(report::json::Json::new(path.clone())));
    }
    if let Some(path) = &args.junit {
        reporters.push(Box::new(report::junit::Junit::new(path.clone())));
    }
    if let Some(path) = &args.html {
        reporters.push(Box::new(report::html::Html::new(path.clone())));
    }
    reporters
}

/// Runs the matrix with the terminal report on stdout/stderr plus the files asked for.
pub async fn run(
    args: &RunArgs,
    cancel: CancellationToken,
) -> anyhow::Result<(Summary, Vec<String>)> {
    let prepared = prepare(args)?;
    let backend = make_backend(args.backend, &prepared).await?;
    let sink = Arc::new(Sink::new(
        reporters(&args.report, args.verbose),
        prepared.known.clone(),
    ));
    let summary = runner::run(
        backend,
        &prepared.impls,
        &prepared.plan,
        &prepared.options,
        sink.clone(),
        cancel,
    )
    .await;
    Ok((summary, sink.errors()))
}

/// Reports the matrix from result files (see [`crate::collect`]).
pub async fn collect(
    args: &CollectArgs,
    cancel: CancellationToken,
) -> anyhow::Result<(Summary, Vec<String>)> {
    // The containers play the default groups; the fixtures and the tls
    // group run natively.
    let Selected {
        impls,
        mut plan,
        known,
        ..
    } = select_where(&args.report, |i| i.docker.is_some())?;
    let before = plan.cells.len();
    plan.retain(|c| crate::cases::CaseGroup::DEFAULT.contains(&c.id.case.group()));
    let mut notes = Vec::new();
    if plan.cells.len() < before {
        notes.push(
            "the containers play the groups greeter, interop and soak: the bad server, the bad client and the tls group run natively (`interop run`)"
                .to_string(),
        );
    }
    let timeout = seconds("timeout", args.timeout)?;
    if !args.results.is_dir() {
        return Err(UsageError(anyhow::anyhow!(
            "--results {}: no such folder",
            args.results.display()
        ))
        .into());
    }
    let options = Options {
        shard: args.report.shard.map(|s| s.to_string()),
        notes,
        ..Options::default()
    };
    let sink = Arc::new(Sink::new(reporters(&args.report, false), known));
    let exit_codes = match &args.exit_codes {
        Some(path) => Some(crate::collect::ExitCodes {
            path: path.clone(),
            wait: seconds("exit-codes-wait", args.exit_codes_wait)?,
        }),
        None => None,
    };
    let summary = crate::collect::collect(
        &args.results,
        exit_codes.as_ref(),
        &impls,
        &plan,
        &options,
        timeout,
        sink.clone(),
        cancel,
    )
    .await;
    Ok((summary, sink.errors()))
}

/// Prints implementations, cases and what is unsupported where.
pub fn list(common: &CommonArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let root = find_root(common.root.as_deref()).map_err(UsageError)?;
    let impls = load_impls(common, &root).map_err(UsageError)?;
    writeln!(out, "implementations:")?;
    for i in &impls {
        let roles: Vec<&str> = [
            ("server", i.server.is_some()),
            ("client", i.client.is_some()),
        ]
        .iter()
        .filter(|(_, has)| *has)
        .map(|(r, _)| *r)
        .collect();
        writeln!(
            out,
            "  {:<10} {:<22} {:<15} {}",
            i.name,
            i.library_version(),
            roles.join("+"),
            i.source.display()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "cases:")?;
    for case in Case::all() {
        writeln!(out, "  {:<30} {}", case.name(), case.group().name())?;
    }
    writeln!(out)?;
    writeln!(out, "unsupported:")?;
    let mut any = false;
    for i in &impls {
        for (side, role) in [("client", &i.client), ("server", &i.server)] {
            if let Some(role) = role {
                for (case, reason) in &role.unsupported {
                    any = true;
                    writeln!(out, "  {side} {:<8} {case}: {reason}", i.name)?;
                }
            }
        }
    }
    if !any {
        writeln!(out, "  (none)")?;
    }
    Ok(())
}

/// Plays every mutation against every client (see [`crate::mutants`]).
pub async fn mutants(
    args: &MutantsArgs,
    cancel: CancellationToken,
) -> anyhow::Result<crate::mutants::Table> {
    let prepared = || -> anyhow::Result<crate::mutants::MutantsOptions> {
        let root = find_root(args.common.root.as_deref())?;
        let impls = load_impls(&args.common, &root)?;
        // A client that reports by its exit status cannot show which check
        // caught a lie: it sits out, and the table says so.
        let by_exit_status = |i: &&Implementation| {
            i.client
                .as_ref()
                .is_some_and(|c| c.results == crate::manifest::Results::ExitStatus)
        };
        for i in impls
            .iter()
            .filter(|i| i.client.is_some())
            .filter(by_exit_status)
        {
            eprintln!(
                "interop mutants: client {} sits out: it reports by its exit status, which cannot name the check that caught a lie",
                i.name
            );
        }
        // The lies are told in the cases a server of the matrix serves; a
        // client that plays none of them (the bad client) has no seat here.
        let plays_the_lies = |i: &&Implementation| {
            i.client
                .as_ref()
                .is_some_and(|c| c.plays(Case::GreeterUnary) || c.plays(Case::LargeUnary))
        };
        let names: Vec<&str> = impls
            .iter()
            .filter(|i| i.client.is_some())
            .filter(|i| !by_exit_status(i))
            .filter(plays_the_lies)
            .map(|i| i.name.as_str())
            .collect();
        let chosen = crate::select::Filter::parse("client", args.client.as_deref())?
            .select(names.iter().copied())?;
        let clients = impls
            .iter()
            .filter(|i| chosen.contains(&i.name.as_str()))
            .cloned()
            .collect();
        let only = args
            .mutation
            .as_deref()
            .map(|m| crate::select::Filter::parse("mutation", Some(m)))
            .transpose()?;
        let known = match &args.known_failures {
            Some(path) => {
                if !path.is_file() {
                    bail!("--known-failures {}: no such file", path.display());
                }
                KnownFailures::load(path)?
            }
            None => KnownFailures::load(&root.join("known-failures.toml"))?,
        };
        if args.jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        Ok(crate::mutants::MutantsOptions {
            root,
            clients,
            only,
            jobs: args.jobs,
            case_timeout: seconds("case-timeout", args.case_timeout)?,
            race_attempts: args.race_attempts,
            skip_build: args.no_build,
            verbose: args.verbose,
            known,
        })
    };
    let opts = prepared().map_err(UsageError)?;
    let table = crate::mutants::run(
        &opts,
        || vec![Box::new(crate::mutants::Progress::new()) as Box<dyn Reporter>],
        cancel,
    )
    .await?;
    crate::mutants::render(&table, &mut std::io::stdout())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&table)?;
        report::write_file(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(table)
}

#[derive(Debug, Clone, Args)]
pub struct H2specArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Servers: comma-separated globs (of the servers that serve
    /// grpc.testing.TestService).
    #[arg(long)]
    pub server: Option<String>,
    /// Also write every test's result, with the details, as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Rewrite the baselines of the servers played from this run's results.
    #[arg(long)]
    pub update_baseline: bool,
    /// Folder of the baselines (default: <root>/h2spec).
    #[arg(long)]
    pub baseline_dir: Option<PathBuf>,
    /// Whole seconds h2spec waits for each expected answer (its --timeout).
    #[arg(long, default_value_t = 2)]
    pub test_timeout: u32,
    /// Seconds all of one server's tests may take; tests not started by then fail.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// h2spec processes at a time against one server (each plays one test).
    #[arg(long, default_value_t = 16)]
    pub jobs: usize,
    /// Times a test is played again when its result contradicts the
    /// baseline (with --update-baseline: every test), to tell a change
    /// from a flaky test.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Seconds a server may take to announce readiness.
    #[arg(long, default_value_t = 60.0)]
    pub ready_timeout: f64,
    /// Do not build or install; use what is already there.
    #[arg(long)]
    pub no_build: bool,
    /// Stream every child's logs to stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Plays h2spec against the selected servers (see [`crate::h2spec`]),
/// prints the summary and writes the JSON asked for.
pub async fn h2spec(
    args: &H2specArgs,
    cancel: CancellationToken,
) -> anyhow::Result<crate::h2spec::H2specReport> {
    let options = || -> anyhow::Result<crate::h2spec::H2specOptions> {
        let root = find_root(args.common.root.as_deref())?;
        let impls = load_impls(&args.common, &root)?;
        let eligible = crate::h2spec::eligible(&impls);
        let chosen = crate::select::Filter::parse("server", args.server.as_deref())?
            .select(eligible.iter().map(|i| i.name.as_str()))?;
        let servers = eligible
            .into_iter()
            .filter(|i| chosen.contains(&i.name.as_str()))
            .cloned()
            .collect();
        if args.jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        // h2spec takes whole seconds; 0 would time every wait out at once.
        if !(1..=60).contains(&args.test_timeout) {
            bail!("--test-timeout must be 1 to 60 seconds");
        }
        Ok(crate::h2spec::H2specOptions {
            baseline_dir: args
                .baseline_dir
                .clone()
                .unwrap_or_else(|| root.join("h2spec")),
            root,
            servers,
            update_baseline: args.update_baseline,
            skip_build: args.no_build,
            jobs: args.jobs,
            test_timeout_secs: args.test_timeout,
            retries: args.retries,
            server_timeout: seconds("timeout", args.timeout)?,
            settings: Settings {
                transport: crate::backend::Transport::Plain,
                ready_timeout: seconds("ready-timeout", args.ready_timeout)?,
                // A cold cargo build of tonic on two cores takes minutes; this
                // only catches a build that hangs.
                build_timeout: Duration::from_secs(40 * 60),
                stop_grace: Duration::from_secs(2),
                verbose: args.verbose,
                soak: crate::manifest::Soak::default(),
            },
        })
    };
    let options = options().map_err(UsageError)?;
    let report = crate::h2spec::run(&options, cancel)
        .await
        .map_err(|e| match e.is_config() {
            true => anyhow::Error::from(UsageError(e.into())),
            false => e.into(),
        })?;
    report.render(&mut std::io::stdout())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        report::write_file(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Clients: comma-separated globs (of the clients with a load mode).
    #[arg(long)]
    pub client: Option<String>,
    /// Servers: comma-separated globs (of the servers of grpc.testing.TestService).
    #[arg(long)]
    pub server: Option<String>,
    /// Loads: `unary`, `ping_pong`, or both, comma-separated.
    #[arg(long, default_value = "unary,ping_pong")]
    pub load: String,
    /// Workers per client, each with one call (or stream) in flight; ghz's --concurrency.
    #[arg(long, default_value_t = 50)]
    pub concurrency: u32,
    /// Connections per client; ghz's --connections.
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Load before each measured window, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// The measured window, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub duration_ms: u64,
    /// Request and response payload size, bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: u32,
    /// Pin each server to this many CPUs (the first the runner may use);
    /// clients and ghz run on the others. 0: pin nothing.
    #[arg(long, default_value_t = 1)]
    pub server_cpus: usize,
    /// Use TLS between clients (and ghz) and servers (test certificates in testdata/tls).
    #[arg(long)]
    pub tls: bool,
    /// Use mutual TLS: servers require and verify client certificates, and
    /// every client and ghz presents one (implies TLS).
    #[arg(long, conflicts_with = "tls")]
    pub mtls: bool,
    /// Leave ghz out.
    #[arg(long)]
    pub no_ghz: bool,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML page with charts to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Seconds a server or client may take to get ready.
    #[arg(long, default_value_t = 60.0)]
    pub ready_timeout: f64,
    /// Do not build or install; use what is already there.
    #[arg(long)]
    pub no_build: bool,
    /// Stream every child's logs to stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Plays the load matrix (see [`crate::bench`]), prints it and writes the
/// reports asked for.
pub async fn bench(
    args: &BenchArgs,
    cancel: CancellationToken,
) -> anyhow::Result<crate::bench::BenchReport> {
    use crate::bench::{self, Load};
    let options = || -> anyhow::Result<bench::BenchOptions> {
        let root = find_root(args.common.root.as_deref())?;
        let impls = load_impls(&args.common, &root)?;
        let pick = |side: &'static str, filter: Option<&str>, eligible: Vec<&Implementation>| {
            let chosen = crate::select::Filter::parse(side, filter)?
                .select(eligible.iter().map(|i| i.name.as_str()))?;
            anyhow::Ok(
                eligible
                    .into_iter()
                    .filter(|i| chosen.contains(&i.name.as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        let clients = pick(
            "client",
            args.client.as_deref(),
            bench::eligible_clients(&impls),
        )?;
        let notes = impls
            .iter()
            .filter(|i| i.client.as_ref().is_some_and(|role| role.load.is_none()))
            .map(|i| {
                format!(
                    "client {} has no load mode (no `load` in its manifest)",
                    i.name
                )
            })
            .collect();
        let servers = pick(
            "server",
            args.server.as_deref(),
            bench::eligible_servers(&impls),
        )?;
        let transport = Transport::from_flags(args.tls, args.mtls);
        let mut notes: Vec<String> = notes;
        let (clients, servers) = if transport == Transport::Mtls {
            // As `interop run --mtls` does: who cannot do mutual TLS sits out.
            let mut keep =
                |side: &str,
                 list: Vec<Implementation>,
                 role: fn(&Implementation) -> Option<&crate::manifest::Role>| {
                    let (can, cannot): (Vec<_>, Vec<_>) = list
                        .into_iter()
                        .partition(|i| role(i).is_some_and(|r| r.mtls.is_some()));
                    notes.extend(cannot.iter().map(|i| {
                        format!(
                            "{side} {} cannot do mutual TLS (no `mtls` in its manifest): left out",
                            i.name
                        )
                    }));
                    can
                };
            let clients = keep("client", clients, |i| i.client.as_ref());
            let servers = keep("server", servers, |i| i.server.as_ref());
            (clients, servers)
        } else {
            (clients, servers)
        };
        let mut loads = Vec::new();
        for name in args.load.split(',').map(str::trim) {
            let load = Load::parse(name).map_err(|e| anyhow::anyhow!("--load: {e}"))?;
            if !loads.contains(&load) {
                loads.push(load);
            }
        }
        if args.concurrency == 0 || args.connections == 0 {
            bail!("--concurrency and --connections must be at least 1");
        }
        if args.connections > args.concurrency {
            bail!("--connections must not exceed --concurrency");
        }
        if args.duration_ms == 0 {
            bail!("--duration-ms must be at least 1");
        }
        if args.payload > 1024 * 1024 {
            bail!("--payload must be at most 1048576 bytes (1 MiB)");
        }
        Ok(bench::BenchOptions {
            root,
            clients,
            servers,
            loads,
            concurrency: args.concurrency,
            connections: args.connections,
            warmup: Duration::from_millis(args.warmup_ms),
            duration: Duration::from_millis(args.duration_ms),
            payload_bytes: args.payload,
            server_cpus: args.server_cpus,
            ghz: !args.no_ghz,
            skip_build: args.no_build,
            notes,
            settings: Settings {
                transport,
                ready_timeout: seconds("ready-timeout", args.ready_timeout)?,
                // A cold cargo build of tonic on two cores takes minutes; this
                // only catches a build that hangs.
                build_timeout: Duration::from_secs(40 * 60),
                stop_grace: Duration::from_secs(2),
                verbose: args.verbose,
                soak: crate::manifest::Soak::default(),
            },
        })
    };
    let options = options().map_err(UsageError)?;
    let report = bench::run(&options, cancel).await;
    report.render(&mut std::io::stdout())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        report::write_file(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        report::write_file(path, report.html().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
