//! Assertions as values: every check is recorded under its name from the
//! contract's checks table, a failed one with what was called, what came
//! back and what was wanted, and the next check still runs.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::time::Duration;

use grpc_interop::pb::grpc_testing::{Payload, PayloadType};
use serde::Serialize;
use tonic::{Code, Status};

/// How long after a call's deadline the client waits for tonic to end the
/// call before it gives up on it. A library that honours deadlines ends the
/// call at the deadline; this only catches one that does not.
pub const DEADLINE_BACKSTOP: Duration = Duration::from_secs(3);

/// How one named check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Passed,
    Failed,
}

/// Why a call gave no value: the status tonic returned, unchanged, or tonic
/// not ending the call at all.
#[derive(Debug)]
pub enum CallError {
    /// The status the library returned.
    Status(Status),
    /// The library had not ended the call [`DEADLINE_BACKSTOP`] after its deadline.
    Overrun {
        /// The call's deadline.
        deadline: Duration,
    },
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        CallError::Status(status)
    }
}

impl Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(status) => f.write_str(&describe(status)),
            CallError::Overrun { deadline } => write!(
                f,
                "no end: tonic did not end the call within {DEADLINE_BACKSTOP:?} after its {deadline:?} deadline"
            ),
        }
    }
}

/// The checks of one case, in the order they were made.
#[derive(Debug, Default)]
pub struct Checks {
    made: BTreeMap<String, CheckState>,
    not_checked: BTreeMap<String, String>,
    failures: Vec<String>,
    metrics: BTreeMap<String, f64>,
}

impl Checks {
    /// Records check `name` as passed (unless it already failed).
    pub fn pass(&mut self, name: &str) {
        self.made
            .entry(name.to_string())
            .or_insert(CheckState::Passed);
    }

    /// Records check `name` as failed, described in full by the caller.
    pub fn fail(&mut self, name: &str, failure: impl Into<String>) {
        self.made.insert(name.to_string(), CheckState::Failed);
        self.failures.push(failure.into());
    }

    /// Records check `name`, failed with `failure()` unless `ok`. Returns `ok`.
    pub fn record(&mut self, name: &str, ok: bool, failure: impl FnOnce() -> String) -> bool {
        if ok {
            self.pass(name);
        } else {
            self.fail(name, failure());
        }
        ok
    }

    /// Check `name`: `what = got, want want` unless equal. Returns whether they were.
    pub fn equal<T: PartialEq + Debug>(
        &mut self,
        name: &str,
        what: impl Display,
        got: T,
        want: T,
    ) -> bool {
        let same = got == want;
        self.record(name, same, || format!("{what} = {got:?}, want {want:?}"))
    }

    /// Check `name` on a call that had to succeed: its value, or the failure recorded.
    pub fn ok<T>(
        &mut self,
        name: &str,
        call: impl Display,
        result: Result<T, CallError>,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.pass(name);
                Some(value)
            }
            Err(error) => {
                self.fail(name, format!("{call} status = {error}, want OK"));
                None
            }
        }
    }

    /// A call that had to fail with `code`: check `code_name`; and with
    /// exactly `message` (check `message_name`), when given and the code was right.
    pub fn status<T>(
        &mut self,
        code_name: &str,
        call: impl Display,
        result: Result<T, CallError>,
        code: Code,
        message: Option<(&str, &str)>,
    ) {
        match result {
            Ok(_) => self.fail(
                code_name,
                format!("{call} status = OK, want {}", code_text(code)),
            ),
            Err(error @ CallError::Overrun { .. }) => self.fail(
                code_name,
                format!("{call} status = {error}, want {}", code_text(code)),
            ),
            Err(CallError::Status(status)) if status.code() != code => self.fail(
                code_name,
                format!(
                    "{call} status = {}, want {}",
                    describe(&status),
                    code_text(code)
                ),
            ),
            Err(CallError::Status(status)) => {
                self.pass(code_name);
                if let Some((message_name, want)) = message {
                    self.equal(
                        message_name,
                        format_args!("{call} status message"),
                        status.message(),
                        want,
                    );
                }
            }
        }
    }

    /// A response payload: present, `want` bytes long, all zero and of type
    /// COMPRESSABLE: checks `<prefix>payload_size`, `_body` and `_type`.
    pub fn payload(
        &mut self,
        prefix: &str,
        what: impl Display,
        payload: Option<&Payload>,
        want: i32,
    ) {
        let [size, body, kind] =
            ["payload_size", "payload_body", "payload_type"].map(|n| format!("{prefix}{n}"));
        let Some(payload) = payload else {
            self.fail(&size, format!("{what} payload missing, want {want} bytes"));
            return;
        };
        let len = payload.body.len();
        self.record(&size, usize::try_from(want).ok() == Some(len), || {
            format!("{what} payload size = {len}, want {want}")
        });
        let non_zero = payload.body.iter().filter(|b| **b != 0).count();
        self.record(&body, non_zero == 0, || {
            format!("{what} payload has {non_zero} non-zero bytes, want all zero")
        });
        let compressable = PayloadType::Compressable as i32;
        self.record(&kind, payload.r#type == compressable, || {
            format!(
                "{what} payload type = {}, want COMPRESSABLE ({compressable})",
                payload.r#type
            )
        });
    }

    /// Check `name` is one this client's library cannot make, for `reason`.
    pub fn not_made(&mut self, name: &str, reason: &str) {
        self.not_checked
            .insert(name.to_string(), reason.to_string());
    }

    /// Records a number the case measured.
    pub fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }

    /// The numbers the case measured.
    pub fn metrics(&self) -> &BTreeMap<String, f64> {
        &self.metrics
    }

    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Every failure, joined with `; `.
    pub fn message(&self) -> String {
        self.failures.join("; ")
    }

    /// The checks made, by name.
    pub fn made(&self) -> &BTreeMap<String, CheckState> {
        &self.made
    }

    /// The checks not made, with the reason.
    pub fn not_checked(&self) -> &BTreeMap<String, String> {
        &self.not_checked
    }
}

/// The canonical name and number of a status code, e.g. `UNIMPLEMENTED (12)`.
pub fn code_text(code: Code) -> String {
    let name = match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    };
    format!("{name} ({})", code as i32)
}

/// A status as reported in failure messages: code and quoted message.
pub fn describe(status: &Status) -> String {
    format!("{} {:?}", code_text(status.code()), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_accumulate_in_order_and_name_their_checks() {
        let mut checks = Checks::default();
        assert!(checks.equal(
            "aggregated_size",
            "StreamingInputCall aggregated_payload_size",
            74922,
            74922
        ));
        assert!(!checks.equal(
            "aggregated_size",
            "StreamingInputCall aggregated_payload_size",
            74921,
            74922
        ));
        checks.status(
            "unary.status_code",
            "UnaryCall",
            Ok::<(), CallError>(()),
            Code::Unknown,
            None,
        );
        checks.status(
            "duplex.status_code",
            "FullDuplexCall",
            Err::<(), _>(Status::unknown("x").into()),
            Code::Unknown,
            Some(("duplex.status_message", "y")),
        );
        assert!(!checks.passed());
        assert_eq!(
            checks.message(),
            "StreamingInputCall aggregated_payload_size = 74921, want 74922; \
             UnaryCall status = OK, want UNKNOWN (2); \
             FullDuplexCall status message = \"x\", want \"y\""
        );
        let made: Vec<(&str, CheckState)> = checks
            .made()
            .iter()
            .map(|(n, s)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            made,
            [
                ("aggregated_size", CheckState::Failed),
                ("duplex.status_code", CheckState::Passed),
                ("duplex.status_message", CheckState::Failed),
                ("unary.status_code", CheckState::Failed),
            ]
        );
    }

    #[test]
    fn a_failed_check_stays_failed_when_made_again() {
        let mut checks = Checks::default();
        checks.fail("status", "first call failed");
        checks.pass("status");
        assert_eq!(checks.made()["status"], CheckState::Failed);
    }

    #[test]
    fn payload_checks_size_body_and_type() {
        let mut checks = Checks::default();
        checks.payload(
            "unary.",
            "UnaryCall",
            Some(&Payload {
                r#type: 1,
                body: vec![0, 1, 0],
            }),
            4,
        );
        assert_eq!(
            checks.message(),
            "UnaryCall payload size = 3, want 4; UnaryCall payload has 1 non-zero bytes, want all zero; \
             UnaryCall payload type = 1, want COMPRESSABLE (0)"
        );
        assert_eq!(checks.made().len(), 3);
        assert!(checks.made().contains_key("unary.payload_type"));
        let mut checks = Checks::default();
        checks.payload("", "UnaryCall", None, 4);
        assert_eq!(checks.message(), "UnaryCall payload missing, want 4 bytes");
    }

    #[test]
    fn an_overrun_is_a_failure_that_names_the_library_not_a_status() {
        let mut checks = Checks::default();
        let overrun = CallError::Overrun {
            deadline: Duration::from_millis(1),
        };
        checks.status(
            "status_code",
            "FullDuplexCall",
            Err::<(), _>(overrun),
            Code::DeadlineExceeded,
            None,
        );
        assert_eq!(
            checks.message(),
            "FullDuplexCall status = no end: tonic did not end the call within 3s after its 1ms deadline, \
             want DEADLINE_EXCEEDED (4)"
        );
    }
}
