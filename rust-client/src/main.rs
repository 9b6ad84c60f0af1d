//! `rust-client`: the command line of the Rust interop client (see implementations/CONTRACT.md).
//!
//! Exit status: 0 when no case failed, 1 when one did, 2 on bad usage or setup
//! (unknown case, unreadable CA file), with one line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use grpc_interop::cases::Case;
use rust_client::{ClientOptions, Clients, Outcome, ResultSink, TlsOptions, run_case};
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
    /// One case, a comma-separated list, or `all`.
    #[arg(long = "test_case", default_value = "all")]
    test_case: String,
    /// Connect with TLS (`--use_tls`, `--use_tls=true`, `--use_tls=false`).
    #[arg(long = "use_tls", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_tls: bool,
    /// Name for TLS server name indication and certificate verification.
    #[arg(long = "server_host_override", default_value = "foo.test.google.fr")]
    server_host_override: String,
    /// CA certificate to trust (default `$INTEROP_TLS_DIR/ca.pem`).
    #[arg(long = "tls_ca_file")]
    tls_ca_file: Option<PathBuf>,
    /// Also write every result line to this file (created or truncated), then
    /// `{"event":"done","cases":N}`.
    #[arg(long = "result_file")]
    result_file: Option<PathBuf>,
}

type Stdout = std::io::Stdout;

/// Everything decided before the first case runs; any error here is exit 2.
fn setup(args: &Args) -> anyhow::Result<(Vec<Case>, ClientOptions, ResultSink<Stdout>)> {
    let cases = Case::parse_list(&args.test_case).map_err(anyhow::Error::msg)?;
    let tls = if args.use_tls {
        let ca = match (&args.tls_ca_file, std::env::var_os("INTEROP_TLS_DIR")) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => PathBuf::from(dir).join("ca.pem"),
            (None, None) => anyhow::bail!("--use_tls needs --tls_ca_file or INTEROP_TLS_DIR"),
        };
        let ca_pem =
            std::fs::read(&ca).with_context(|| format!("cannot read CA file {}", ca.display()))?;
        Some(TlsOptions {
            ca_pem,
            server_name: args.server_host_override.clone(),
        })
    } else {
        None
    };
    // Last, so a usage error above leaves an existing file alone.
    let sink = ResultSink::open(std::io::stdout(), args.result_file.as_deref())?;
    Ok((
        cases,
        ClientOptions {
            host: args.server_host.clone(),
            port: args.server_port,
            tls,
        },
        sink,
    ))
}

async fn run(cases: Vec<Case>, options: ClientOptions, mut sink: ResultSink<Stdout>) -> ExitCode {
    let channel = match options.channel() {
        Ok(channel) => channel,
        Err(error) => {
            eprintln!("rust-client: {:#}", anyhow::Error::from(error));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let clients = Clients::new(channel);
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
    let (cases, options, sink) = match setup(&args) {
        Ok(setup) => setup,
        Err(error) => {
            eprintln!("rust-client: {error:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(cases, options, sink)),
        Err(error) => {
            eprintln!("rust-client: cannot start the tokio runtime: {error}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
