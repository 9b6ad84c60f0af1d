//! `scripts/setup-machine.sh` decides by what answers, not by what is on
//! PATH: a client-only `docker` (as a new machine of this kind has) must lead
//! to installing an engine. Played with `--plan` against folders of stub
//! programs, so nothing is installed or started.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Real programs the script needs besides the ones under test.
const UTILITIES: &[&str] = &[
    "timeout", "id", "seq", "sleep", "cut", "tail", "cat", "sh", "env", "sudo",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A folder with the utilities linked in.
fn bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in UTILITIES {
        if let Ok(path) = which(name) {
            std::os::unix::fs::symlink(path, dir.path().join(name)).unwrap();
        }
    }
    for (name, text) in [
        ("cargo", "echo cargo 1.95.0"),
        ("go", "echo go version go1.26.8 linux/amd64"),
        ("python3", "echo Python 3.11.7"),
    ] {
        stub(dir.path(), name, text);
    }
    dir
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A shell script `name` in `dir` whose body is `body`.
fn stub(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The decisions `--plan` prints with only `dir` on PATH.
fn plan(dir: &Path) -> Vec<String> {
    let out = Command::new("/bin/bash")
        .arg(root().join("scripts/setup-machine.sh"))
        .args(["--plan", "--base-images"])
        .env_clear()
        .env("PATH", dir)
        .env("SETUP_MACHINE_SBIN", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup-machine --plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// A `docker` that is only a client: every command that needs an engine fails,
/// like Docker 28's CLI with no daemon.
const CLIENT_ONLY_DOCKER: &str = r#"case "$1" in
  --version) echo "Docker version 28.2.2, build e6534b4" ;;
  *) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1 ;;
esac"#;

#[test]
fn a_client_only_docker_leads_to_installing_the_engine() {
    let dir = bin_dir();
    stub(dir.path(), "docker", CLIENT_ONLY_DOCKER);
    assert_eq!(
        plan(dir.path()),
        [
            "engine: install docker.io, then start dockerd",
            "compose: install docker-compose",
            "browser: install chromium",
            "debootstrap: install debootstrap",
        ]
    );
}

#[test]
fn an_installed_dockerd_is_started_and_answering_programs_are_used() {
    let dir = bin_dir();
    stub(dir.path(), "docker", CLIENT_ONLY_DOCKER);
    stub(dir.path(), "dockerd", "exit 0");
    stub(
        dir.path(),
        "docker-compose",
        "echo docker-compose version 1.29.2",
    );
    stub(dir.path(), "chromium", "echo Chromium 156");
    stub(dir.path(), "debootstrap", "echo debootstrap 1.0.128");
    let dockerd = dir.path().join("dockerd").display().to_string();
    assert_eq!(
        plan(dir.path()),
        [
            format!("engine: start {dockerd}"),
            "compose: use the one that answers".to_string(),
            "browser: use chromium".to_string(),
            "debootstrap: use the one that answers".to_string(),
        ]
    );
}

#[test]
fn an_engine_that_answers_is_used_and_broken_programs_are_replaced() {
    let dir = bin_dir();
    stub(
        dir.path(),
        "docker",
        r#"case "$1" in info) echo "Server Version: 20.10.24" ;; compose) exit 1 ;; esac"#,
    );
    // On PATH but not answering: a broken install counts as missing.
    stub(dir.path(), "docker-compose", "exit 127");
    stub(dir.path(), "chromium", "exit 1");
    assert_eq!(
        plan(dir.path())[..3],
        [
            "engine: use the one that answers",
            "compose: install docker-compose",
            "browser: install chromium",
        ]
    );
}
