//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use grpc_interop::backend::native::Native;
use grpc_interop::backend::{Backend, Settings, Transport};
use grpc_interop::baselines::Baselines;
use grpc_interop::manifest::{self, Implementation};
use grpc_interop::model::{CellResult, Event, Reporter};
use grpc_interop::runner::{self, Options, Sink, Summary};
use grpc_interop::select::{KnownFailures, Plan, Selection};
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped manifests.
pub fn impls() -> Vec<Implementation> {
    manifest::load_dir(&root().join("implementations")).expect("shipped manifests load")
}

/// Tests that start processes run one at a time: the machine has two cores,
/// and the leftover-process checks need to know every process is theirs.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn settings(tls: bool) -> Settings {
    settings_over(if tls {
        Transport::Tls
    } else {
        Transport::Plain
    })
}

pub fn settings_over(transport: Transport) -> Settings {
    Settings {
        transport,
        ready_timeout: Duration::from_secs(60),
        build_timeout: Duration::from_secs(40 * 60),
        stop_grace: Duration::from_secs(2),
        verbose: false,
        soak: grpc_interop::manifest::Soak::default(),
    }
}

/// Builds every shipped implementation once per test binary; panics with
/// the build's output when a build fails.
pub fn ensure_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        // A thread of its own: the caller may be inside a test's runtime.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let backend = Native::new(&root(), settings(false));
                for imp in impls() {
                    backend.prepare(&imp).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the build thread panicked".to_string()))
    });
    if let Err(e) = result {
        panic!("building the implementations failed:\n{e}");
    }
}

/// Collects every event, for assertions on what reporters see.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Event>>>);

impl Reporter for Recorder {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Runs `plan` natively with prebuilt implementations.
pub async fn run_native(
    impls: &[Implementation],
    selection: Selection,
    opts: Options,
    tls: bool,
    extra: Vec<Box<dyn Reporter>>,
) -> Summary {
    let transport = if tls {
        Transport::Tls
    } else {
        Transport::Plain
    };
    run_native_over(impls, selection, opts, transport, extra).await
}

/// Runs `plan` natively over `transport`, with the shipped baselines.
pub async fn run_native_over(
    impls: &[Implementation],
    selection: Selection,
    opts: Options,
    transport: Transport,
    extra: Vec<Box<dyn Reporter>>,
) -> Summary {
    let plan = Plan::new(impls, &selection).expect("valid selection");
    let backend: Arc<dyn Backend> = Arc::new(Native::new(&root(), settings_over(transport)));
    let sink = Arc::new(Sink::new(extra, known_failures()));
    let opts = Options {
        transport,
        baselines: Baselines::load(&root().join(grpc_interop::baselines::FILE))
            .expect("the baselines load"),
        ..opts
    };
    runner::run(backend, impls, &plan, &opts, sink, CancellationToken::new()).await
}

/// The shipped known-failures.toml.
pub fn known_failures() -> KnownFailures {
    KnownFailures::load(&root().join("known-failures.toml")).expect("known-failures.toml loads")
}

pub fn prebuilt() -> Options {
    Options {
        skip_build: true,
        ..Options::default()
    }
}

/// Text listing the cells that count against the verdict, for assertion messages.
pub fn describe_problems(results: &[CellResult]) -> String {
    results
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| {
            format!(
                "{} {}: {}\n  {}",
                r.id,
                r.tag(),
                r.message,
                r.logs.join("\n  ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Processes whose command line mentions the project's built programs.
pub fn leftover_processes() -> Vec<String> {
    let root = root();
    let markers: Vec<String> = [
        "target/interop/go/",
        "target/release/rust-server",
        "target/release/rust-client",
        "target/release/lying-server",
        "python/interop_server.py",
        "python/interop_client.py",
        "target/interop/ghz/",
    ]
    .iter()
    .map(|m| root.join(m).display().to_string())
    .collect();
    processes()
        .into_iter()
        .map(|(pid, cmdline)| (pid, cmdline.replace('\0', " ")))
        .filter(|(_, cmd)| markers.iter().any(|m| cmd.contains(m.as_str())))
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect()
}

/// Every other process with its raw command line (arguments separated by
/// NUL). A zombie has an empty command line and is already dead.
pub fn processes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (pid != me).then(|| (pid, String::from_utf8_lossy(&cmdline).into_owned()))
        })
        .collect()
}

/// Waits briefly for processes to disappear, then asserts none is left.
pub fn assert_no_leftovers() {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftover_processes();
        if left.is_empty() {
            return;
        }
        if std::time::Instant::now() > until {
            panic!("processes left behind:\n{}", left.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `interop` binary with `args` and `env` from the repository root,
/// draining its output; past `limit` it gets SIGTERM (so it stops what it
/// started), then SIGKILL, and the test fails.
pub fn run_interop(args: &[&str], limit: Duration, env: &[(&str, &str)]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_interop"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("interop starts");
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let out_t = drain(child.stdout.take().unwrap());
    let err_t = drain(child.stderr.take().unwrap());
    let until = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!("interop {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe.read_to_end(&mut v);
        v
    })
}

/// A finished run's exit status and output, for a failure message.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
