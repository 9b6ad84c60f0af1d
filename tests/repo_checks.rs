//! The other languages' own suites and the repository's consistency checks,
//! so that `cargo test --workspace` tests all of it: generated code is fresh,
//! Go vets and tests clean, the Python tests pass, the workflow is valid.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::root;

/// Runs a command from `dir` with a time bound; returns its output.
fn run(dir: &Path, argv: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generated_go_code_is_fresh() {
    let out = run(
        &root(),
        &["bash", "scripts/gen-go.sh", "--check"],
        Duration::from_secs(600),
    );
    assert_ok(
        "scripts/gen-go.sh --check (run scripts/gen-go.sh to refresh go/gen)",
        &out,
    );
}

#[test]
fn generated_python_code_is_fresh() {
    let out = run(
        &root(),
        &["bash", "scripts/gen-python.sh", "--check"],
        Duration::from_secs(600),
    );
    assert_ok(
        "scripts/gen-python.sh --check (run scripts/gen-python.sh to refresh python/gen)",
        &out,
    );
}

#[test]
fn go_is_formatted_vetted_and_its_tests_pass() {
    let go = root().join("go");
    let out = run(&go, &["gofmt", "-l", "."], Duration::from_secs(120));
    assert_ok("gofmt -l", &out);
    assert!(
        out.stdout.is_empty(),
        "gofmt would change:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ok(
        "go vet ./...",
        &run(&go, &["go", "vet", "./..."], Duration::from_secs(600)),
    );
    let out = run(
        &go,
        &["go", "test", "-count=1", "./..."],
        Duration::from_secs(900),
    );
    assert_ok("go test ./...", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok  \tpolyglot-grpc-interop/go/interop")
    );
}

#[test]
fn python_tests_pass() {
    let root = root();
    assert_ok(
        "scripts/python-env.sh",
        &run(
            &root,
            &["bash", "scripts/python-env.sh"],
            Duration::from_secs(900),
        ),
    );
    let python = root.join("target/interop/python-venv/bin/python");
    let out = run(
        &root,
        &[
            python.to_str().unwrap(),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "python/tests",
        ],
        Duration::from_secs(900),
    );
    assert_ok("pytest python/tests", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains(" failed"), "{text}");
}

#[test]
fn github_workflow_passes_actionlint() {
    let root = root();
    let bin = root.join("target/tools/bin");
    let actionlint = bin.join("actionlint");
    if !actionlint.exists() {
        // Pinned; built from the Go module proxy into the project's tool folder.
        let out = Command::new("go")
            .args([
                "install",
                "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12",
            ])
            .env("GOBIN", &bin)
            .current_dir(root.join("go"))
            .output()
            .expect("go runs");
        assert_ok("go install actionlint", &out);
    }
    let out = run(
        &root,
        &[actionlint.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_ok("actionlint", &out);
}

/// h2spec/tool/go.mod pins h2spec at the version every h2spec baseline was
/// recorded with, and each dependency a baseline names at the version it
/// names: a bump of one without the other is caught here, before a run
/// notes it.
#[test]
fn h2spec_pins_agree_with_the_baselines() {
    let dir = root().join("h2spec");
    let go_mod = std::fs::read_to_string(dir.join("tool/go.mod")).unwrap();
    let pinned: std::collections::BTreeMap<&str, &str> = go_mod
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let module = fields.next()?;
            let version = fields.next()?;
            (module.contains('.') && version.starts_with('v')).then_some((module, version))
        })
        .collect();
    let mut baselines = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        baselines += 1;
        let baseline: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let shown = path.display();
        assert_eq!(
            pinned.get("github.com/summerwind/h2spec").copied(),
            baseline["h2spec"].as_str(),
            "{shown}"
        );
        let deps = baseline["h2spec_dependencies"].as_object().unwrap();
        assert!(!deps.is_empty(), "{shown} names h2spec's dependencies");
        for (module, version) in deps {
            assert_eq!(
                pinned.get(module.as_str()).copied(),
                version.as_str(),
                "{shown}: {module}"
            );
        }
    }
    assert_eq!(baselines, 4, "one baseline per server");
}
