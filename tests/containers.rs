//! The matrix in containers, for real: the testcontainers backend and the
//! docker compose run give the same outcomes as the native backend, and leave
//! nothing of the project behind, also after the runner is killed.
//!
//! These tests need a Docker engine. Without one they fail and say what to
//! install; they never pass silently.

// Each test holds the serial lock for its whole run, awaits included: it
// has a runtime of its own, so nothing else on that runtime waits for it.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use grpc_interop::backend::Backend;
use grpc_interop::backend::docker::{Docker, LABEL};
use grpc_interop::cases::CaseGroup;
use grpc_interop::model::{Accepts, CellId, Outcome};
use grpc_interop::runner::{self, Sink, Summary};
use grpc_interop::select::{KnownFailures, Plan, Selection};
use testcontainers::bollard;
use tokio_util::sync::CancellationToken;

/// Label of everything the compose file creates.
const COMPOSE_LABEL: &str = "com.polyglot-grpc-interop=compose";

fn api() -> bollard::Docker {
    bollard::Docker::connect_with_defaults().expect("docker client")
}

async fn require_docker() {
    if let Err(e) = api().ping().await {
        panic!(
            "no Docker engine answers ({e}): install one (Debian: apt-get install docker.io, then start dockerd; \
             scripts/setup-machine.sh does both) to run the container tests"
        );
    }
}

async fn docker_backend() -> Arc<Docker> {
    require_docker().await;
    Arc::new(
        Docker::connect(&root(), settings(false))
            .await
            .expect("docker backend connects"),
    )
}

/// Builds every implementation's image once per test binary.
async fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if BUILT.get().is_none() {
        let backend = docker_backend().await;
        let mut result = Ok(());
        for imp in docker_impls() {
            if let Err(e) = backend.prepare(&imp).await {
                result = Err(e.to_string());
                break;
            }
        }
        backend.finish().await;
        let _ = BUILT.set(result);
    }
    if let Some(Err(e)) = BUILT.get() {
        panic!("building the images failed:\n{e}");
    }
}

/// Containers and networks carrying `label` (`key` or `key=value`).
async fn labelled(label: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let api = api();
    let mut found: Vec<String> = api
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("container {:?}", c.names.unwrap_or_default()))
        .collect();
    found.extend(
        api.list_networks(Some(bollard::query_parameters::ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|n| format!("network {:?}", n.name.unwrap_or_default())),
    );
    found
}

/// The implementations with an image: the fixtures (the bad server and the
/// bad client) run natively only.
fn docker_impls() -> Vec<grpc_interop::manifest::Implementation> {
    impls().into_iter().filter(|i| i.docker.is_some()).collect()
}

async fn native_outcomes() -> BTreeMap<CellId, Option<Outcome>> {
    ensure_built();
    let summary = run_native(
        &docker_impls(),
        Selection::default(),
        prebuilt(),
        false,
        vec![],
    )
    .await;
    outcomes(&summary)
}

/// The outcome of every cell; `None` for a race (either outcome is right).
fn outcomes(summary: &Summary) -> BTreeMap<CellId, Option<Outcome>> {
    summary
        .results
        .iter()
        .map(|r| {
            let race = r
                .known_failure
                .as_ref()
                .is_some_and(|k| k.accepts == Accepts::Race);
            (r.id.clone(), (!race).then_some(r.outcome))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_backend_plays_the_same_matrix_as_native_and_cleans_up() {
    let _serial = serial();
    ensure_images().await;
    let native = native_outcomes().await;

    let impls = docker_impls();
    let plan = Plan::new(&impls, &Selection::default()).unwrap();
    let backend = docker_backend().await;
    let sink = Arc::new(Sink::new(vec![], known_failures()));
    let summary = runner::run(
        backend,
        &impls,
        &plan,
        &prebuilt(),
        sink,
        CancellationToken::new(),
    )
    .await;

    // 4 × 4 × 24 cases of the default groups, and the tls group of our
    // three clients against our three servers, over mTLS in containers.
    assert_eq!(summary.results.len(), 4 * 4 * 24 + 3 * 3 * 5);
    let problems = describe_problems(&summary.results);
    assert!(
        problems.is_empty(),
        "container cells that did not pass:\n{problems}"
    );
    assert_eq!(
        outcomes(&summary),
        native,
        "docker and native outcomes differ"
    );
    let left = labelled(LABEL).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_killed_runner_are_removed_by_the_next_run() {
    let _serial = serial();
    ensure_images().await;
    let mut runner = Command::new(env!("CARGO_BIN_EXE_interop"))
        .args([
            "run",
            "--backend",
            "docker",
            "--no-build",
            "--process-per-case",
            "--jobs",
            "1",
        ])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has servers running, then kill it without a chance to clean up.
    let until = Instant::now() + Duration::from_secs(120);
    let mut mine = Vec::new();
    while Instant::now() < until {
        mine = labelled(LABEL)
            .await
            .into_iter()
            .filter(|c| c.starts_with("container"))
            .collect();
        if mine.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(
        mine.len() >= 3,
        "the runner started no containers: {mine:?}"
    );
    assert!(
        !labelled(LABEL).await.is_empty(),
        "SIGKILL leaves containers behind"
    );

    // The next run removes them before it starts, and its own when it ends.
    let impls = impls();
    let selection = Selection {
        clients: Some("go".into()),
        servers: Some("go".into()),
        cases: Some("greeter_unary".into()),
        ..Default::default()
    };
    let plan = Plan::new(&impls, &selection).unwrap();
    let backend = docker_backend().await;
    let sink = Arc::new(Sink::new(vec![], KnownFailures::default()));
    let summary = runner::run(
        backend,
        &impls,
        &plan,
        &prebuilt(),
        sink,
        CancellationToken::new(),
    )
    .await;
    assert!(summary.ok(), "{}", describe_problems(&summary.results));
    let left = labelled(LABEL).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_plays_the_matrix_with_the_native_outcomes_and_cleans_up() {
    let _serial = serial();
    ensure_images().await;
    // Compose plays the default groups (the tls group runs with a backend).
    let native: BTreeMap<CellId, Option<Outcome>> = native_outcomes()
        .await
        .into_iter()
        .filter(|(id, _)| CaseGroup::DEFAULT.contains(&id.case.group()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("compose.json");
    // The images exist (built above); the script must not rebuild them with another builder.
    let mut child = tokio::process::Command::new("bash")
        .args(["scripts/compose-matrix.sh", "--no-build"])
        .env("INTEROP_COMPOSE_JSON", &json)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut r = r;
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
            s
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    // The compose run bounds itself; this bound only turns a hang into a failure.
    let status = tokio::time::timeout(Duration::from_secs(900), child.wait())
        .await
        .expect("compose run ends")
        .unwrap();
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    assert!(
        status.success(),
        "compose run failed ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("verdict: PASS"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("compose JSON report"))
            .unwrap();
    // The exit statuses of the client containers were checked; the one
    // note says which groups the containers play.
    let notes = report["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .contains("greeter, interop and soak"),
        "{notes:?}"
    );
    let compose: BTreeMap<CellId, Option<Outcome>> = report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = CellId {
                client: c["client"].as_str().unwrap().to_string(),
                server: c["server"].as_str().unwrap().to_string(),
                case: c["case"].as_str().unwrap().parse().unwrap(),
            };
            let outcome: Outcome = serde_json::from_value(c["outcome"].clone()).unwrap();
            let race = c["known_failure"]["accepts"] == "race";
            (id, (!race).then_some(outcome))
        })
        .collect();
    assert_eq!(compose, native, "compose and native outcomes differ");
    let left = labelled(COMPOSE_LABEL).await;
    assert!(
        left.is_empty(),
        "compose left behind: {left:?}\nthe compose run's log:\n{err}"
    );
}
