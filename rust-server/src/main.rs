//! `rust-server`: the command line of the Rust interop server (see implementations/CONTRACT.md).
//!
//! Exit status: 0 after SIGTERM/SIGINT, 2 on bad flags or when the port cannot
//! be bound (one line on stderr), 1 if serving fails afterwards.
//!
//! `--health_check` does not serve: it asks the server already running on
//! `--port` for its health and exits 0 when it answers SERVING, 1 otherwise
//! (the contract of a Docker HEALTHCHECK command).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use rust_server::{
    HEALTH_CHECK_DEADLINE, HealthCheckTls, ServerOptions, bind, health_check, load_identity,
    readiness_line, serve,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// After SIGTERM/SIGINT, open calls get this long to finish; then the server
/// exits anyway, so a stuck client cannot hold up the runner.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Exit status for bad flags and setup errors.
const EXIT_USAGE: u8 = 2;
/// Exit status when serving fails after start-up.
const EXIT_FAILURE: u8 = 1;

/// gRPC interop server on tonic.
#[derive(Debug, Parser)]
#[command(name = "rust-server", version)]
struct Args {
    /// TCP port to listen on, on all interfaces; 0 picks a free one.
    #[arg(long = "port", default_value_t = 0)]
    port: u16,
    /// Serve TLS (`--use_tls`, `--use_tls=true`, `--use_tls=false`).
    #[arg(long = "use_tls", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_tls: bool,
    /// Certificate chain (default `$INTEROP_TLS_DIR/server.pem`).
    #[arg(long = "tls_cert_file")]
    tls_cert_file: Option<PathBuf>,
    /// Private key (default `$INTEROP_TLS_DIR/server.key`).
    #[arg(long = "tls_key_file")]
    tls_key_file: Option<PathBuf>,
    /// With --use_tls: require a client certificate chaining to --client_ca_file (mutual TLS).
    #[arg(long = "require_client_cert", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    require_client_cert: bool,
    /// The CA client certificates must chain to (default `$INTEROP_TLS_DIR/ca.pem`).
    #[arg(long = "client_ca_file")]
    client_ca_file: Option<PathBuf>,
    /// `--health_check --use_tls`: present a client certificate.
    #[arg(long = "use_client_cert", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    use_client_cert: bool,
    /// The certificate chain --use_client_cert presents (default `$INTEROP_TLS_DIR/client.pem`).
    #[arg(long = "client_cert_file")]
    client_cert_file: Option<PathBuf>,
    /// Its key (default `$INTEROP_TLS_DIR/client.key`).
    #[arg(long = "client_key_file")]
    client_key_file: Option<PathBuf>,
    /// First word of every Greeter reply.
    #[arg(long = "greeting", default_value = "Hello")]
    greeting: String,
    /// Do not serve: check the health of the server on `--port` of 127.0.0.1.
    #[arg(long = "health_check", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = ArgAction::Set)]
    health_check: bool,
    /// CA trusted by `--health_check --use_tls` (default `$INTEROP_TLS_DIR/ca.pem`).
    #[arg(long = "tls_ca_file")]
    tls_ca_file: Option<PathBuf>,
    /// Server name checked by `--health_check --use_tls`.
    #[arg(long = "server_host_override", default_value = "foo.test.google.fr")]
    server_host_override: String,
}

/// `--flag` if given, else `$INTEROP_TLS_DIR/<file>`.
fn tls_path(flag: Option<PathBuf>, flag_name: &str, file: &str) -> anyhow::Result<PathBuf> {
    match (flag, std::env::var_os("INTEROP_TLS_DIR")) {
        (Some(path), _) => Ok(path),
        (None, Some(dir)) => Ok(PathBuf::from(dir).join(file)),
        (None, None) => anyhow::bail!("--use_tls needs {flag_name} or INTEROP_TLS_DIR"),
    }
}

fn options(args: &Args) -> anyhow::Result<ServerOptions> {
    let tls = if args.use_tls {
        let cert = tls_path(args.tls_cert_file.clone(), "--tls_cert_file", "server.pem")?;
        let key = tls_path(args.tls_key_file.clone(), "--tls_key_file", "server.key")?;
        Some(load_identity(&cert, &key)?)
    } else {
        None
    };
    let client_ca = if args.use_tls && args.require_client_cert {
        let ca = tls_path(args.client_ca_file.clone(), "--client_ca_file", "ca.pem")?;
        let pem = std::fs::read(&ca)
            .with_context(|| format!("cannot read client CA file {}", ca.display()))?;
        Some(tonic::transport::Certificate::from_pem(pem))
    } else {
        None
    };
    Ok(ServerOptions {
        greeting: args.greeting.clone(),
        tls,
        client_ca,
    })
}

/// `--health_check`: one line on stdout (`SERVING`, another status, or why no
/// status came back); exit 0 only for SERVING. Every failure of the check
/// itself is 1, the unhealthy status of a Docker HEALTHCHECK.
async fn check(args: &Args) -> ExitCode {
    let tls = if args.use_tls {
        let read = |flag: Option<PathBuf>, name: &str, file: &str, what: &str| {
            tls_path(flag, name, file).and_then(|path| {
                std::fs::read(&path)
                    .with_context(|| format!("cannot read {what} {}", path.display()))
            })
        };
        let loaded = read(
            args.tls_ca_file.clone(),
            "--tls_ca_file",
            "ca.pem",
            "CA file",
        )
        .and_then(|ca_pem| {
            let identity = if args.use_client_cert {
                Some((
                    read(
                        args.client_cert_file.clone(),
                        "--client_cert_file",
                        "client.pem",
                        "client certificate",
                    )?,
                    read(
                        args.client_key_file.clone(),
                        "--client_key_file",
                        "client.key",
                        "client key",
                    )?,
                ))
            } else {
                None
            };
            Ok((ca_pem, identity))
        });
        match loaded {
            Ok((ca_pem, identity)) => Some(HealthCheckTls {
                ca_pem,
                server_name: args.server_host_override.clone(),
                identity,
            }),
            Err(error) => {
                println!("{error:#}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        None
    };
    match health_check(args.port, tls.as_ref(), HEALTH_CHECK_DEADLINE).await {
        Ok(status) => {
            println!("{}", status.as_str_name());
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(error) => {
            println!("{}", error.to_string().replace('\n', " "));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT, with the signal's name.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

async fn run(args: Args) -> ExitCode {
    let started = (|| {
        let options = options(&args)?;
        let listener = bind(args.port)?;
        let port = listener
            .local_addr()
            .context("cannot read the bound port")?
            .port();
        // Handlers go in before readiness is announced, so an early SIGTERM is graceful too.
        let signal = shutdown_signal()?;
        anyhow::Ok((options, listener, port, signal))
    })();
    let (options, listener, port, signal) = match started {
        Ok(started) => started,
        Err(error) => {
            eprintln!("rust-server: {error:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let tls = options.tls.is_some();
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", readiness_line(port, tls))
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("rust-server: cannot write the readiness line to stdout");
        return ExitCode::from(EXIT_FAILURE);
    }
    drop(stdout);
    tracing::info!(port, tls, "listening");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = serve(listener, options, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            return match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("rust-server: {:#}", anyhow::Error::from(error));
                    ExitCode::from(EXIT_FAILURE)
                }
            };
        }
        name = signal => tracing::info!(signal = name, "shutting down"),
    }
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("rust-server: {:#}", anyhow::Error::from(error));
            ExitCode::from(EXIT_FAILURE)
        }
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still open after the grace period; exiting anyway");
            ExitCode::SUCCESS
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
            eprintln!("rust-server: {}", line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.health_check && args.port == 0 {
        eprintln!("rust-server: --health_check needs --port of the running server");
        return ExitCode::from(EXIT_USAGE);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) if args.health_check => runtime.block_on(check(&args)),
        Ok(runtime) => runtime.block_on(run(args)),
        Err(error) => {
            eprintln!("rust-server: cannot start the tokio runtime: {error}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
