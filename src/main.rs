//! `interop`: see `interop --help`. Exit status: 0 every cell passed (or is
//! unsupported, or a known failure that still fails); 1 some cell did not;
//! 2 bad usage or configuration; 130 interrupted (results printed are partial).

use clap::Parser;
use grpc_interop::app::{
    self, Cli, Command, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
};
use grpc_interop::runner::Summary;
use tokio_util::sync::CancellationToken;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(real_main(cli)),
        Err(e) => {
            eprintln!("interop: cannot start the async runtime: {e}");
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}

async fn real_main(cli: Cli) -> i32 {
    match cli.command {
        Command::List(common) => match app::list(&common, &mut std::io::stdout()) {
            Ok(()) => EXIT_OK,
            Err(e) => error_status(&e),
        },
        Command::Run(args) => {
            let cancel = CancellationToken::new();
            watch_signals(cancel.clone());
            finish(app::run(&args, cancel).await)
        }
        Command::Collect(args) => {
            let cancel = CancellationToken::new();
            watch_signals(cancel.clone());
            finish(app::collect(&args, cancel).await)
        }
        Command::Mutants(args) => {
            let cancel = CancellationToken::new();
            watch_signals(cancel.clone());
            match app::mutants(&args, cancel).await {
                Ok(table) if table.interrupted => EXIT_INTERRUPTED,
                Ok(table) if table.ok() => EXIT_OK,
                Ok(_) => EXIT_FAILED,
                Err(e) => error_status(&e),
            }
        }
        Command::Bench(args) => {
            let cancel = CancellationToken::new();
            watch_signals(cancel.clone());
            match app::bench(&args, cancel).await {
                Ok(report) if report.interrupted => EXIT_INTERRUPTED,
                Ok(report) if report.ok() => EXIT_OK,
                Ok(_) => EXIT_FAILED,
                Err(e) => error_status(&e),
            }
        }
        Command::H2spec(args) => {
            let cancel = CancellationToken::new();
            watch_signals(cancel.clone());
            match app::h2spec(&args, cancel).await {
                Ok(report) if report.interrupted => EXIT_INTERRUPTED,
                Ok(report) if report.ok() => EXIT_OK,
                Ok(_) => EXIT_FAILED,
                Err(e) => error_status(&e),
            }
        }
    }
}

/// The exit status of a run or collect, after printing what went wrong.
fn finish(result: anyhow::Result<(Summary, Vec<String>)>) -> i32 {
    match result {
        Ok((summary, reporter_errors)) => {
            for e in &reporter_errors {
                eprintln!("interop: report error: {e}");
            }
            if summary.interrupted {
                EXIT_INTERRUPTED
            } else if summary.ok() && reporter_errors.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => error_status(&e),
    }
}

/// Prints what went wrong; usage errors exit 2, the rest 1.
fn error_status(e: &anyhow::Error) -> i32 {
    eprintln!("interop: {e:#}");
    if e.is::<UsageError>() {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// First SIGINT/SIGTERM: stop children gracefully and report what finished.
/// Second: kill every child group now and exit.
fn watch_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("interop: cannot watch signals; Ctrl-C will kill without a report");
            return;
        };
        for round in 0..2 {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if round == 0 {
                eprintln!(
                    "\ninterop: interrupted: stopping every process and reporting what finished (again to kill at once)"
                );
                cancel.cancel();
            } else {
                grpc_interop::process::kill_all_now();
                eprintln!("interop: killed");
                std::process::exit(EXIT_INTERRUPTED);
            }
        }
    });
}
