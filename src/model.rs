//! What a run produces: cells, outcomes and the events reporters consume.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::cases::Case;

/// How one cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    TimedOut,
    Unsupported,
    /// The cell could not be run: a build failed, a server never got ready,
    /// the run was interrupted.
    SetupError,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Unsupported,
        Outcome::SetupError,
    ];

    /// snake_case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Unsupported => "unsupported",
            Outcome::SetupError => "setup_error",
        }
    }

    /// One-character mark for compact tables.
    pub fn mark(self) -> char {
        match self {
            Outcome::Passed => '✓',
            Outcome::Failed => '✗',
            Outcome::TimedOut => '⏱',
            Outcome::Unsupported => '–',
            Outcome::SetupError => '!',
        }
    }
}

/// One cell of the matrix: a client playing one case against one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CellId {
    pub client: String,
    pub server: String,
    pub case: Case,
}

impl CellId {
    /// Hierarchical, filterable name: `client=go/server=rust/ping_pong`.
    pub fn path(&self) -> String {
        format!(
            "client={}/server={}/{}",
            self.client, self.server, self.case
        )
    }
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// The result of one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellResult {
    #[serde(flatten)]
    pub id: CellId,
    pub outcome: Outcome,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Empty when passed; got/want when failed; the reason when unsupported.
    pub message: String,
    /// Set when the cell is listed as a known failure: the listed reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_failure: Option<String>,
    /// Last lines of the logs of the processes involved (failures only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl CellResult {
    /// A cell that got its outcome without a client playing it (unsupported,
    /// setup error, missing result): no duration, no logs.
    pub fn not_run(id: CellId, outcome: Outcome, message: impl Into<String>) -> CellResult {
        CellResult {
            id,
            outcome,
            duration: Duration::ZERO,
            message: message.into(),
            known_failure: None,
            logs: vec![],
        }
    }

    /// Whether the cell is acceptable for the verdict: passed, unsupported,
    /// or a known failure that still fails.
    pub fn is_ok(&self) -> bool {
        match (self.outcome, &self.known_failure) {
            (Outcome::Passed, None) | (Outcome::Unsupported, _) => true,
            (Outcome::Passed, Some(_)) => false,
            (_, Some(_)) => true,
            (_, None) => false,
        }
    }

    /// Whether the cell belongs in a report's failure list: it did not pass
    /// (and is not unsupported), or it is a known failure that passed.
    pub fn is_problem(&self) -> bool {
        !matches!(self.outcome, Outcome::Passed | Outcome::Unsupported) || self.is_unexpected_pass()
    }

    /// Whether a known failure unexpectedly passed.
    pub fn is_unexpected_pass(&self) -> bool {
        self.outcome == Outcome::Passed && self.known_failure.is_some()
    }
}

/// The verdict of a run: not interrupted, and every cell acceptable.
pub fn run_ok(results: &[CellResult], interrupted: bool) -> bool {
    !interrupted && results.iter().all(CellResult::is_ok)
}

/// Unsupported cells grouped by case and reason, with how many cells each.
pub fn unsupported_reasons(results: &[CellResult]) -> BTreeMap<(Case, &str), usize> {
    let mut groups = BTreeMap::new();
    for r in results.iter().filter(|r| r.outcome == Outcome::Unsupported) {
        *groups.entry((r.id.case, r.message.as_str())).or_default() += 1;
    }
    groups
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub cells: usize,
    pub passed: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub unsupported: usize,
    pub setup_error: usize,
    pub known_failures: usize,
    pub unexpected_passes: usize,
}

impl Totals {
    /// Counts the outcomes of `results`.
    pub fn of<'a>(results: impl IntoIterator<Item = &'a CellResult>) -> Totals {
        let mut t = Totals::default();
        for r in results {
            t.add(r);
        }
        t
    }

    /// Counts one more cell.
    pub fn add(&mut self, r: &CellResult) {
        self.cells += 1;
        match r.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Unsupported => self.unsupported += 1,
            Outcome::SetupError => self.setup_error += 1,
        }
        if r.known_failure.is_some()
            && r.outcome != Outcome::Passed
            && r.outcome != Outcome::Unsupported
        {
            self.known_failures += 1;
        }
        if r.is_unexpected_pass() {
            self.unexpected_passes += 1;
        }
    }

    /// How many cells ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        match outcome {
            Outcome::Passed => self.passed,
            Outcome::Failed => self.failed,
            Outcome::TimedOut => self.timed_out,
            Outcome::Unsupported => self.unsupported,
            Outcome::SetupError => self.setup_error,
        }
    }
}

/// Facts about one implementation, for report headers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImplInfo {
    pub name: String,
    pub library: String,
    pub version: String,
    /// Whether it plays the server role in this run.
    pub server: bool,
    /// Whether it plays the client role in this run.
    pub client: bool,
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub backend: String,
    pub tls: bool,
    /// `i/n` when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub implementations: Vec<ImplInfo>,
    pub clients: Vec<String>,
    pub servers: Vec<String>,
    pub cases: Vec<Case>,
    /// Number of planned cells.
    pub cells: usize,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
}

/// A step of a run, as seen by reporters.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted(RunInfo),
    /// A phase message: building, starting servers.
    Phase(String),
    /// A client started playing these cells.
    CellsStarted(Vec<CellId>),
    CellFinished(CellResult),
    RunFinished {
        results: Vec<CellResult>,
        duration: Duration,
        interrupted: bool,
    },
}

/// Consumes the events of a run.
pub trait Reporter: Send {
    fn event(&mut self, event: &Event) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(outcome: Outcome, known: bool) -> CellResult {
        CellResult {
            id: CellId {
                client: "go".into(),
                server: "rust".into(),
                case: Case::PingPong,
            },
            outcome,
            duration: Duration::from_micros(1500),
            message: String::new(),
            known_failure: known.then(|| "bug 1".to_string()),
            logs: vec![],
        }
    }

    #[test]
    fn verdict_of_cells() {
        assert!(cell(Outcome::Passed, false).is_ok());
        assert!(cell(Outcome::Unsupported, false).is_ok());
        assert!(!cell(Outcome::Failed, false).is_ok());
        assert!(!cell(Outcome::TimedOut, false).is_ok());
        assert!(cell(Outcome::Failed, true).is_ok());
        assert!(!cell(Outcome::Passed, true).is_ok());
        assert!(cell(Outcome::Passed, true).is_unexpected_pass());
    }

    #[test]
    fn totals_and_json_shape() {
        let cells = [
            cell(Outcome::Passed, false),
            cell(Outcome::Failed, true),
            cell(Outcome::Passed, true),
        ];
        let t = Totals::of(&cells);
        assert_eq!(
            (
                t.cells,
                t.passed,
                t.failed,
                t.known_failures,
                t.unexpected_passes
            ),
            (3, 2, 1, 1, 1)
        );
        let json = serde_json::to_value(&cells[0]).unwrap();
        assert_eq!(json["client"], "go");
        assert_eq!(json["case"], "ping_pong");
        assert_eq!(json["outcome"], "passed");
        assert_eq!(json["duration_ms"], 1.5);
        assert_eq!(cells[0].id.path(), "client=go/server=rust/ping_pong");
    }
}
