//! Child processes that cannot outlive the runner.
//!
//! Every child runs in its own process group, so a stop reaches whatever it
//! started too. It is stopped with SIGTERM, a grace period while its output
//! is still drained, then SIGKILL to the group. Dropping a [`Child`] kills
//! its group at once (a failed test, a panic, an early return), and on Linux
//! the kernel kills a child whose runner dies, even by SIGKILL.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::protocol::is_protocol_line;

/// How many log lines of a child are kept for failure reports.
const LOG_TAIL_LINES: usize = 200;

/// Process groups of the children alive now, for the last-resort cleanup of
/// a second Ctrl-C.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live_groups() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends SIGKILL to every live child group. Used when the runner must exit
/// now and destructors will not run.
pub fn kill_all_now() {
    for pgid in live_groups().iter() {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe { libc::killpg(*pgid, libc::SIGKILL) };
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Name used in logs and reports, e.g. `server go`.
    pub name: String,
    pub argv: &'a [String],
    pub dir: &'a Path,
    pub env: &'a [(String, String)],
    /// Variables of the runner's environment the child must not inherit.
    pub env_remove: &'a [String],
    /// Print the child's stderr live, each line prefixed with its name.
    pub echo_logs: bool,
    /// Run it on these CPUs only (its affinity mask); empty: wherever the
    /// runner may run.
    pub cpus: &'a [usize],
}

/// How many log lines of a build or install step a failure shows.
const STEP_LOG_LINES: usize = 30;

/// Runs `spec` to its end (a build or install step), keeping its output for
/// the error only: `Ok` when it exits 0 within `limit`; otherwise why not,
/// with its last log lines. One still running at the limit is stopped
/// (`grace`, then killed); dropping the future kills its process group.
pub async fn run_to_end(spec: Spec<'_>, limit: Duration, grace: Duration) -> Result<(), String> {
    let what = format!("{} ({})", spec.name, spec.argv.join(" "));
    let mut child = Child::spawn(spec).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    while let Next::Line(_) = child.next_line(deadline).await {}
    let status = child.wait_until(deadline).await;
    let logs = || child.logs().last(STEP_LOG_LINES).join("\n");
    if status.is_none() {
        let logs = logs();
        child.stop(grace).await;
        return Err(format!("{what} did not finish within {limit:?}\n{logs}"));
    }
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("{what} failed: {}\n{}", describe(status), logs()));
    }
    Ok(())
}

/// The CPUs this process may run on (its affinity mask), ascending.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The affinity mask of `cpus`; an error names a CPU beyond the mask's size.
#[cfg(target_os = "linux")]
fn cpu_set(cpus: &[usize]) -> std::io::Result<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET is given
    // indices below CPU_SETSIZE only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(std::io::Error::other(format!("no CPU {cpu}")));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        Ok(set)
    }
}

/// The last lines a child wrote to stderr (and non-protocol stdout lines).
#[derive(Debug, Clone, Default)]
pub struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    /// Appends a line, dropping the oldest beyond the limit.
    pub fn push_line(&self, line: String) {
        self.push(line)
    }

    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == LOG_TAIL_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().skip(q.len().saturating_sub(n)).cloned().collect()
    }
}

/// What waiting for the next stdout line gave.
#[derive(Debug, PartialEq)]
pub enum Next {
    Line(String),
    /// stdout closed: the child exited or closed it.
    Eof,
    /// The deadline passed first.
    Deadline,
}

/// A running child in its own process group.
#[derive(Debug)]
pub struct Child {
    pub name: String,
    pgid: i32,
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    logs: LogTail,
    status: Option<ExitStatus>,
    /// The tasks reading stdout and stderr; they end at end of file.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Child {
    /// Starts the child. Errors say which program could not be started.
    pub fn spawn(spec: Spec<'_>) -> anyhow::Result<Child> {
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("{}: empty command", spec.name))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(spec.dir)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        for key in spec.env_remove {
            cmd.env_remove(key);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        {
            let affinity =
                match spec.cpus {
                    [] => None,
                    cpus => Some(cpu_set(cpus).map_err(|e| {
                        anyhow::anyhow!("{}: cannot pin to {cpus:?}: {e}", spec.name)
                    })?),
                };
            // SAFETY: prctl and sched_setaffinity are async-signal-safe, as
            // required between fork and exec; `affinity` is a plain value.
            unsafe {
                cmd.pre_exec(move || {
                    // If the runner dies (even by SIGKILL), the kernel kills this child.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if let Some(set) = &affinity
                        && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set)
                            != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: cannot start {program:?}: {e}", spec.name))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("{}: exited at once", spec.name))?;
        let pgid = i32::try_from(pid)
            .map_err(|_| anyhow::anyhow!("{}: pid {pid} out of range", spec.name))?;
        live_groups().insert(pgid);

        let logs = LogTail::default();
        let (tx, lines) = mpsc::unbounded_channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let logs = logs.clone();
            readers.push(tokio::spawn(read_lines(stdout, move |line| {
                if is_protocol_line(&line) {
                    let _ = tx.send(line);
                } else {
                    logs.push(line);
                }
            })));
        }
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            let name = spec.name.clone();
            let echo = spec.echo_logs;
            readers.push(tokio::spawn(read_lines(stderr, move |line| {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                logs.push(line);
            })));
        }
        Ok(Child {
            name: spec.name,
            pgid,
            child,
            lines,
            logs,
            status: None,
            readers,
        })
    }

    /// Waits for the next protocol line on stdout, until `deadline`.
    pub async fn next_line(&mut self, deadline: Instant) -> Next {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => Next::Line(line),
            Ok(None) => Next::Eof,
            Err(_) => Next::Deadline,
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The child's log tail.
    pub fn logs(&self) -> &LogTail {
        &self.logs
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.reaped(status);
        }
        self.status
    }

    /// Waits until the child exits or `deadline` passes. After an exit, its
    /// last output is read too, so the log tail is complete.
    pub async fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Ok(status)) = tokio::time::timeout_at(deadline, self.child.wait()).await
        {
            self.reaped(status);
        }
        if self.status.is_some() {
            // The pipes close when the group is gone; a grandchild that kept them
            // open was killed with it, so this wait is short. Bounded anyway.
            for reader in self.readers.drain(..) {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader).await;
            }
        }
        self.status
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The leader is gone; members of its group may not be, so stop them too.
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
        live_groups().remove(&self.pgid);
    }

    /// SIGTERM to the group, `grace` to exit, then SIGKILL. Returns the status.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_status().is_some() {
            return self.status;
        }
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe { libc::killpg(self.pgid, libc::SIGTERM) };
        if self.wait_until(Instant::now() + grace).await.is_some() {
            return self.status;
        }
        self.kill().await
    }

    /// SIGKILL to the group at once. Returns the status.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_status().is_none() {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
            // SIGKILL cannot be ignored; the bound only guards against a zombie
            // that the kernel is slow to hand back.
            self.wait_until(Instant::now() + Duration::from_secs(5))
                .await;
        }
        self.status
    }

    /// The process group id (equal to the child's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
            live_groups().remove(&self.pgid);
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(reader: R, mut each: impl FnMut(String)) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        each(line);
    }
}

/// How a process (or container) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i64),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// The exit of a reaped child.
    pub fn of(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(i64::from(code)),
            (None, Some(signal)) => Exit::Signal(signal),
            // Linux gives one or the other; a raw status is reported as is.
            (None, None) => Exit::Code(i64::from(status.into_raw())),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// Describes an exit status for humans: `exit status 1`, `killed by signal 9`.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "still running".to_string(),
        Some(s) => Exit::of(s).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    fn spawn(argv: &[String]) -> Child {
        Child::spawn(Spec {
            name: "test".into(),
            argv,
            dir: Path::new("/"),
            env: &[],
            env_remove: &[],
            echo_logs: false,
            cpus: &[],
        })
        .unwrap()
    }

    #[tokio::test]
    async fn run_to_end_says_why_a_step_did_not_succeed() {
        let step =
            |argv: &'static [&'static str]| argv.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let run = |argv: Vec<String>, limit: Duration| async move {
            run_to_end(
                Spec {
                    name: "step".into(),
                    argv: &argv,
                    dir: Path::new("/"),
                    env: &[],
                    env_remove: &[],
                    echo_logs: false,
                    cpus: &[],
                },
                limit,
                Duration::from_millis(200),
            )
            .await
        };
        let secs = Duration::from_secs(5);
        assert_eq!(run(step(&["sh", "-c", "echo fine"]), secs).await, Ok(()));
        let failed = run(step(&["sh", "-c", "echo broken >&2; exit 3"]), secs)
            .await
            .unwrap_err();
        assert!(
            failed.starts_with("step (sh -c echo broken >&2; exit 3) failed: exit status 3"),
            "{failed}"
        );
        assert!(failed.ends_with("\nbroken"), "{failed}");
        let slow = run(
            step(&["sh", "-c", "echo waiting >&2; sleep 30"]),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(
            slow.contains("did not finish within 300ms\nwaiting"),
            "{slow}"
        );
        let missing = run(step(&["/nonexistent/program"]), secs)
            .await
            .unwrap_err();
        assert!(missing.contains("cannot start"), "{missing}");
    }

    #[tokio::test]
    async fn a_child_runs_on_the_cpus_it_is_pinned_to() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        let last = *allowed.last().unwrap();
        let argv = sh("grep Cpus_allowed_list /proc/self/status");
        for (cpus, want) in [(vec![last], last.to_string()), (vec![], String::new())] {
            let mut child = Child::spawn(Spec {
                name: "pinned".into(),
                argv: &argv,
                dir: Path::new("/"),
                env: &[],
                env_remove: &[],
                echo_logs: false,
                cpus: &cpus,
            })
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            assert_eq!(child.next_line(deadline).await, Next::Eof);
            assert!(child.wait_until(deadline).await.unwrap().success());
            let line = child.logs().last(1).join("");
            let list = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            if cpus.is_empty() {
                // Unpinned: as many CPUs as the runner has.
                assert!(!list.is_empty(), "{line}");
            } else {
                assert_eq!(list, want, "{line}");
            }
        }
        let error = Child::spawn(Spec {
            name: "nowhere".into(),
            argv: &argv,
            dir: Path::new("/"),
            env: &[],
            env_remove: &[],
            echo_logs: false,
            cpus: &[libc::CPU_SETSIZE as usize],
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("cannot pin"), "{error}");
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[tokio::test]
    async fn separates_protocol_lines_from_logs() {
        let argv = sh("echo '{\"a\":1}'; echo plain; echo err >&2; echo '{\"b\":2}'");
        let mut child = spawn(&argv);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            child.next_line(deadline).await,
            Next::Line("{\"a\":1}".into())
        );
        assert_eq!(
            child.next_line(deadline).await,
            Next::Line("{\"b\":2}".into())
        );
        assert_eq!(child.next_line(deadline).await, Next::Eof);
        let status = child.wait_until(deadline).await;
        assert_eq!(describe(status), "exit status 0");
        let mut logs = child.logs().last(10);
        logs.sort();
        assert_eq!(logs, ["err", "plain"]);
    }

    #[tokio::test]
    async fn deadline_then_stop_kills_the_whole_group() {
        // The shell ignores SIGTERM and has a grandchild: both must still go.
        let argv = sh("trap '' TERM; sleep 300 & echo \"{\\\"pid\\\":$!}\"; wait");
        let mut child = spawn(&argv);
        let line = match child
            .next_line(Instant::now() + Duration::from_secs(10))
            .await
        {
            Next::Line(l) => l,
            other => panic!("{other:?}"),
        };
        let grandchild: i32 = serde_json::from_str::<serde_json::Value>(&line).unwrap()["pid"]
            .as_i64()
            .unwrap() as i32;
        assert!(alive(grandchild));
        assert_eq!(
            child
                .next_line(Instant::now() + Duration::from_millis(100))
                .await,
            Next::Deadline
        );
        let status = child.stop(Duration::from_millis(300)).await;
        assert_eq!(describe(status), "killed by signal 9");
        // The grandchild was in the same group; give the kernel a moment to reap it.
        let until = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(grandchild), "grandchild {grandchild} survived");
    }

    #[tokio::test]
    async fn drop_kills_the_group() {
        let child = spawn(&sh("sleep 300"));
        let pgid = child.pgid();
        assert!(alive(pgid));
        drop(child);
        let until = Instant::now() + Duration::from_secs(5);
        // The zombie stays until reaped by tokio's orphan reaper; check the group is signalled.
        while Instant::now() < until {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(pgid, &mut status, libc::WNOHANG) };
            if r == pgid || r == -1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("dropped child {pgid} still running");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let err = Child::spawn(Spec {
            name: "server nope".into(),
            argv: &["/nonexistent/server".to_string()],
            dir: Path::new("/"),
            env: &[],
            env_remove: &[],
            echo_logs: false,
            cpus: &[],
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("server nope: cannot start \"/nonexistent/server\""),
            "{err}"
        );
    }
}
