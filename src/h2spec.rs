//! `interop h2spec`: the HTTP/2 conformance of every server, measured with
//! h2spec and compared with committed baselines.
//!
//! h2spec (github.com/summerwind/h2spec, installed by `scripts/h2spec.sh`)
//! plays its sections `generic` and `http2` against each server's plaintext
//! port, on a gRPC method's path. Each test runs in an h2spec process of its
//! own, [`H2specOptions::jobs`] at a time: most failures wait out h2spec's
//! per-test timeout, so one process per server would take the sum of those
//! waits (three minutes for grpcio), and each result comes back under the id
//! it was asked for, not one inferred from its place in a report.
//!
//! The baseline of a server, `h2spec/baseline-<server>.json`, lists the
//! tests that pass, and apart the flaky ones (seen both passing and not:
//! reported, not judged). A result that contradicts the baseline is played
//! again, [`H2specOptions::retries`] times, before it is believed. A listed
//! test that passes on no attempt is a regression and fails the command; a
//! test not listed that passes on every attempt is an improvement, reported
//! with a hint to record it (`--update-baseline`); one that passes on some
//! attempts only is reported as unstable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::native::Native;
use crate::backend::{Backend, Settings, Transport};
use crate::cases::CaseGroup;
use crate::manifest::Implementation;
use crate::process::{Child, Spec, describe, run_to_end};

/// h2spec's Go module.
pub const MODULE: &str = "github.com/summerwind/h2spec";
/// The h2spec sections played: its generic HTTP/2 server tests and the
/// RFC 7540 ones (not `hpack`).
pub const SECTIONS: [&str; 2] = ["generic", "http2"];
/// The path of h2spec's requests: a real gRPC method, so a server routes
/// them as it routes gRPC calls.
pub const GRPC_PATH: &str = "/grpc.testing.TestService/EmptyCall";
/// `schema` of a baseline file.
pub const BASELINE_SCHEMA: &str = "polyglot-grpc-interop/h2spec-baseline/v1";
/// `schema` of the `--json` report.
pub const REPORT_SCHEMA: &str = "polyglot-grpc-interop/h2spec/v1";

/// Errors that stop `interop h2spec` outside any one server's run.
#[derive(Debug, thiserror::Error)]
pub enum H2specError {
    #[error(
        "no baseline for server {server} ({path} does not exist); record one with `interop h2spec --server {server} --update-baseline`"
    )]
    NoBaseline { server: String, path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadBaseline { path: PathBuf, message: String },
    #[error(
        "{path} was recorded with h2spec {recorded}, but the installed h2spec is {installed}; compare the two, then record new baselines with `interop h2spec --update-baseline`"
    )]
    VersionMismatch {
        path: PathBuf,
        recorded: String,
        installed: String,
    },
    #[error("installing h2spec: {0}")]
    Install(String),
    #[error("listing h2spec's tests: {0}")]
    Listing(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl H2specError {
    /// True for errors of configuration (the baselines): nothing was run.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            H2specError::NoBaseline { .. }
                | H2specError::Read { .. }
                | H2specError::BadBaseline { .. }
                | H2specError::VersionMismatch { .. }
        )
    }
}

/// How one h2spec test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    /// h2spec skipped it: the server's answer did not allow the test (e.g.
    /// no DATA frame to check flow control with).
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One test of h2spec's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestInfo {
    /// `<section>/<group>/<n>`, e.g. `http2/6.5.3/2`, as h2spec takes it.
    pub id: String,
    pub description: String,
}

impl TestInfo {
    /// The group part of the id, `http2/6.5.3`: what h2spec's JUnit report
    /// calls the test's package.
    pub fn group(&self) -> &str {
        self.id.rsplit_once('/').map_or("", |(group, _)| group)
    }
}

/// One test's result against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub id: String,
    pub description: String,
    pub status: Status,
    /// The first attempt that failed: the answers h2spec would have accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    /// The first attempt that failed: what came instead (or why h2spec
    /// could not tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    pub seconds: f64,
    /// The statuses of its later attempts, when it was played again: a
    /// result that contradicts the baseline is checked before it is
    /// believed (see [`compare`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Status>,
}

impl TestResult {
    fn failed(test: &TestInfo, actual: String, seconds: f64) -> TestResult {
        TestResult {
            id: test.id.clone(),
            description: test.description.clone(),
            status: Status::Failed,
            expected: Vec::new(),
            actual: Some(actual),
            seconds,
            retries: Vec::new(),
        }
    }

    /// Every attempt's status, the first one first.
    pub fn attempts(&self) -> Vec<Status> {
        std::iter::once(self.status)
            .chain(self.retries.iter().copied())
            .collect()
    }

    /// Passed on every attempt.
    pub fn passed_every_time(&self) -> bool {
        self.attempts().iter().all(|s| *s == Status::Passed)
    }

    /// Passed on some attempts, not on others.
    pub fn unsteady(&self) -> bool {
        self.attempts().contains(&Status::Passed) && !self.passed_every_time()
    }
}

/// The installed h2spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    pub binary: PathBuf,
    /// Its module version, from the binary's build information.
    pub version: String,
    /// The versions of its dependencies it was built with (its module has
    /// no go.mod; h2spec/tool/go.mod pins them).
    pub dependencies: BTreeMap<String, String>,
}

impl Tool {
    /// Where `scripts/h2spec.sh` installs it.
    pub fn path(root: &Path) -> PathBuf {
        root.join("target/interop/h2spec/h2spec")
    }
}

/// Reads module and dependency versions from `go version -m` output.
pub fn parse_build_info(text: &str) -> Option<(String, BTreeMap<String, String>)> {
    let mut version = None;
    let mut deps = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["mod", module, v, ..] if *module == MODULE => version = Some(v.to_string()),
            ["dep", module, v, ..] => {
                deps.insert(module.to_string(), v.to_string());
            }
            _ => {}
        }
    }
    version.map(|v| (v, deps))
}

/// Parses the output of `h2spec --dryrun <section>`: group titles
/// (`6.5.3. Settings Synchronization`) each followed by its tests
/// (`2: Sends a SETTINGS frame ...`).
pub fn parse_listing(section: &str, text: &str) -> Result<Vec<TestInfo>, String> {
    let mut tests: Vec<TestInfo> = Vec::new();
    let mut group: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((number, _title)) = split_group(line) {
            group = Some(number.to_string());
        } else if let Some((n, description)) = split_test(line) {
            let Some(group) = &group else {
                return Err(format!("line {}: a test before any group: {line:?}", i + 1));
            };
            tests.push(TestInfo {
                id: format!("{section}/{group}/{n}"),
                description: description.to_string(),
            });
        } else if group.is_some() {
            // Before the first group comes the section's title; after it,
            // anything else means the format is not the one this reads.
            return Err(format!("line {}: unexpected {line:?}", i + 1));
        }
    }
    if tests.is_empty() {
        return Err(format!("no test in section {section:?}"));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = tests.iter().find(|t| !seen.insert(t.id.as_str())) {
        return Err(format!("test {} is listed twice", dup.id));
    }
    Ok(tests)
}

/// `6.5.3. Title` -> (`6.5.3`, `Title`).
fn split_group(line: &str) -> Option<(&str, &str)> {
    let (number, title) = line.split_once(". ")?;
    let numeric = number
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    numeric.then_some((number, title))
}

/// `2: Description` -> (2, `Description`).
fn split_test(line: &str) -> Option<(u32, &str)> {
    let (n, description) = line.split_once(": ")?;
    Some((n.parse().ok()?, description))
}

/// One test case of an h2spec JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    /// `http2/6.5.3`
    pub group: String,
    pub description: String,
    pub status: Status,
    pub expected: Vec<String>,
    pub actual: Option<String>,
}

/// Reads the test cases of an h2spec JUnit report.
///
/// h2spec writes the failure texts as raw inner XML (not escaped), so this
/// reads the report by its fixed shape rather than with an XML parser:
/// attributes are escaped by Go's encoder and unescaped here; a test case
/// is passed, or has one `skipped`, `failure` (`Expect:\n..\nActual:\n..`)
/// or `error` (the expected lines, then the actual one) element.
pub fn parse_junit(xml: &str) -> Result<Vec<JunitCase>, String> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase") {
        rest = &rest[start + "<testcase".len()..];
        let tag_end = rest
            .find('>')
            .ok_or("a <testcase> start tag does not end")?;
        let tag = &rest[..tag_end];
        let group = attribute(tag, "package").ok_or("a <testcase> has no package")?;
        let description = attribute(tag, "classname").ok_or("a <testcase> has no classname")?;
        let body = if tag.ends_with('/') {
            rest = &rest[tag_end + 1..];
            ""
        } else {
            let after = &rest[tag_end + 1..];
            let end = after
                .find("</testcase>")
                .ok_or_else(|| format!("<testcase> {description:?} does not end"))?;
            rest = &after[end..];
            &after[..end]
        };
        let (status, expected, actual) = if body.contains("<skipped") {
            (Status::Skipped, Vec::new(), None)
        } else if let Some(text) = element_text(body, "failure") {
            let (expected, actual) = match text.split_once("\nActual:\n") {
                Some((expected, actual)) => (
                    expected.strip_prefix("Expect:\n").unwrap_or(expected),
                    actual,
                ),
                None => ("", text),
            };
            (
                Status::Failed,
                expected.lines().map(str::to_string).collect(),
                Some(actual.trim().to_string()),
            )
        } else if let Some(text) = element_text(body, "error") {
            // The expected answers, one a line, then what came instead; a
            // one-line text is an error without expectations (`Timeout`).
            let mut lines: Vec<String> = text.trim().lines().map(str::to_string).collect();
            let actual = lines.pop().unwrap_or_default();
            (Status::Failed, lines, Some(actual))
        } else {
            (Status::Passed, Vec::new(), None)
        };
        cases.push(JunitCase {
            group,
            description,
            status,
            expected,
            actual,
        });
    }
    Ok(cases)
}

/// The unescaped value of `name="..."` in a start tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// The text of `<name>...</name>` (or `<name/>`, empty) in `body`.
fn element_text<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = body.find(&format!("<{name}"))?;
    let after = &body[open + 1 + name.len()..];
    if after.starts_with("/>") {
        return Some("");
    }
    let inner = after.strip_prefix('>')?;
    let close = inner.find(&format!("</{name}>")).unwrap_or(inner.len());
    Some(&inner[..close])
}

/// Undoes XML escapes: the five named entities and numeric ones.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A baseline file: the tests that pass on one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema: String,
    pub server: String,
    /// The implementation's library and version when it was recorded.
    pub library: String,
    /// The h2spec module version it was recorded with; must be the installed one.
    pub h2spec: String,
    /// The versions of h2spec's dependencies then (h2spec's own module does
    /// not pin them; h2spec/tool/go.mod does, see scripts/h2spec.sh).
    #[serde(default)]
    pub h2spec_dependencies: BTreeMap<String, String>,
    pub sections: Vec<String>,
    pub path: String,
    /// The tests that passed on every attempt, in h2spec's order.
    pub passing: Vec<BaselineEntry>,
    /// Tests seen both passing and not passing: their results are reported,
    /// not judged. `--update-baseline` keeps them; take one out by hand
    /// once its library is fixed.
    #[serde(default)]
    pub flaky: Vec<BaselineEntry>,
}

/// One test of a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineEntry {
    pub id: String,
    pub description: String,
}

impl Baseline {
    /// The file of `server`'s baseline in `dir`.
    pub fn file(dir: &Path, server: &str) -> PathBuf {
        dir.join(format!("baseline-{server}.json"))
    }

    /// Reads and validates a baseline; `None` when the file does not exist.
    pub fn load(path: &Path, server: &str) -> Result<Option<Baseline>, H2specError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(H2specError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let bad = |message: String| H2specError::BadBaseline {
            path: path.to_path_buf(),
            message,
        };
        let baseline: Baseline = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if baseline.schema != BASELINE_SCHEMA {
            return Err(bad(format!(
                "schema is {:?}, want {BASELINE_SCHEMA:?}",
                baseline.schema
            )));
        }
        if baseline.server != server {
            return Err(bad(format!(
                "server is {:?}, want {server:?} (the file's name)",
                baseline.server
            )));
        }
        if baseline.sections != SECTIONS || baseline.path != GRPC_PATH {
            return Err(bad(format!(
                "recorded for sections {:?} on {}, this run plays {SECTIONS:?} on {GRPC_PATH}; record it again with --update-baseline",
                baseline.sections, baseline.path
            )));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = baseline
            .passing
            .iter()
            .chain(&baseline.flaky)
            .find(|e| !seen.insert(e.id.as_str()))
        {
            return Err(bad(format!("test {} is listed twice", dup.id)));
        }
        Ok(Some(baseline))
    }

    /// The baseline of these results: the tests that passed on every
    /// attempt, and as flaky those that passed on some only, or were flaky
    /// in `previous`.
    pub fn of(
        imp: &Implementation,
        tool: &Tool,
        results: &[TestResult],
        previous: Option<&Baseline>,
    ) -> Baseline {
        let was_flaky: BTreeSet<&str> = previous
            .iter()
            .flat_map(|b| &b.flaky)
            .map(|e| e.id.as_str())
            .collect();
        let is_flaky = |r: &TestResult| was_flaky.contains(r.id.as_str()) || r.unsteady();
        let entry = |r: &TestResult| BaselineEntry {
            id: r.id.clone(),
            description: r.description.clone(),
        };
        Baseline {
            schema: BASELINE_SCHEMA.to_string(),
            server: imp.name.clone(),
            library: imp.library_version(),
            h2spec: tool.version.clone(),
            h2spec_dependencies: tool.dependencies.clone(),
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            path: GRPC_PATH.to_string(),
            passing: results
                .iter()
                .filter(|r| !is_flaky(r) && r.passed_every_time())
                .map(entry)
                .collect(),
            flaky: results.iter().filter(|r| is_flaky(r)).map(entry).collect(),
        }
    }

    /// True when `result`, as far as it was played, says something else
    /// than this baseline: worth another attempt before it is believed.
    pub fn contradicted_by(&self, result: &TestResult) -> bool {
        let listed = |list: &[BaselineEntry]| list.iter().any(|e| e.id == result.id);
        !listed(&self.flaky)
            && !result.unsteady()
            && listed(&self.passing) != (result.status == Status::Passed)
    }

    /// Writes it as pretty JSON with a final newline.
    pub fn save(&self, path: &Path) -> Result<(), H2specError> {
        let write = |source| H2specError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| write(e.into()))?;
        text.push('\n');
        crate::report::write_file(path, text.as_bytes()).map_err(write)
    }
}

/// A test whose result differs from its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub id: String,
    pub description: String,
    /// The status of every attempt; none when h2spec has no such test.
    pub attempts: Vec<Status>,
    /// The first failed attempt's details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// Results against a baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Listed as passing, passed on no attempt: fails the run.
    pub regressions: Vec<Change>,
    /// Not listed, passed on every attempt.
    pub improvements: Vec<Change>,
    /// Not listed as flaky, passed on some attempts only: reported, not judged.
    pub unstable: Vec<Change>,
    /// How many tests the baseline lists as flaky (reported, not judged).
    pub flaky: usize,
}

/// Compares `results` (with their retries) with `baseline`.
pub fn compare(baseline: &Baseline, results: &[TestResult]) -> Comparison {
    let ids = |list: &[BaselineEntry]| -> BTreeSet<String> {
        list.iter().map(|e| e.id.clone()).collect()
    };
    let (passing, flaky) = (ids(&baseline.passing), ids(&baseline.flaky));
    let change = |r: &TestResult| Change {
        id: r.id.clone(),
        description: r.description.clone(),
        attempts: r.attempts(),
        expected: r.expected.clone(),
        actual: r.actual.clone(),
    };
    let mut comparison = Comparison::default();
    for r in results {
        if flaky.contains(&r.id) {
            comparison.flaky += 1;
        } else if r.unsteady() {
            comparison.unstable.push(change(r));
        } else if passing.contains(&r.id) && !r.passed_every_time() {
            comparison.regressions.push(change(r));
        } else if !passing.contains(&r.id) && r.passed_every_time() {
            comparison.improvements.push(change(r));
        }
    }
    for entry in baseline.passing.iter().chain(&baseline.flaky) {
        if !results.iter().any(|r| r.id == entry.id) {
            comparison.regressions.push(Change {
                id: entry.id.clone(),
                description: entry.description.clone(),
                attempts: Vec::new(),
                expected: Vec::new(),
                actual: Some("h2spec has no test with this id".to_string()),
            });
        }
    }
    comparison
}

/// Counts of a server's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn of(results: &[TestResult]) -> Counts {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Counts {
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {} / {}", self.passed, self.failed, self.skipped)
    }
}

/// One server's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSection {
    pub server: String,
    pub library: String,
    pub counts: Counts,
    /// Compared with the baseline as it was before this run (see [`Comparison`]).
    pub regressions: Vec<Change>,
    pub improvements: Vec<Change>,
    pub unstable: Vec<Change>,
    /// Tests the baseline lists as flaky: reported, not judged.
    pub flaky: usize,
    /// Why the server could not be played (build, start), or what went wrong
    /// around its tests (it exited during the run).
    pub error: Option<String>,
    /// Remarks that do not fail the run (h2spec's dependencies changed).
    pub notes: Vec<String>,
    pub baseline: String,
    /// There was a baseline to compare with.
    pub baseline_found: bool,
    /// The baseline was rewritten from these results (`--update-baseline`).
    pub baseline_updated: bool,
    pub seconds: f64,
    pub tests: Vec<TestResult>,
}

impl ServerSection {
    fn new(imp: &Implementation, baseline: &Path) -> ServerSection {
        ServerSection {
            server: imp.name.clone(),
            library: imp.library_version(),
            counts: Counts::default(),
            regressions: Vec::new(),
            improvements: Vec::new(),
            unstable: Vec::new(),
            flaky: 0,
            error: None,
            notes: Vec::new(),
            baseline: baseline.display().to_string(),
            baseline_found: false,
            baseline_updated: false,
            seconds: 0.0,
            tests: Vec::new(),
        }
    }

    /// True when nothing here fails the run.
    pub fn ok(&self) -> bool {
        self.error.is_none() && (self.regressions.is_empty() || self.baseline_updated)
    }
}

/// The h2spec section of a report: every server's results against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct H2specReport {
    pub schema: String,
    /// The h2spec module version played.
    pub h2spec: String,
    pub h2spec_dependencies: BTreeMap<String, String>,
    pub sections: Vec<String>,
    pub path: String,
    pub test_timeout_seconds: u32,
    pub servers: Vec<ServerSection>,
    /// Stopped by Ctrl-C or SIGTERM: results are partial.
    pub interrupted: bool,
}

impl H2specReport {
    /// True when no server regressed or failed to play, and nothing was interrupted.
    pub fn ok(&self) -> bool {
        !self.interrupted && self.servers.iter().all(ServerSection::ok)
    }

    /// Renders the terminal summary: counts per server, then every
    /// regression, improvement and unstable test by id and description.
    pub fn render(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "h2spec {}: sections {} on {} (per-test timeout {} s)",
            self.h2spec,
            self.sections.join(", "),
            self.path,
            self.test_timeout_seconds
        )?;
        let width = self
            .servers
            .iter()
            .map(|s| s.server.len())
            .chain([6])
            .max()
            .unwrap_or(6);
        writeln!(
            out,
            "  {:<width$}  {:<25}  against the baseline",
            "server", "passed / failed / skipped"
        )?;
        for s in &self.servers {
            let counts = if s.tests.is_empty() {
                "-".to_string()
            } else {
                s.counts.to_string()
            };
            writeln!(
                out,
                "  {:<width$}  {counts:<25}  {}  ({:.1} s)",
                s.server,
                verdict(s),
                s.seconds
            )?;
        }
        for s in self.servers.iter().filter(|s| s.error.is_some()) {
            writeln!(out)?;
            writeln!(out, "ERROR {}:", s.server)?;
            for line in s.error.iter().flat_map(|e| e.lines()) {
                writeln!(out, "  {line}")?;
            }
        }
        for s in self.servers.iter().filter(|s| !s.regressions.is_empty()) {
            writeln!(out)?;
            let how = if s.baseline_updated {
                "no longer passing; the baseline was updated"
            } else {
                "in the baseline, passed on no attempt now"
            };
            writeln!(out, "REGRESSIONS {} ({how}):", s.server)?;
            for c in &s.regressions {
                render_change(out, c)?;
            }
        }
        for s in self.servers.iter().filter(|s| !s.improvements.is_empty()) {
            writeln!(out)?;
            writeln!(
                out,
                "improvements {} (passed on every attempt, not in the baseline):",
                s.server
            )?;
            for c in &s.improvements {
                writeln!(out, "  {}  {}", c.id, c.description)?;
            }
            if !s.baseline_updated {
                writeln!(
                    out,
                    "  record them: interop h2spec --server {} --update-baseline",
                    s.server
                )?;
            }
        }
        for s in self.servers.iter().filter(|s| !s.unstable.is_empty()) {
            writeln!(out)?;
            writeln!(
                out,
                "unstable {} (passed on some attempts only; not judged):",
                s.server
            )?;
            for c in &s.unstable {
                render_change(out, c)?;
            }
            if !s.baseline_updated {
                writeln!(
                    out,
                    "  record them as flaky: interop h2spec --server {} --update-baseline",
                    s.server
                )?;
            }
        }
        for s in &self.servers {
            for note in &s.notes {
                writeln!(out, "note {}: {note}", s.server)?;
            }
        }
        writeln!(out)?;
        let regressed: Vec<String> = self
            .servers
            .iter()
            .filter(|s| !s.regressions.is_empty() && !s.baseline_updated)
            .map(|s| format!("{} {}", s.server, s.regressions.len()))
            .collect();
        let errors: Vec<&str> = self
            .servers
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| s.server.as_str())
            .collect();
        if self.interrupted {
            writeln!(out, "h2spec: INTERRUPTED: the results are partial")?;
        } else if self.ok() {
            writeln!(out, "h2spec: ok: no regression")?;
        } else {
            let mut why = Vec::new();
            if !regressed.is_empty() {
                why.push(format!("regressions ({})", regressed.join(", ")));
            }
            if !errors.is_empty() {
                why.push(format!("servers not played ({})", errors.join(", ")));
            }
            writeln!(out, "h2spec: FAILED: {}", why.join("; "))?;
        }
        Ok(())
    }
}

/// A server's line of the summary, after its counts.
fn verdict(s: &ServerSection) -> String {
    if let Some(e) = &s.error {
        return format!("ERROR: {}", e.lines().next().unwrap_or(""));
    }
    let mut parts = Vec::new();
    if !s.baseline_found {
        parts.push("no baseline before".to_string());
    }
    if !s.regressions.is_empty() {
        parts.push(format!("{} REGRESSED", s.regressions.len()));
    }
    if !s.improvements.is_empty() {
        parts.push(format!("{} improved", s.improvements.len()));
    }
    if !s.unstable.is_empty() {
        parts.push(format!("{} unstable", s.unstable.len()));
    }
    if parts.is_empty() {
        parts.push("as recorded".to_string());
    }
    if s.flaky > 0 {
        parts.push(format!("{} flaky not judged", s.flaky));
    }
    if s.baseline_updated {
        parts.push("baseline updated".to_string());
    }
    parts.join(", ")
}

fn render_change(out: &mut dyn std::io::Write, c: &Change) -> std::io::Result<()> {
    let now = if c.attempts.is_empty() {
        "not in h2spec's listing".to_string()
    } else {
        c.attempts
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "  {}  {}  (now {now})", c.id, c.description)?;
    if !c.expected.is_empty() {
        writeln!(out, "      expected: {}", c.expected.join(" | "))?;
    }
    if let Some(actual) = &c.actual {
        writeln!(out, "      actual:   {actual}")?;
    }
    Ok(())
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct H2specOptions {
    pub root: PathBuf,
    /// The servers to play, in order (see [`eligible`]).
    pub servers: Vec<Implementation>,
    pub baseline_dir: PathBuf,
    /// Rewrite the baselines from this run's results.
    pub update_baseline: bool,
    /// Use what is built; do not build or install.
    pub skip_build: bool,
    /// h2spec processes at a time against one server.
    pub jobs: usize,
    /// h2spec's own per-test timeout (`--timeout`), whole seconds.
    pub test_timeout_secs: u32,
    /// How many more times a test is played when its result contradicts
    /// the baseline (with `update_baseline`: every test), to tell a change
    /// from a flaky test.
    pub retries: u32,
    /// How long all of one server's tests may take.
    pub server_timeout: Duration,
    /// The native backend's settings (servers start in plaintext whatever
    /// their transport says: h2spec speaks h2c here).
    pub settings: Settings,
}

/// The servers h2spec plays: implementations with a server that serves
/// grpc.testing.TestService (it plays the `interop` group). Client-only
/// implementations have none; the bad HTTP/2 server plays only the groups
/// that break HTTP/2 on purpose.
pub fn eligible(impls: &[Implementation]) -> Vec<&Implementation> {
    impls
        .iter()
        .filter(|i| {
            i.server
                .as_ref()
                .is_some_and(|role| role.groups().contains(&CaseGroup::Interop))
        })
        .collect()
}

/// Installs h2spec and plays it against every server of `opts`.
pub async fn run(
    opts: &H2specOptions,
    cancel: CancellationToken,
) -> Result<H2specReport, H2specError> {
    let mut baselines = Vec::new();
    for imp in &opts.servers {
        let path = Baseline::file(&opts.baseline_dir, &imp.name);
        let baseline = Baseline::load(&path, &imp.name)?;
        if baseline.is_none() && !opts.update_baseline {
            return Err(H2specError::NoBaseline {
                server: imp.name.clone(),
                path,
            });
        }
        baselines.push((path, baseline));
    }
    let tool = install(opts).await?;
    if !opts.update_baseline {
        for (path, baseline) in &baselines {
            if let Some(b) = baseline
                && b.h2spec != tool.version
            {
                return Err(H2specError::VersionMismatch {
                    path: path.clone(),
                    recorded: b.h2spec.clone(),
                    installed: tool.version.clone(),
                });
            }
        }
    }
    let listing = list_tests(&tool, &opts.root).await?;
    let scratch = Scratch::new().map_err(|source| H2specError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let backend = Native::new(&opts.root, opts.settings.clone());
    let mut report = H2specReport {
        schema: REPORT_SCHEMA.to_string(),
        h2spec: tool.version.clone(),
        h2spec_dependencies: tool.dependencies.clone(),
        sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
        path: GRPC_PATH.to_string(),
        test_timeout_seconds: opts.test_timeout_secs,
        servers: Vec::new(),
        interrupted: false,
    };
    for (imp, (path, baseline)) in opts.servers.iter().zip(&baselines) {
        if cancel.is_cancelled() {
            break;
        }
        let started = Instant::now();
        let mut section = ServerSection::new(imp, path);
        let rounds = Rounds {
            tests: Tests {
                tool: tool.clone(),
                dir: scratch.0.join(&imp.name),
                jobs: opts.jobs,
                test_timeout_secs: opts.test_timeout_secs,
                deadline: Instant::now() + opts.server_timeout,
                verbose: opts.settings.verbose,
                root: opts.root.clone(),
            },
            listing: &listing,
            retries: opts.retries,
            retry_all: opts.update_baseline,
            baseline: baseline.as_ref(),
        };
        play_server(
            &backend,
            imp,
            opts.skip_build,
            &rounds,
            &mut section,
            &cancel,
        )
        .await;
        section.baseline_found = baseline.is_some();
        if cancel.is_cancelled() {
            section
                .notes
                .push("interrupted: not compared with the baseline".to_string());
        } else if section.tests.is_empty() {
            // It could not be played (see its error): nothing to compare.
        } else if let Some(b) = baseline {
            let comparison = compare(b, &section.tests);
            section.regressions = comparison.regressions;
            section.improvements = comparison.improvements;
            section.unstable = comparison.unstable;
            section.flaky = comparison.flaky;
            if b.h2spec_dependencies != tool.dependencies {
                section.notes.push(format!(
                    "h2spec's dependencies differ from the baseline's: {}",
                    dependency_changes(&b.h2spec_dependencies, &tool.dependencies)
                ));
            }
        }
        let played_fully = section.error.is_none() && !cancel.is_cancelled();
        if opts.update_baseline && played_fully {
            Baseline::of(imp, &tool, &section.tests, baseline.as_ref()).save(path)?;
            section.baseline_updated = true;
        }
        section.seconds = started.elapsed().as_secs_f64();
        report.servers.push(section);
    }
    report.interrupted = cancel.is_cancelled();
    Ok(report)
}

/// `module old -> new` for every dependency that differs.
fn dependency_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    let modules: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    modules
        .into_iter()
        .filter(|m| old.get(*m) != new.get(*m))
        .map(|m| {
            let (was, is) = (old.get(m), new.get(m));
            let v = |version: Option<&String>| version.map_or("-".to_string(), String::clone);
            format!("{m} {} -> {}", v(was), v(is))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the server, starts it, plays every test, stops it (on every path
/// once it started).
async fn play_server(
    backend: &Native,
    imp: &Implementation,
    skip_build: bool,
    rounds: &Rounds<'_>,
    section: &mut ServerSection,
    cancel: &CancellationToken,
) {
    if !skip_build {
        let built = tokio::select! {
            r = backend.prepare(imp) => r,
            // Dropping the build kills its process group.
            _ = cancel.cancelled() => return,
        };
        if let Err(e) = built {
            section.error = Some(format!("build: {e}"));
            return;
        }
    }
    let started = tokio::select! {
        r = backend.start_server(imp, Transport::Plain) => r,
        _ = cancel.cancelled() => return,
    };
    let mut server = match started {
        Ok(server) => server,
        Err(e) => {
            section.error = Some(format!("start: {e}"));
            return;
        }
    };
    let port = server.target().port;
    section.tests = rounds.play(&imp.name, port, cancel).await;
    section.counts = Counts::of(&section.tests);
    let exited = server.exited();
    let logs = server.logs(20);
    server.stop().await;
    if let Some(how) = exited {
        section.error = Some(format!(
            "server {} exited during the tests: {how}\n{}",
            imp.name,
            logs.join("\n")
        ));
    }
}

/// Runs `scripts/h2spec.sh` (unless `skip_build`), then reads the version
/// of the binary it installed.
async fn install(opts: &H2specOptions) -> Result<Tool, H2specError> {
    let binary = Tool::path(&opts.root);
    if !opts.skip_build {
        let script = opts.root.join("scripts/h2spec.sh");
        let argv = vec!["bash".to_string(), script.display().to_string()];
        run_to_end(
            Spec {
                name: "install h2spec".to_string(),
                argv: &argv,
                dir: &opts.root,
                env: &[],
                env_remove: &[],
                echo_logs: opts.settings.verbose,
                cpus: &[],
            },
            opts.settings.build_timeout,
            opts.settings.stop_grace,
        )
        .await
        .map_err(H2specError::Install)?;
    } else if !binary.is_file() {
        return Err(H2specError::Install(format!(
            "{} is not there (run scripts/h2spec.sh, or leave out --no-build)",
            binary.display()
        )));
    }
    let binary_text = binary.display().to_string();
    // `go version -m` reads the build information of a binary: a second or so at most.
    let out = output(
        &["go", "version", "-m", &binary_text],
        &opts.root,
        Duration::from_secs(60),
    )
    .await
    .map_err(H2specError::Install)?;
    let (version, dependencies) = parse_build_info(&out).ok_or_else(|| {
        H2specError::Install(format!(
            "`go version -m {binary_text}` names no module {MODULE}:\n{out}"
        ))
    })?;
    Ok(Tool {
        binary,
        version,
        dependencies,
    })
}

/// Every test of [`SECTIONS`], from h2spec's dry run.
async fn list_tests(tool: &Tool, root: &Path) -> Result<Vec<TestInfo>, H2specError> {
    let mut tests = Vec::new();
    for section in SECTIONS {
        let binary = tool.binary.display().to_string();
        // A dry run connects nowhere and prints titles only: instant.
        let text = output(
            &[&binary, "--dryrun", section],
            root,
            Duration::from_secs(30),
        )
        .await
        .map_err(H2specError::Listing)?;
        tests.extend(parse_listing(section, &text).map_err(H2specError::Listing)?);
    }
    Ok(tests)
}

/// Runs a short command to its end within `limit`; its stdout.
async fn output(argv: &[&str], dir: &Path, limit: Duration) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let shown = argv.join(" ");
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| format!("`{shown}` did not finish within {limit:?}"))?
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed: {}\n{}{}",
            describe(Some(out.status)),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A folder of its own for this run's JUnit files, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "interop-h2spec-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tests of one server, and how to play them.
#[derive(Clone)]
struct Tests {
    tool: Tool,
    /// Where the JUnit files go.
    dir: PathBuf,
    jobs: usize,
    test_timeout_secs: u32,
    /// When every test of this server must be over.
    deadline: Instant,
    verbose: bool,
    root: PathBuf,
}

/// What became of one test's attempt.
enum Played {
    Ran(TestResult),
    /// Not started, or stopped by an interruption: the reason.
    NotRun(String),
}

/// One server's tests: every test once, then again those whose result
/// needs checking, up to `retries` more times.
struct Rounds<'a> {
    tests: Tests,
    listing: &'a [TestInfo],
    retries: u32,
    /// Every test is played again (recording a baseline finds the flaky
    /// ones); otherwise only those whose result contradicts `baseline`.
    retry_all: bool,
    baseline: Option<&'a Baseline>,
}

impl Rounds<'_> {
    /// Every test's result, in the listing's order, with its retries.
    async fn play(&self, server: &str, port: u16, cancel: &CancellationToken) -> Vec<TestResult> {
        let mut results: Vec<TestResult> = self
            .tests
            .play(self.listing, server, port, cancel)
            .await
            .into_iter()
            .zip(self.listing)
            .map(|(played, test)| match played {
                Played::Ran(result) => result,
                Played::NotRun(why) => TestResult::failed(test, format!("not run: {why}"), 0.0),
            })
            .collect();
        for _ in 0..self.retries {
            let again: Vec<TestInfo> = results
                .iter()
                .filter(|r| self.wants_retry(r))
                .map(|r| TestInfo {
                    id: r.id.clone(),
                    description: r.description.clone(),
                })
                .collect();
            if again.is_empty() || cancel.is_cancelled() {
                break;
            }
            let played = self.tests.play(&again, server, port, cancel).await;
            for (test, played) in again.iter().zip(played) {
                // A retry that did not run says nothing about the test.
                if let (Played::Ran(retry), Some(result)) =
                    (played, results.iter_mut().find(|r| r.id == test.id))
                {
                    if result.actual.is_none() && retry.actual.is_some() {
                        // The first attempt that did not pass tells why.
                        result.expected = retry.expected;
                        result.actual = retry.actual;
                    }
                    result.retries.push(retry.status);
                }
            }
        }
        results
    }

    fn wants_retry(&self, result: &TestResult) -> bool {
        // Once it has both passed and not, more attempts add nothing.
        !result.unsteady()
            && (self.retry_all || self.baseline.is_some_and(|b| b.contradicted_by(result)))
    }
}

impl Tests {
    /// Plays `tests` against `port`, `jobs` at a time; one entry per test,
    /// in the order of `tests`. Tests not started by the deadline, or when
    /// cancelled, are not run.
    async fn play(
        &self,
        tests: &[TestInfo],
        server: &str,
        port: u16,
        cancel: &CancellationToken,
    ) -> Vec<Played> {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            let why = format!("cannot create {}: {e}", self.dir.display());
            return tests.iter().map(|_| Played::NotRun(why.clone())).collect();
        }
        let queue: Arc<Mutex<VecDeque<(usize, TestInfo)>>> =
            Arc::new(Mutex::new(tests.iter().cloned().enumerate().collect()));
        let this = Arc::new(self.clone());
        let mut workers = JoinSet::new();
        for _ in 0..this.jobs.max(1) {
            let (this, queue, cancel) = (this.clone(), queue.clone(), cancel.clone());
            let server = server.to_string();
            workers.spawn(async move {
                let mut done = Vec::new();
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some((i, test)) = next else { break };
                    done.push((i, this.play_one(&server, port, &test, &cancel).await));
                }
                done
            });
        }
        let mut played: Vec<Option<Played>> = tests.iter().map(|_| None).collect();
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(done) => {
                    for (i, p) in done {
                        played[i] = Some(p);
                    }
                }
                // A worker that panicked lost its current test; it shows as
                // not run below, never as a pass.
                Err(e) => tracing::error!("an h2spec worker ended abnormally: {e}"),
            }
        }
        played
            .into_iter()
            .map(|p| p.unwrap_or_else(|| Played::NotRun("its worker ended abnormally".into())))
            .collect()
    }

    /// One h2spec process for one test.
    async fn play_one(
        &self,
        server: &str,
        port: u16,
        test: &TestInfo,
        cancel: &CancellationToken,
    ) -> Played {
        if cancel.is_cancelled() {
            return Played::NotRun("interrupted".to_string());
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Played::NotRun("the deadline for this server's tests had passed".to_string());
        }
        // h2spec waits up to its timeout for the connection's SETTINGS and
        // again for each expected frame, two or three waits in all; four and
        // a margin only catch an h2spec that hangs.
        let limit = Duration::from_secs(4 * u64::from(self.test_timeout_secs) + 5);
        let deadline = self.deadline.min(now + limit);
        let junit = self.dir.join(format!("{}.xml", test.id.replace('/', "_")));
        let _ = std::fs::remove_file(&junit);
        let argv: Vec<String> = [
            self.tool.binary.display().to_string(),
            test.id.clone(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--path".into(),
            GRPC_PATH.into(),
            "--timeout".into(),
            self.test_timeout_secs.to_string(),
            "--junit-report".into(),
            junit.display().to_string(),
        ]
        .into();
        let env = [("NO_COLOR".to_string(), "1".to_string())];
        let mut child = match Child::spawn(Spec {
            name: format!("h2spec {} → {server}", test.id),
            argv: &argv,
            dir: &self.root,
            env: &env,
            env_remove: &[],
            echo_logs: self.verbose,
            cpus: &[],
        }) {
            Ok(child) => child,
            Err(e) => return Played::Ran(TestResult::failed(test, e.to_string(), 0.0)),
        };
        let status = tokio::select! {
            s = child.wait_until(deadline) => s,
            _ = cancel.cancelled() => None,
        };
        let seconds = now.elapsed().as_secs_f64();
        let Some(status) = status else {
            // h2spec holds nothing worth a long grace period.
            child.stop(Duration::from_millis(500)).await;
            if cancel.is_cancelled() {
                return Played::NotRun("interrupted".to_string());
            }
            let why = if deadline == self.deadline {
                format!("stopped after {seconds:.1} s: the deadline for this server's tests passed")
            } else {
                format!("h2spec did not finish within {limit:?} and was stopped")
            };
            return Played::Ran(TestResult::failed(test, why, seconds));
        };
        let logs = child.logs().last(20);
        let report = match std::fs::read_to_string(&junit) {
            Ok(text) => text,
            Err(_) => {
                // No report: h2spec stops without one when it cannot connect,
                // and when it has no test of that id.
                let why = if logs.iter().any(|l| l.contains("No matched tests found")) {
                    format!("h2spec has no test {}", test.id)
                } else {
                    let said: Vec<&str> = logs
                        .iter()
                        .map(|l| l.trim())
                        .filter(|l| !l.is_empty())
                        .collect();
                    format!(
                        "h2spec wrote no report ({}): {}",
                        describe(Some(status)),
                        said.join(" / ")
                    )
                };
                return Played::Ran(TestResult::failed(test, why, seconds));
            }
        };
        let cases = match parse_junit(&report) {
            Ok(cases) => cases,
            Err(e) => {
                return Played::Ran(TestResult::failed(
                    test,
                    format!("h2spec's report {} cannot be read: {e}", junit.display()),
                    seconds,
                ));
            }
        };
        Played::Ran(match cases.as_slice() {
            [case] if case.group == test.group() => TestResult {
                id: test.id.clone(),
                description: test.description.clone(),
                status: case.status,
                expected: case.expected.clone(),
                actual: case.actual.clone(),
                seconds,
                retries: Vec::new(),
            },
            _ => TestResult::failed(
                test,
                format!(
                    "h2spec's report has {} test cases ({}), want one of {}",
                    cases.len(),
                    cases
                        .iter()
                        .map(|c| format!("{}: {}", c.group, c.description))
                        .collect::<Vec<_>>()
                        .join("; "),
                    test.group()
                ),
                seconds,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "Hypertext Transfer Protocol Version 2 (HTTP/2)
  3. Starting HTTP/2
    3.5. HTTP/2 Connection Preface
      1: Sends client connection preface
      2: Sends invalid connection preface

  6. Frame Definitions
    6.5. SETTINGS
      6.5.2. Defined SETTINGS Parameters
        1: SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1
";

    #[test]
    fn listing_gives_ids_and_descriptions() {
        let tests = parse_listing("http2", LISTING).unwrap();
        let ids: Vec<&str> = tests.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["http2/3.5/1", "http2/3.5/2", "http2/6.5.2/1"]);
        assert_eq!(
            tests[2].description,
            "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1"
        );
        assert_eq!(tests[2].group(), "http2/6.5.2");
    }

    #[test]
    fn listing_rejects_what_it_does_not_know() {
        let err = parse_listing("http2", &format!("{LISTING}  something else\n")).unwrap_err();
        assert!(err.contains("unexpected \"something else\""), "{err}");
        assert!(parse_listing("http2", "Title only\n").is_err());
        let twice = "T\n  3.5. X\n    1: a\n  3.5. X\n    1: b\n";
        assert!(parse_listing("http2", twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn junit_cases_with_every_outcome() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="1. Starting HTTP/2" package="generic/1" id="1" tests="0" skipped="0" failures="0" errors="0"></testsuite>
  <testsuite name="3.5. HTTP/2 Connection Preface" package="http2/3.5" id="3.5" tests="4" skipped="1" failures="1" errors="1">
    <testcase package="http2/3.5" classname="Sends &#34;quoted&#34; &amp; more" time="0.0011"></testcase>
    <testcase package="http2/3.5" classname="Sends invalid connection preface" time="0.0001">
      <error>GOAWAY Frame (Error Code: PROTOCOL_ERROR)
Connection closed
Error: read tcp 127.0.0.1:48798->127.0.0.1:46007: read: connection reset by peer</error>
    </testcase>
    <testcase package="http2/3.5" classname="Skipped one" time="0.0056">
      <skipped></skipped>
    </testcase>
    <testcase package="http2/3.5" classname="Timed out" time="2.0">
      <error>Timeout</error>
    </testcase>
    <testcase package="http2/3.5" classname="Failure form" time="2.0">
      <failure>Expect:
DATA frame
Actual:
HEADERS Frame (length:83, flags:0x05, stream_id:1)</failure>
    </testcase>
  </testsuite>
</testsuites>"#;
        let cases = parse_junit(xml).unwrap();
        assert_eq!(cases.len(), 5);
        assert_eq!(cases[0].group, "http2/3.5");
        assert_eq!(cases[0].description, "Sends \"quoted\" & more");
        assert_eq!(cases[0].status, Status::Passed);
        assert_eq!(cases[1].status, Status::Failed);
        assert_eq!(
            cases[1].expected,
            [
                "GOAWAY Frame (Error Code: PROTOCOL_ERROR)",
                "Connection closed"
            ]
        );
        assert_eq!(
            cases[1].actual.as_deref(),
            Some(
                "Error: read tcp 127.0.0.1:48798->127.0.0.1:46007: read: connection reset by peer"
            )
        );
        assert_eq!(cases[2].status, Status::Skipped);
        assert_eq!(cases[3].status, Status::Failed);
        assert!(cases[3].expected.is_empty());
        assert_eq!(cases[3].actual.as_deref(), Some("Timeout"));
        assert_eq!(cases[4].expected, ["DATA frame"]);
        assert_eq!(
            cases[4].actual.as_deref(),
            Some("HEADERS Frame (length:83, flags:0x05, stream_id:1)")
        );
        assert!(parse_junit("<testsuites></testsuites>").unwrap().is_empty());
        assert!(parse_junit("<testcase package=\"x\" classname=\"y\">").is_err());
    }

    #[test]
    fn build_info_names_the_module_version_and_dependencies() {
        let text = "/x/h2spec: go1.26.8
\tpath\tgithub.com/summerwind/h2spec/cmd/h2spec
\tmod\tgithub.com/summerwind/h2spec\tv2.2.1+incompatible\th1:Ex8=
\tdep\tgolang.org/x/net\tv0.62.0\th1:18E=
\tbuild\tCGO_ENABLED=1
";
        let (version, deps) = parse_build_info(text).unwrap();
        assert_eq!(version, "v2.2.1+incompatible");
        assert_eq!(deps.get("golang.org/x/net").unwrap(), "v0.62.0");
        assert!(parse_build_info("/x/other: go1.26.8\n\tmod\texample.com/x\tv1.0.0\n").is_none());
    }

    fn result(id: &str, status: Status, retries: &[Status]) -> TestResult {
        TestResult {
            id: id.to_string(),
            description: format!("test {id}"),
            status,
            expected: if status == Status::Failed {
                vec!["GOAWAY Frame (Error Code: PROTOCOL_ERROR)".to_string()]
            } else {
                Vec::new()
            },
            actual: (status == Status::Failed).then(|| "Timeout".to_string()),
            seconds: 0.1,
            retries: retries.to_vec(),
        }
    }

    fn entries(ids: &[&str]) -> Vec<BaselineEntry> {
        ids.iter()
            .map(|id| BaselineEntry {
                id: id.to_string(),
                description: format!("test {id}"),
            })
            .collect()
    }

    fn baseline(passing: &[&str], flaky: &[&str]) -> Baseline {
        Baseline {
            schema: BASELINE_SCHEMA.to_string(),
            server: "rust".to_string(),
            library: "tonic 0.14.9".to_string(),
            h2spec: "v2.2.1+incompatible".to_string(),
            h2spec_dependencies: BTreeMap::new(),
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            path: GRPC_PATH.to_string(),
            passing: entries(passing),
            flaky: entries(flaky),
        }
    }

    use Status::{Failed as F, Passed as P, Skipped as S};

    #[test]
    fn comparison_flags_regressions_and_improvements() {
        let results = [
            result("http2/3.5/1", P, &[]),
            result("http2/3.5/2", F, &[F, F]),
            result("http2/6.5/1", S, &[S, S]),
            result("http2/6.5/2", P, &[P, P]),
            result("http2/6.5/3", F, &[P]),
            result("http2/6.5/4", P, &[F]),
            result("http2/7/1", F, &[]),
        ];
        let c = compare(
            &baseline(
                &[
                    "http2/3.5/1",
                    "http2/3.5/2",
                    "http2/6.5/1",
                    "http2/6.5/3",
                    "http2/9.9/9",
                ],
                &["http2/7/1"],
            ),
            &results,
        );
        let ids = |v: &[Change]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&c.regressions),
            ["http2/3.5/2", "http2/6.5/1", "http2/9.9/9"]
        );
        assert_eq!(c.regressions[0].attempts, [F, F, F]);
        assert_eq!(c.regressions[0].actual.as_deref(), Some("Timeout"));
        assert_eq!(c.regressions[1].attempts, [S, S, S]);
        assert!(c.regressions[2].attempts.is_empty());
        assert_eq!(ids(&c.improvements), ["http2/6.5/2"]);
        // Passed on some attempts only, whichever the baseline says.
        assert_eq!(ids(&c.unstable), ["http2/6.5/3", "http2/6.5/4"]);
        assert_eq!(c.flaky, 1);

        let flaky = ["http2/6.5/3", "http2/6.5/4", "http2/7/1"];
        let same = compare(&baseline(&["http2/3.5/1", "http2/6.5/2"], &flaky), &results);
        assert_eq!(
            same,
            Comparison {
                flaky: 3,
                ..Comparison::default()
            }
        );
    }

    #[test]
    fn contradictions_are_played_again() {
        let b = baseline(&["http2/3.5/1"], &["http2/7/1"]);
        assert!(!b.contradicted_by(&result("http2/3.5/1", P, &[])));
        assert!(b.contradicted_by(&result("http2/3.5/1", F, &[])));
        assert!(b.contradicted_by(&result("http2/3.5/1", F, &[F])));
        assert!(!b.contradicted_by(&result("http2/3.5/1", F, &[P])));
        assert!(b.contradicted_by(&result("http2/6.5/1", P, &[])));
        assert!(!b.contradicted_by(&result("http2/6.5/1", S, &[])));
        assert!(!b.contradicted_by(&result("http2/7/1", P, &[])));
    }

    #[test]
    fn recorded_baselines_keep_flaky_tests_apart() {
        let imp = Implementation::parse(
            "name = \"rust\"\nlibrary = \"tonic\"\nversion = \"0.14.9\"\n[server]\ncommand = [\"s\", \"{port}\"]\n",
            Path::new("rust.toml"),
        )
        .unwrap();
        let tool = Tool {
            binary: PathBuf::from("h2spec"),
            version: "v2.2.1+incompatible".to_string(),
            dependencies: BTreeMap::from([("golang.org/x/net".into(), "v0.62.0".into())]),
        };
        let results = [
            result("http2/3.5/1", P, &[P, P]),
            result("http2/3.5/2", F, &[F, F]),
            result("http2/6.5/1", P, &[F]),
            result("http2/7/1", P, &[P, P]),
        ];
        let previous = baseline(&[], &["http2/7/1"]);
        let b = Baseline::of(&imp, &tool, &results, Some(&previous));
        let ids = |v: &[BaselineEntry]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&b.passing), ["http2/3.5/1"]);
        assert_eq!(ids(&b.flaky), ["http2/6.5/1", "http2/7/1"]);
        assert_eq!(b.library, "tonic 0.14.9");
        assert_eq!(b.h2spec_dependencies, tool.dependencies);
    }

    #[test]
    fn baselines_are_validated_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = Baseline::file(dir.path(), "rust");
        assert!(Baseline::load(&path, "rust").unwrap().is_none());
        let good = baseline(&["http2/3.5/1"], &["http2/7/1"]);
        good.save(&path).unwrap();
        assert_eq!(Baseline::load(&path, "rust").unwrap(), Some(good.clone()));

        let err = Baseline::load(&path, "go").unwrap_err().to_string();
        assert!(err.contains("server is \"rust\", want \"go\""), "{err}");
        let twice = baseline(&["http2/3.5/1"], &["http2/3.5/1"]);
        twice.save(&path).unwrap();
        let err = Baseline::load(&path, "rust").unwrap_err().to_string();
        assert!(err.contains("http2/3.5/1 is listed twice"), "{err}");
        std::fs::write(&path, "{\"schema\": 1}").unwrap();
        let err = Baseline::load(&path, "rust").unwrap_err();
        assert!(err.is_config(), "{err}");
    }

    #[test]
    fn report_lists_counts_regressions_and_improvements() {
        let results = vec![
            result("http2/3.5/1", P, &[]),
            result("http2/3.5/2", F, &[F, F]),
            result("http2/6.5/1", S, &[]),
            result("http2/6.5/2", P, &[P, P]),
            result("http2/6.5/3", P, &[F]),
        ];
        let c = compare(&baseline(&["http2/3.5/1", "http2/3.5/2"], &[]), &results);
        let section = ServerSection {
            server: "rust".to_string(),
            library: "tonic 0.14.9".to_string(),
            counts: Counts::of(&results),
            regressions: c.regressions,
            improvements: c.improvements,
            unstable: c.unstable,
            flaky: c.flaky,
            error: None,
            notes: Vec::new(),
            baseline: "h2spec/baseline-rust.json".to_string(),
            baseline_found: true,
            baseline_updated: false,
            seconds: 1.0,
            tests: results,
        };
        let mut report = H2specReport {
            schema: REPORT_SCHEMA.to_string(),
            h2spec: "v2.2.1+incompatible".to_string(),
            h2spec_dependencies: BTreeMap::new(),
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            path: GRPC_PATH.to_string(),
            test_timeout_seconds: 2,
            servers: vec![section],
            interrupted: false,
        };
        assert!(!report.ok());
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\n  rust    3 / 1 / 1   "), "{text}");
        assert!(
            text.contains("1 REGRESSED, 1 improved, 1 unstable"),
            "{text}"
        );
        assert!(text.contains("REGRESSIONS rust"), "{text}");
        assert!(
            text.contains("  http2/3.5/2  test http2/3.5/2  (now failed, failed, failed)"),
            "{text}"
        );
        assert!(text.contains("actual:   Timeout"), "{text}");
        assert!(text.contains("improvements rust"), "{text}");
        assert!(text.contains("  http2/6.5/2  test http2/6.5/2\n"), "{text}");
        assert!(
            text.contains("record them: interop h2spec --server rust --update-baseline"),
            "{text}"
        );
        assert!(
            text.contains("  http2/6.5/3  test http2/6.5/3  (now passed, failed)"),
            "{text}"
        );
        assert!(
            text.ends_with("h2spec: FAILED: regressions (rust 1)\n"),
            "{text}"
        );

        report.servers[0].baseline_updated = true;
        assert!(report.ok());
        report.servers[0].error = Some("start: no port".to_string());
        assert!(!report.ok());
    }
}
