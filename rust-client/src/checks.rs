//! Assertions as values: every failed check is recorded with what was called,
//! what came back and what was wanted, and the next check still runs.

use std::fmt::{Debug, Display};

use grpc_interop::pb::grpc_testing::Payload;
use tonic::{Code, Status};

/// The failed checks of one case, in the order they were made.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Records a failure described in full by the caller.
    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }

    /// `what = got, want want` unless equal. Returns whether they were.
    pub fn equal<T: PartialEq + Debug>(&mut self, what: impl Display, got: T, want: T) -> bool {
        let same = got == want;
        if !same {
            self.fail(format!("{what} = {got:?}, want {want:?}"));
        }
        same
    }

    /// The value of a call that had to succeed; records the status otherwise.
    pub fn ok<T>(&mut self, call: impl Display, result: Result<T, Status>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(status) => {
                self.fail(format!("{call} status = {}, want OK", describe(&status)));
                None
            }
        }
    }

    /// A call that had to fail with `code` (and exactly `message`, when given).
    pub fn status<T>(
        &mut self,
        call: impl Display,
        result: Result<T, Status>,
        code: Code,
        message: Option<&str>,
    ) {
        match result {
            Ok(_) => self.fail(format!("{call} status = OK, want {}", code_text(code))),
            Err(status) if status.code() != code => {
                self.fail(format!(
                    "{call} status = {}, want {}",
                    describe(&status),
                    code_text(code)
                ));
            }
            Err(status) => {
                if let Some(want) = message {
                    self.equal(
                        format_args!("{call} status message"),
                        status.message(),
                        want,
                    );
                }
            }
        }
    }

    /// A response payload: present, `want` bytes long, all zero.
    pub fn payload(&mut self, what: impl Display, payload: Option<&Payload>, want: i32) {
        let Some(payload) = payload else {
            self.fail(format!("{what} payload missing, want {want} bytes"));
            return;
        };
        let len = payload.body.len();
        if usize::try_from(want).ok() != Some(len) {
            self.fail(format!("{what} payload size = {len}, want {want}"));
        }
        let non_zero = payload.body.iter().filter(|b| **b != 0).count();
        if non_zero > 0 {
            self.fail(format!(
                "{what} payload has {non_zero} non-zero bytes, want all zero"
            ));
        }
    }

    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Every failure, joined with `; `.
    pub fn message(&self) -> String {
        self.failures.join("; ")
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
    fn failures_accumulate_in_order_and_join() {
        let mut checks = Checks::default();
        assert!(checks.equal("StreamingInputCall aggregated_payload_size", 74922, 74922));
        assert!(!checks.equal("StreamingInputCall aggregated_payload_size", 74921, 74922));
        checks.status("UnaryCall", Ok::<(), Status>(()), Code::Unknown, None);
        checks.status(
            "UnaryCall",
            Err::<(), _>(Status::unknown("x")),
            Code::Unknown,
            Some("y"),
        );
        assert!(!checks.passed());
        assert_eq!(
            checks.message(),
            "StreamingInputCall aggregated_payload_size = 74921, want 74922; \
             UnaryCall status = OK, want UNKNOWN (2); \
             UnaryCall status message = \"x\", want \"y\""
        );
    }

    #[test]
    fn payload_checks_size_and_content() {
        let mut checks = Checks::default();
        checks.payload(
            "UnaryCall",
            Some(&Payload {
                r#type: 0,
                body: vec![0, 1, 0],
            }),
            4,
        );
        checks.payload("UnaryCall", None, 4);
        assert_eq!(
            checks.message(),
            "UnaryCall payload size = 3, want 4; UnaryCall payload has 1 non-zero bytes, want all zero; \
             UnaryCall payload missing, want 4 bytes"
        );
    }
}
