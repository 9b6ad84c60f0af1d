//! What a run produces: cells, outcomes and the events reporters consume.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::cases::Case;
use crate::protocol::CheckState;

/// How one cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// Passed, but a check of the case was not made: the client's library
    /// cannot make it (the reasons are in [`CellResult::not_checked`]).
    PassedPartial,
    Failed,
    TimedOut,
    /// The cell is declared unsupported by a manifest and was shown not to
    /// work (played and failed, or the client reported it cannot attempt it).
    Unsupported,
    /// The cell could not be run: a build failed, a server never got ready,
    /// the run was interrupted.
    SetupError,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Passed,
        Outcome::PassedPartial,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Unsupported,
        Outcome::SetupError,
    ];

    /// snake_case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::PassedPartial => "passed_partial",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Unsupported => "unsupported",
            Outcome::SetupError => "setup_error",
        }
    }

    /// Words for people: `passed partial`.
    pub fn words(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::PassedPartial => "passed partial",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Unsupported => "unsupported",
            Outcome::SetupError => "setup error",
        }
    }

    /// One-character mark for compact tables.
    pub fn mark(self) -> char {
        match self {
            Outcome::Passed => '✓',
            Outcome::PassedPartial => '◐',
            Outcome::Failed => '✗',
            Outcome::TimedOut => '⏱',
            Outcome::Unsupported => '–',
            Outcome::SetupError => '!',
        }
    }

    /// Passed, fully or partially.
    pub fn is_pass(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::PassedPartial)
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

/// Which outcome a known failure absorbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accepts {
    /// The cell fails (the default).
    Failed,
    TimedOut,
    SetupError,
    /// The outcome depends on a race: passed and failed are both accepted,
    /// and every report says which one it was this time.
    Race,
}

impl Accepts {
    /// snake_case name, as in known-failures.toml.
    pub fn name(self) -> &'static str {
        match self {
            Accepts::Failed => "failed",
            Accepts::TimedOut => "timed_out",
            Accepts::SetupError => "setup_error",
            Accepts::Race => "race",
        }
    }

    /// Whether a cell that ended with `outcome` is what this entry expects.
    pub fn absorbs(self, outcome: Outcome) -> bool {
        match self {
            Accepts::Failed => outcome == Outcome::Failed,
            Accepts::TimedOut => outcome == Outcome::TimedOut,
            Accepts::SetupError => outcome == Outcome::SetupError,
            Accepts::Race => outcome.is_pass() || outcome == Outcome::Failed,
        }
    }
}

/// A cell's entry in known-failures.toml.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownFailure {
    /// Why it fails.
    pub reason: String,
    /// The library and version that behaves so, e.g. `tonic 0.14.9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The outcome the entry absorbs.
    pub accepts: Accepts,
}

impl KnownFailure {
    /// `reason (library)` for reports.
    pub fn describe(&self) -> String {
        match &self.library {
            Some(l) => format!("{}: {}", l, self.reason),
            None => self.reason.clone(),
        }
    }
}

/// Why a cell counts against the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Failed, timed out or a setup error, and not an expected one.
    NotPassed,
    /// A known failure (not a race) passed: fixed, remove the entry.
    UnexpectedPass,
    /// A known failure ended with another outcome than the one it names.
    OtherOutcome,
    /// A cell a manifest declares unsupported passed in full.
    UnexpectedlySupported,
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
    /// The checks the client made, each passed or failed; `None` when no
    /// result named any (the cell was not played, or the result line said none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<String, CheckState>>,
    /// Checks the client's library cannot make, with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub not_checked: BTreeMap<String, String>,
    /// Numbers the case measured, as the client reported them (the soak
    /// cases: `iterations`, `failures`, `latency_ms_p50` ... `_max`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// What the case saw that is reported, not checked (the `bad_input`
    /// cases: the server's `answer`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub observed: BTreeMap<String, String>,
    /// How the client reported: `None` in result lines naming their checks;
    /// `Some("exit_status")` for a client that reports a case by its exit status only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<&'static str>,
    /// Set when a manifest declares the cell unsupported: the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Set when the cell is listed as a known failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_failure: Option<KnownFailure>,
    /// Last lines of the logs of the processes involved (failures only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl CellResult {
    /// A result with nothing but an outcome and a message: no duration,
    /// checks or logs (a cell that was not played, or is judged as a whole).
    pub fn not_run(id: CellId, outcome: Outcome, message: impl Into<String>) -> CellResult {
        CellResult {
            id,
            outcome,
            duration: Duration::ZERO,
            message: message.into(),
            checks: None,
            not_checked: BTreeMap::new(),
            metrics: BTreeMap::new(),
            observed: BTreeMap::new(),
            reported_by: None,
            unsupported: None,
            known_failure: None,
            logs: vec![],
        }
    }

    /// Why the cell counts against the verdict, if it does.
    pub fn problem(&self) -> Option<Problem> {
        if self.outcome == Outcome::Unsupported {
            return None;
        }
        if let Some(known) = &self.known_failure {
            return if known.accepts.absorbs(self.outcome) {
                None
            } else if self.outcome.is_pass() {
                Some(Problem::UnexpectedPass)
            } else {
                Some(Problem::OtherOutcome)
            };
        }
        match (self.outcome, &self.unsupported) {
            (Outcome::Passed, Some(_)) => Some(Problem::UnexpectedlySupported),
            (o, _) if o.is_pass() => None,
            _ => Some(Problem::NotPassed),
        }
    }

    /// Whether the cell is acceptable for the verdict.
    pub fn is_ok(&self) -> bool {
        self.problem().is_none()
    }

    /// Whether the cell belongs in a report's failure list: it counts against
    /// the verdict, or it is a known failure that still fails as it should.
    pub fn is_problem(&self) -> bool {
        self.problem().is_some() || (self.known_failure.is_some() && !self.outcome.is_pass())
    }

    /// Whether a known failure (not a race) unexpectedly passed.
    pub fn is_unexpected_pass(&self) -> bool {
        self.problem() == Some(Problem::UnexpectedPass)
    }

    /// How a report names the cell's state in its failure list, e.g.
    /// `FAILED`, `UNEXPECTEDLY SUPPORTED (declared: ...)`.
    pub fn tag(&self) -> String {
        self.tag_with(self.outcome.words().to_uppercase())
    }

    /// [`CellResult::tag`] in lower case, the reasons as they are.
    pub fn tag_lower(&self) -> String {
        self.tag_with(self.outcome.words().to_string())
            .replacen("UNEXPECTED PASS", "unexpected pass", 1)
            .replacen("UNEXPECTEDLY SUPPORTED", "unexpectedly supported", 1)
    }

    fn tag_with(&self, outcome: String) -> String {
        match (self.problem(), &self.known_failure) {
            (Some(Problem::UnexpectedPass), Some(k)) => {
                format!(
                    "UNEXPECTED PASS (listed as a known failure: {})",
                    k.describe()
                )
            }
            (Some(Problem::OtherOutcome), Some(k)) => format!(
                "{outcome} (listed as a known failure that is {}: {})",
                k.accepts.name(),
                k.describe()
            ),
            (Some(Problem::UnexpectedlySupported), _) => format!(
                "UNEXPECTEDLY SUPPORTED (a manifest declares it unsupported: {}; remove that entry)",
                self.unsupported.as_deref().unwrap_or("")
            ),
            (None, Some(k)) if k.accepts == Accepts::Race => format!(
                "{outcome} (race, either outcome accepted: {})",
                k.describe()
            ),
            (None, Some(k)) => format!("{outcome} (known failure: {})", k.describe()),
            _ => outcome,
        }
    }

    /// The checks the client made that failed, by name.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .flatten()
            .filter(|(_, s)| **s == CheckState::Failed)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// The verdict of a run: not interrupted, and every cell acceptable.
pub fn run_ok(results: &[CellResult], interrupted: bool) -> bool {
    !interrupted && results.iter().all(CellResult::is_ok)
}

/// Unsupported cells grouped by case and declared reason, with how many cells each.
pub fn unsupported_reasons(results: &[CellResult]) -> BTreeMap<(Case, &str), usize> {
    let mut groups = BTreeMap::new();
    for r in results.iter().filter(|r| r.outcome == Outcome::Unsupported) {
        let reason = r.unsupported.as_deref().unwrap_or(r.message.as_str());
        *groups.entry((r.id.case, reason)).or_default() += 1;
    }
    groups
}

/// How a report shows the numbers a cell measured: the soak cases'
/// iterations, failures and latency percentiles; `None` when it has none.
pub fn metrics_text(r: &CellResult) -> Option<String> {
    if r.id.case.group() != crate::cases::CaseGroup::Soak {
        return None;
    }
    if r.metrics.is_empty() {
        return (r.id.case.group() == crate::cases::CaseGroup::Soak && r.outcome.is_pass()).then(
            || match r.reported_by {
                Some(how) => format!(
                    "no latencies: the client reports by its {}",
                    how.replace('_', " ")
                ),
                None => "no latencies reported".to_string(),
            },
        );
    }
    let get = |k: &str| r.metrics.get(k).copied();
    let mut parts = Vec::new();
    if let (Some(n), Some(f)) = (get("iterations"), get("failures")) {
        parts.push(format!("{n} iterations, {f} failed"));
    }
    let latencies: Vec<String> = [
        ("p50", "latency_ms_p50"),
        ("p90", "latency_ms_p90"),
        ("p99", "latency_ms_p99"),
        ("max", "latency_ms_max"),
    ]
    .iter()
    .filter_map(|(label, key)| get(key).map(|v| format!("{label} {v:.3} ms")))
    .collect();
    if !latencies.is_empty() {
        parts.push(latencies.join(", "));
    }
    let known = [
        "iterations",
        "failures",
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_p99",
        "latency_ms_max",
    ];
    parts.extend(
        r.metrics
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{k} {v}")),
    );
    Some(parts.join("; "))
}

/// What a `bad_input` cell saw, for reports: the server's answer and its
/// resident memory before and after the case. `None` for other cells and
/// for cells that report neither.
pub fn bad_input_text(r: &CellResult) -> Option<String> {
    if r.id.case.group() != crate::cases::CaseGroup::BadInput {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(answer) = r.observed.get("answer") {
        parts.push(format!("answer: {answer}"));
    }
    let mib = |kib: f64| kib / 1024.0;
    match (
        r.metrics.get("server_rss_before_kib"),
        r.metrics.get("server_rss_after_kib"),
    ) {
        (Some(&before), Some(&after)) => parts.push(format!(
            "server memory {:.1} → {:.1} MiB ({:+.1})",
            mib(before),
            mib(after),
            mib(after - before)
        )),
        _ if !parts.is_empty() => parts.push("server memory not measured".to_string()),
        _ => {}
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The cells whose known-failure entry is a race.
pub fn races(results: &[CellResult]) -> impl Iterator<Item = &CellResult> {
    results.iter().filter(|r| {
        r.known_failure
            .as_ref()
            .is_some_and(|k| k.accepts == Accepts::Race)
    })
}

/// Checks not made, grouped by client, case, check and reason, with the
/// cells each (the partial passes and unconfirmed unsupported cells).
pub fn not_checked_reasons(results: &[CellResult]) -> BTreeMap<(&str, Case, &str, &str), usize> {
    let mut groups = BTreeMap::new();
    for r in results {
        for (check, reason) in &r.not_checked {
            *groups
                .entry((
                    r.id.client.as_str(),
                    r.id.case,
                    check.as_str(),
                    reason.as_str(),
                ))
                .or_default() += 1;
        }
    }
    groups
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub cells: usize,
    pub passed: usize,
    pub passed_partial: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub unsupported: usize,
    pub setup_error: usize,
    /// Cells listed in known-failures.toml that ended as the entry says.
    pub known_failures: usize,
    /// Of those, race entries (either outcome accepted).
    pub races: usize,
    pub unexpected_passes: usize,
    pub unexpectedly_supported: usize,
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
            Outcome::PassedPartial => self.passed_partial += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Unsupported => self.unsupported += 1,
            Outcome::SetupError => self.setup_error += 1,
        }
        if let Some(k) = &r.known_failure
            && r.outcome != Outcome::Unsupported
            && r.problem().is_none()
        {
            self.known_failures += 1;
            if k.accepts == Accepts::Race {
                self.races += 1;
            }
        }
        match r.problem() {
            Some(Problem::UnexpectedPass) => self.unexpected_passes += 1,
            Some(Problem::UnexpectedlySupported) => self.unexpectedly_supported += 1,
            _ => {}
        }
    }

    /// How many cells ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        match outcome {
            Outcome::Passed => self.passed,
            Outcome::PassedPartial => self.passed_partial,
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
    /// `plaintext`, `tls` or `mtls`: the run's transport (the `tls` group
    /// is always played over mTLS, `bad_input` in plaintext).
    pub transport: String,
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
        /// Checks of the run as a whole that were not made, and why.
        notes: Vec<String>,
    },
}

/// A finished run, as reporters render it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub results: &'a [CellResult],
    pub duration: Duration,
    pub interrupted: bool,
    /// Checks of the run as a whole that were not made, and why.
    pub notes: &'a [String],
}

impl<'a> Finished<'a> {
    /// A run with no notes.
    pub fn of(results: &'a [CellResult], duration: Duration, interrupted: bool) -> Self {
        Finished {
            results,
            duration,
            interrupted,
            notes: &[],
        }
    }

    /// Whether the run passes: not interrupted, every cell acceptable.
    pub fn ok(&self) -> bool {
        run_ok(self.results, self.interrupted)
    }
}

impl Event {
    /// The finished run, when this is `RunFinished`.
    pub fn finished(&self) -> Option<Finished<'_>> {
        match self {
            Event::RunFinished {
                results,
                duration,
                interrupted,
                notes,
            } => Some(Finished {
                results,
                duration: *duration,
                interrupted: *interrupted,
                notes,
            }),
            _ => None,
        }
    }
}

/// Consumes the events of a run.
pub trait Reporter: Send {
    fn event(&mut self, event: &Event) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(outcome: Outcome, known: Option<Accepts>) -> CellResult {
        CellResult {
            known_failure: known.map(|accepts| KnownFailure {
                reason: "bug 1".into(),
                library: Some("lib 1.0".into()),
                accepts,
            }),
            duration: Duration::from_micros(1500),
            ..CellResult::not_run(
                CellId {
                    client: "go".into(),
                    server: "rust".into(),
                    case: Case::PingPong,
                },
                outcome,
                "",
            )
        }
    }

    #[test]
    fn verdict_of_cells() {
        use Outcome::*;
        assert!(cell(Passed, None).is_ok());
        assert!(cell(PassedPartial, None).is_ok());
        assert!(cell(Unsupported, None).is_ok());
        assert!(!cell(Failed, None).is_ok());
        assert!(!cell(TimedOut, None).is_ok());
        assert!(cell(Failed, Some(Accepts::Failed)).is_ok());
        assert!(!cell(Passed, Some(Accepts::Failed)).is_ok());
        assert!(cell(Passed, Some(Accepts::Failed)).is_unexpected_pass());
        assert!(!cell(PassedPartial, Some(Accepts::Failed)).is_ok());
    }

    #[test]
    fn known_failures_absorb_only_the_outcome_they_name() {
        use Outcome::*;
        // A timeout or a setup error is not a failure unless the entry says so.
        assert_eq!(
            cell(TimedOut, Some(Accepts::Failed)).problem(),
            Some(Problem::OtherOutcome)
        );
        assert_eq!(
            cell(SetupError, Some(Accepts::Failed)).problem(),
            Some(Problem::OtherOutcome)
        );
        assert!(cell(TimedOut, Some(Accepts::TimedOut)).is_ok());
        assert!(!cell(Failed, Some(Accepts::TimedOut)).is_ok());
        assert!(cell(SetupError, Some(Accepts::SetupError)).is_ok());
        // A race accepts passed and failed, never a timeout.
        assert!(cell(Passed, Some(Accepts::Race)).is_ok());
        assert!(cell(Failed, Some(Accepts::Race)).is_ok());
        assert!(!cell(TimedOut, Some(Accepts::Race)).is_ok());
        assert!(
            cell(Passed, Some(Accepts::Race))
                .tag()
                .contains("race, either outcome accepted")
        );
        assert!(cell(Failed, Some(Accepts::Race)).is_problem());
        assert!(!cell(Passed, Some(Accepts::Race)).is_problem());
    }

    #[test]
    fn a_declared_unsupported_cell_that_passes_in_full_is_a_problem() {
        let mut c = cell(Outcome::Passed, None);
        c.unsupported = Some("client go: cannot".into());
        assert_eq!(c.problem(), Some(Problem::UnexpectedlySupported));
        assert!(c.tag().starts_with("UNEXPECTEDLY SUPPORTED"), "{}", c.tag());
        c.outcome = Outcome::Unsupported;
        assert!(c.is_ok());
    }

    #[test]
    fn totals_and_json_shape() {
        let mut partial = cell(Outcome::PassedPartial, None);
        partial
            .not_checked
            .insert("response_compressed".into(), "cannot see".into());
        let cells = [
            cell(Outcome::Passed, None),
            cell(Outcome::Failed, Some(Accepts::Failed)),
            cell(Outcome::Passed, Some(Accepts::Failed)),
            cell(Outcome::Failed, Some(Accepts::Race)),
            partial,
        ];
        let t = Totals::of(&cells);
        assert_eq!(
            (
                t.cells,
                t.passed,
                t.passed_partial,
                t.failed,
                t.known_failures,
                t.races,
                t.unexpected_passes
            ),
            (5, 2, 1, 2, 2, 1, 1)
        );
        let json = serde_json::to_value(&cells[0]).unwrap();
        assert_eq!(json["client"], "go");
        assert_eq!(json["case"], "ping_pong");
        assert_eq!(json["outcome"], "passed");
        assert_eq!(json["duration_ms"], 1.5);
        assert!(json.get("not_checked").is_none());
        let json = serde_json::to_value(&cells[4]).unwrap();
        assert_eq!(json["outcome"], "passed_partial");
        assert_eq!(json["not_checked"]["response_compressed"], "cannot see");
        let json = serde_json::to_value(&cells[3]).unwrap();
        assert_eq!(json["known_failure"]["accepts"], "race");
        assert_eq!(json["known_failure"]["library"], "lib 1.0");
        assert_eq!(cells[0].id.path(), "client=go/server=rust/ping_pong");
    }
}
