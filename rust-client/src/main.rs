//! `rust-client`: the command line of the Rust interop client (see implementations/CONTRACT.md).
//!
//! Exit status: 0 when no case failed, 1 when one did, 2 on bad usage or setup
//! (unknown case, unreadable CA file), with one line on stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use grpc_interop::cases::{Case, CaseGroup};
use rust_client::load::{Load, LoadOptions, run_load};
use rust_client::{
    ClientOptions, Clients, Outcome, ResultSink, SoakOptions, TlsCaseFiles, TlsOptions, run_case,
};
use tracing_subscriber::EnvFilter;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// gRPC interop client on tonic.
#[derive(Debug, Parser)]
#[command(name = "rust-client", version)]
struct Args {
    /// Host to connect to.
    #[arg(long = "server_host", default_value = "localhost")]
    server_host: String,
    /// Port to connect to.
    #[arg(long = "server_port")]
    server_port: u16,
    /// One case, a comma-separated list, or `all` (the default).
    #[arg(long = "test_case")]
    test_case: Option<String>,
    /// Connect with TLS (`--use_tls`, `--use_tls=true`, `--use_tls=false`).
    #[arg(long = "use_tls", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_tls: bool,
    /// With --use_tls, trust only the CA of --ca_file instead of the system's roots.
    #[arg(long = "use_test_ca", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_test_ca: bool,
    /// The CA --use_test_ca trusts (default `$INTEROP_TLS_DIR/ca.pem`).
    #[arg(long = "ca_file")]
    ca_file: Option<PathBuf>,
    /// Name for TLS server name indication and certificate verification
    /// (default: --server_host).
    #[arg(long = "server_host_override", default_value = "")]
    server_host_override: String,
    /// With --use_tls, present a client certificate (mutual TLS).
    #[arg(long = "use_client_cert", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_client_cert: bool,
    /// The certificate chain --use_client_cert presents (default `$INTEROP_TLS_DIR/client.pem`).
    #[arg(long = "client_cert_file")]
    client_cert_file: Option<PathBuf>,
    /// Its key (default `$INTEROP_TLS_DIR/client.key`).
    #[arg(long = "client_key_file")]
    client_key_file: Option<PathBuf>,
    /// rpc_soak, channel_soak: how many RPCs.
    #[arg(long = "soak_iterations", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    soak_iterations: u32,
    /// How many of them may fail.
    #[arg(long = "soak_max_failures", default_value_t = 0)]
    soak_max_failures: u32,
    /// An RPC slower than this (milliseconds) fails its iteration.
    #[arg(
        long = "soak_per_iteration_max_acceptable_latency_ms",
        default_value_t = 1000
    )]
    soak_per_iteration_max_acceptable_latency_ms: u64,
    /// The case stops, failing, when this has passed (seconds).
    #[arg(long = "soak_overall_timeout_seconds", default_value_t = 10)]
    soak_overall_timeout_seconds: u64,
    /// An iteration starts at least this long (milliseconds) after its worker's previous one.
    #[arg(long = "soak_min_time_ms_between_rpcs", default_value_t = 0)]
    soak_min_time_ms_between_rpcs: u64,
    /// Workers, each running soak_iterations / soak_num_threads iterations.
    #[arg(long = "soak_num_threads", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    soak_num_threads: u32,
    /// Also write every result line to this file (created or truncated), then
    /// `{"event":"done","cases":N}`.
    #[arg(long = "result_file")]
    result_file: Option<PathBuf>,
    /// Play a load instead of cases: `unary` or `ping_pong`.
    #[arg(long = "load")]
    load: Option<String>,
    /// Load: workers, each with one call or stream in flight.
    #[arg(long = "load_concurrency", default_value_t = 50)]
    load_concurrency: usize,
    /// Load: channels, each its own connection.
    #[arg(long = "load_connections", default_value_t = 1)]
    load_connections: usize,
    /// Load: milliseconds of load before the measured window.
    #[arg(long = "load_warmup_ms", default_value_t = 1000)]
    load_warmup_ms: u64,
    /// Load: the measured window, in milliseconds.
    #[arg(long = "load_duration_ms", default_value_t = 5000)]
    load_duration_ms: u64,
    /// Load: request and response payload size in bytes.
    #[arg(long = "load_payload_bytes", default_value_t = 100)]
    load_payload_bytes: usize,
}

type Stdout = std::io::Stdout;

/// Everything decided before the first case runs; any error here is exit 2.
struct Setup {
    cases: Vec<Case>,
    load: Option<LoadOptions>,
    options: ClientOptions,
    soak: SoakOptions,
    sink: ResultSink<Stdout>,
}

fn setup(args: &Args) -> anyhow::Result<Setup> {
    let load = match &args.load {
        None => None,
        Some(_) if args.test_case.is_some() => {
            anyhow::bail!("--load plays a load instead of cases: leave out --test_case")
        }
        Some(name) => {
            let options = LoadOptions {
                load: Load::parse(name).map_err(anyhow::Error::msg)?,
                concurrency: args.load_concurrency,
                connections: args.load_connections,
                warmup: Duration::from_millis(args.load_warmup_ms),
                duration: Duration::from_millis(args.load_duration_ms),
                payload_bytes: args.load_payload_bytes,
            };
            options.validate().map_err(anyhow::Error::msg)?;
            Some(options)
        }
    };
    let cases =
        Case::parse_list(args.test_case.as_deref().unwrap_or("all")).map_err(anyhow::Error::msg)?;
    if let Some(case) = cases.iter().find(|c| c.group() == CaseGroup::BadInput) {
        anyhow::bail!("{case} is a bad_input case: the bad client plays those, not this client");
    }
    if !args.soak_iterations.is_multiple_of(args.soak_num_threads) {
        anyhow::bail!("--soak_iterations must be a multiple of --soak_num_threads");
    }
    let tls_dir = std::env::var_os("INTEROP_TLS_DIR").map(PathBuf::from);
    let in_tls_dir = |given: &Option<PathBuf>, name: &str| {
        given
            .clone()
            .or_else(|| tls_dir.as_ref().map(|dir| dir.join(name)))
    };
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
    };
    let server_name = if args.server_host_override.is_empty() {
        args.server_host.clone()
    } else {
        args.server_host_override.clone()
    };
    let client_cert = match (
        in_tls_dir(&args.client_cert_file, "client.pem"),
        in_tls_dir(&args.client_key_file, "client.key"),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        _ => None,
    };
    let tls = if args.use_tls {
        let ca_pem = if args.use_test_ca {
            let Some(ca) = in_tls_dir(&args.ca_file, "ca.pem") else {
                anyhow::bail!("--use_test_ca needs --ca_file or INTEROP_TLS_DIR");
            };
            Some(read(&ca, "CA file")?)
        } else {
            None
        };
        let identity = if args.use_client_cert {
            let Some((cert, key)) = &client_cert else {
                anyhow::bail!(
                    "--use_client_cert needs --client_cert_file and --client_key_file, or INTEROP_TLS_DIR"
                );
            };
            Some((read(cert, "client certificate")?, read(key, "client key")?))
        } else {
            None
        };
        Some(TlsOptions {
            ca_pem,
            server_name: server_name.clone(),
            identity,
        })
    } else {
        None
    };
    let tls_cases = TlsCaseFiles {
        ca: in_tls_dir(&args.ca_file, "ca.pem"),
        server_name,
        client_cert,
        dir: tls_dir.clone(),
    };
    let soak = SoakOptions {
        iterations: args.soak_iterations,
        max_failures: args.soak_max_failures,
        per_iteration_max_acceptable_latency: Duration::from_millis(
            args.soak_per_iteration_max_acceptable_latency_ms,
        ),
        overall_timeout: Duration::from_secs(args.soak_overall_timeout_seconds),
        min_time_between_rpcs: Duration::from_millis(args.soak_min_time_ms_between_rpcs),
        num_threads: args.soak_num_threads,
    };
    // Last, so a usage error above leaves an existing file alone.
    let sink = ResultSink::open(std::io::stdout(), args.result_file.as_deref())?;
    Ok(Setup {
        cases,
        load,
        options: ClientOptions {
            host: args.server_host.clone(),
            port: args.server_port,
            tls,
            tls_cases,
        },
        soak,
        sink,
    })
}

async fn run(setup: Setup) -> ExitCode {
    let Setup {
        cases,
        load,
        options,
        soak,
        mut sink,
    } = setup;
    if let Some(load) = load {
        return play_load(&options, &load).await;
    }
    let clients = match Clients::connect(&options, soak) {
        Ok(clients) => clients,
        Err(error) => {
            eprintln!("rust-client: {:#}", anyhow::Error::from(error));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(error) = sink.ready() {
        eprintln!("rust-client: cannot write results: {error}");
        return ExitCode::from(EXIT_FAILED);
    }
    let mut any_failed = false;
    for case in cases {
        let result = run_case(&clients, case).await;
        any_failed |= result.outcome == Outcome::Failed;
        if let Err(error) = sink.result(&result) {
            eprintln!("rust-client: cannot write results: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    if let Err(error) = sink.finish() {
        eprintln!("rust-client: cannot finish the result file: {error}");
        return ExitCode::from(EXIT_FAILED);
    }
    if any_failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--load`: the ready line, the load, its one line.
async fn play_load(options: &ClientOptions, load: &LoadOptions) -> ExitCode {
    let ready = || {
        println!("{{\"event\":\"ready\"}}");
    };
    match run_load(options, load, ready).await {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", report.json_line()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rust-client: cannot write the load line: {error}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        Err(error) => {
            eprintln!("rust-client: {:#}", anyhow::Error::from(error));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let text = error.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("rust-client: {}", line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let setup = match setup(&args) {
        Ok(setup) => setup,
        Err(error) => {
            eprintln!("rust-client: {error:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(setup)),
        Err(error) => {
            eprintln!("rust-client: cannot start the tokio runtime: {error}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
