//! `interop h2spec` for real: h2spec against every native server that
//! serves grpc.testing.TestService, compared with the committed baselines
//! in h2spec/; and the comparison shown to catch a baseline that lies.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{output_text as text, root, run_interop, serial};
use grpc_interop::h2spec::{Baseline, BaselineEntry, SECTIONS, parse_listing};
use serde_json::Value;

/// The variable that marks every process one `interop` run started (its
/// children inherit it), so leftovers are found among other people's
/// servers on the same machine.
const MARK: &str = "INTEROP_H2SPEC_TEST_RUN";

/// Runs `interop` with `args` from the repository root, killed after
/// `limit`; then checks that nothing it started is still running.
fn interop(args: &[&str], limit: Duration) -> Output {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let mark = format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let out = run_marked(args, limit, &mark);
    assert_nothing_left(&mark);
    out
}

fn run_marked(args: &[&str], limit: Duration, mark: &str) -> Output {
    run_interop(args, limit, &[(MARK, mark)])
}

/// Processes that carry `mark` in their environment: servers, h2spec
/// processes and builds that one run left behind.
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("{MARK}={mark}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            // Unreadable (gone, or not ours) or empty (a zombie): not running.
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let marked = environ.split(|b| *b == 0).any(|v| v == needle.as_bytes());
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            marked.then(|| {
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
        })
        .collect()
}

/// Waits briefly for the run's processes to disappear, then asserts none is left.
fn assert_nothing_left(mark: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = marked_processes(mark);
        if left.is_empty() {
            return;
        }
        if Instant::now() > until {
            panic!("processes left behind:\n{}", left.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every test of h2spec's sections, from its dry run (installs it first).
fn listing() -> Vec<grpc_interop::h2spec::TestInfo> {
    let install = Command::new("bash")
        .arg(root().join("scripts/h2spec.sh"))
        .output()
        .expect("bash runs");
    assert!(install.status.success(), "{}", text(&install));
    let mut tests = Vec::new();
    for section in SECTIONS {
        let out = Command::new(root().join("target/interop/h2spec/h2spec"))
            .args(["--dryrun", section])
            .output()
            .expect("h2spec runs");
        assert!(out.status.success(), "{}", text(&out));
        tests.extend(parse_listing(section, &String::from_utf8_lossy(&out.stdout)).unwrap());
    }
    tests
}

#[test]
fn every_server_matches_its_baseline() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("h2spec.json");
    let started = Instant::now();
    let out = interop(
        &["h2spec", "--json", json.to_str().unwrap()],
        // Builds what is not built yet: a cold tonic build takes minutes.
        Duration::from_secs(40 * 60),
    );
    eprintln!(
        "interop h2spec took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("h2spec: ok: no regression\n"), "{stdout}");

    let report = read_json(&json);
    assert_eq!(report["schema"], "polyglot-grpc-interop/h2spec/v1");
    assert_eq!(report["path"], "/grpc.testing.TestService/EmptyCall");
    let servers: BTreeSet<&str> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"].as_str().unwrap())
        .collect();
    // Not the bad server (it breaks HTTP/2 on purpose) nor client-only ones.
    assert_eq!(
        servers,
        BTreeSet::from(["go", "go-official", "python", "rust"])
    );
    for s in report["servers"].as_array().unwrap() {
        let name = s["server"].as_str().unwrap();
        eprintln!(
            "{name}: {} / {} / {} in {:.1} s",
            s["counts"]["passed"], s["counts"]["failed"], s["counts"]["skipped"], s["seconds"]
        );
        assert!(s["error"].is_null(), "{name}: {}", s["error"]);
        assert_eq!(s["regressions"], Value::Array(vec![]), "{name}");
        let baseline = Baseline::load(&Baseline::file(&root().join("h2spec"), name), name)
            .unwrap()
            .unwrap();
        assert_eq!(report["h2spec"].as_str(), Some(baseline.h2spec.as_str()));
        let tests = s["tests"].as_array().unwrap();
        let counts = &s["counts"];
        let total: u64 = ["passed", "failed", "skipped"]
            .iter()
            .map(|k| counts[k].as_u64().unwrap())
            .sum();
        assert_eq!(total as usize, tests.len(), "{name}: one status per test");
        // Every test the baseline lists as passing passed on some attempt.
        for entry in &baseline.passing {
            let t = tests.iter().find(|t| t["id"] == entry.id.as_str());
            let t = t.unwrap_or_else(|| panic!("{name}: {} was not played", entry.id));
            let attempts: Vec<&Value> = std::iter::once(&t["status"])
                .chain(t["retries"].as_array().into_iter().flatten())
                .collect();
            assert!(
                attempts.iter().any(|a| *a == "passed"),
                "{name}: {} {attempts:?}",
                entry.id
            );
        }
    }
}

#[test]
fn a_baseline_that_claims_a_failing_test_is_a_regression() {
    let _serial = serial();
    let committed = Baseline::load(&Baseline::file(&root().join("h2spec"), "rust"), "rust")
        .unwrap()
        .expect("h2spec/baseline-rust.json is committed");
    let known: BTreeSet<&str> = committed
        .passing
        .iter()
        .chain(&committed.flaky)
        .map(|e| e.id.as_str())
        .collect();
    // A test tonic does not pass (it fails or is skipped), claimed to pass;
    // and a test it passes, left out.
    let failing = listing()
        .into_iter()
        .find(|t| !known.contains(t.id.as_str()))
        .expect("some h2spec test does not pass on rust");
    let left_out = committed.passing[0].clone();
    let mut lying = committed.clone();
    lying.passing.retain(|e| e.id != left_out.id);
    lying.passing.push(BaselineEntry {
        id: failing.id.clone(),
        description: failing.description.clone(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = Baseline::file(dir.path(), "rust");
    lying.save(&path).unwrap();
    let json = dir.path().join("h2spec.json");
    let args = [
        "h2spec",
        "--server",
        "rust",
        "--baseline-dir",
        dir.path().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];

    let out = interop(&args, Duration::from_secs(40 * 60));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 REGRESSED, 1 improved"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "REGRESSIONS rust (in the baseline, passed on no attempt now):\n  {}  {}  (now ",
            failing.id, failing.description
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "improvements rust (passed on every attempt, not in the baseline):\n  {}  {}\n  record them: interop h2spec --server rust --update-baseline",
            left_out.id, left_out.description
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("h2spec: FAILED: regressions (rust 1)\n"),
        "{stdout}"
    );
    let report = read_json(&json);
    let rust = &report["servers"][0];
    assert_eq!(ids(&rust["regressions"]), [failing.id.as_str()]);
    // The contradiction was played three more times (--retries) before it
    // was believed.
    let attempts = rust["regressions"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(attempts.iter().all(|a| *a != "passed"), "{attempts:?}");
    assert_eq!(ids(&rust["improvements"]), [left_out.id.as_str()]);

    // --update-baseline puts the baseline right, and the run passes.
    let mut update = args.to_vec();
    update.extend(["--update-baseline", "--no-build"]);
    let out = interop(&update, Duration::from_secs(40 * 60));
    assert!(out.status.success(), "{}", text(&out));
    let updated = Baseline::load(&path, "rust").unwrap().unwrap();
    let passing = |b: &Baseline| b.passing.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert!(!passing(&updated).contains(&failing.id));
    assert!(passing(&updated).contains(&left_out.id));
    let mut again = args.to_vec();
    again.push("--no-build");
    let out = interop(&again, Duration::from_secs(600));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_server_that_cannot_start_fails_the_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let impls = dir.path().join("implementations");
    std::fs::create_dir(&impls).unwrap();
    std::fs::write(
        impls.join("broken.toml"),
        "name = \"broken\"\nlibrary = \"nothing\"\nversion = \"0\"\n[server]\n\
         command = [\"{root}/target/interop/h2spec/no-such-server\", \"--port\", \"{port}\"]\n",
    )
    .unwrap();
    let mut baseline = Baseline::load(&Baseline::file(&root().join("h2spec"), "rust"), "rust")
        .unwrap()
        .unwrap();
    baseline.server = "broken".to_string();
    baseline
        .save(&Baseline::file(dir.path(), "broken"))
        .unwrap();
    let out = interop(
        &[
            "h2spec",
            "--implementations",
            impls.to_str().unwrap(),
            "--baseline-dir",
            dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(600),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ERROR broken:\n  start: server broken: cannot start"),
        "{stdout}"
    );
    // Not played: nothing compared, no made-up regressions.
    assert!(!stdout.contains("REGRESSIONS"), "{stdout}");
    assert!(
        stdout.ends_with("h2spec: FAILED: servers not played (broken)\n"),
        "{stdout}"
    );
}

#[test]
fn a_baseline_of_another_h2spec_fails_clearly() {
    let _serial = serial();
    let mut other = Baseline::load(&Baseline::file(&root().join("h2spec"), "rust"), "rust")
        .unwrap()
        .unwrap();
    other.h2spec = "v1.5.0".to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = Baseline::file(dir.path(), "rust");
    other.save(&path).unwrap();
    let args = [
        "h2spec",
        "--server",
        "rust",
        "--baseline-dir",
        dir.path().to_str().unwrap(),
    ];
    let out = interop(&args, Duration::from_secs(600));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} was recorded with h2spec v1.5.0, but the installed h2spec is {}",
            path.display(),
            committed_version()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--update-baseline"), "{stderr}");
}

fn committed_version() -> String {
    Baseline::load(&Baseline::file(&root().join("h2spec"), "rust"), "rust")
        .unwrap()
        .unwrap()
        .h2spec
}

#[test]
fn bad_selections_and_missing_baselines_are_usage_errors() {
    let _serial = serial();
    let out = interop(
        &["h2spec", "--server", "bad-server"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--server \"bad-server\" matches nothing (choose from: go-official, go, python, rust)"
        ),
        "{stderr}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = interop(
        &[
            "h2spec",
            "--server",
            "rust",
            "--baseline-dir",
            empty.path().to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no baseline for server rust ("), "{stderr}");
    assert!(
        stderr.contains("record one with `interop h2spec --server rust --update-baseline`"),
        "{stderr}"
    );
}
