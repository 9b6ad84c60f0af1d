//! The JSON-lines protocol between the runner and the programs it starts
//! (implementations/CONTRACT.md): a server's readiness line, a client's
//! ready, result and done lines. This module is the one place that parses
//! them, for the native and docker backends and for `interop collect`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a line a program printed on stdout belongs to the protocol (a
/// JSON object) or is a log line.
pub fn is_protocol_line(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

/// One protocol line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A server accepts connections on `port`.
    Listening { port: u16 },
    /// A client made its channel and starts its first case.
    Ready,
    /// A client finished one case.
    Result(ResultLine),
    /// A client finished its last case, after `cases` result lines.
    Done { cases: usize },
    /// A client in load mode finished its load (`interop bench`).
    Load(LoadLine),
}

/// Why a protocol line could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("no \"event\" field")]
    NoEvent,
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("bad {event:?} line: {message}")]
    Invalid {
        event: &'static str,
        message: String,
    },
}

/// What a client said of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    Passed,
    Failed,
    Unsupported,
}

/// How one named check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Passed,
    Failed,
}

/// A client's result line: `{"event":"result","case":...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultLine {
    pub case: String,
    pub outcome: Reported,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub message: String,
    /// The checks the case made. `None` when the line names none at all.
    #[serde(default)]
    pub checks: Option<BTreeMap<String, CheckState>>,
    /// Checks the client's library cannot make, with the reason.
    #[serde(default)]
    pub not_checked: BTreeMap<String, String>,
    /// Numbers the case measured (the soak cases' latency percentiles).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// What the case saw that is reported, not checked.
    #[serde(default)]
    pub observed: BTreeMap<String, String>,
    /// For a client that reports by its exit status, played by an adapter
    /// (the compose loop of the official client): the exit status of the case.
    #[serde(default)]
    pub exit_status: Option<i64>,
}

impl ResultLine {
    /// The duration the line reports, or `measured` if it is not usable.
    pub fn duration(&self, measured: Duration) -> Duration {
        if self.duration_ms.is_finite() && self.duration_ms >= 0.0 && self.duration_ms < 1e9 {
            Duration::from_secs_f64(self.duration_ms / 1000.0)
        } else {
            measured
        }
    }
}

/// A client's load line (CONTRACT.md, "Load mode"):
/// `{"event":"load","load":"unary",...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoadLine {
    /// The settings it was given, echoed.
    #[serde(flatten)]
    pub settings: crate::manifest::LoadArgs,
    /// Successes in the window.
    pub count: u64,
    /// Errors in the window.
    pub errors: u64,
    pub elapsed_ms: f64,
    pub qps: f64,
    /// `None` when nothing succeeded.
    pub latency_us: Option<LoadLatency>,
    pub first_error: String,
}

/// The latency percentiles of a load line, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct LoadLatency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Deserialize)]
struct ListeningFields {
    port: u16,
}

#[derive(Deserialize)]
struct DoneFields {
    cases: usize,
}

/// Parses one protocol line.
pub fn parse(line: &str) -> Result<Line, LineError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| LineError::NotJson(e.to_string()))?;
    let event = value
        .get("event")
        .and_then(|e| e.as_str())
        .ok_or(LineError::NoEvent)?
        .to_string();
    fn fields<T: serde::de::DeserializeOwned>(
        event: &'static str,
        value: serde_json::Value,
    ) -> Result<T, LineError> {
        serde_json::from_value(value).map_err(|e| LineError::Invalid {
            event,
            message: e.to_string(),
        })
    }
    match event.as_str() {
        "listening" => {
            let f: ListeningFields = fields("listening", value)?;
            if f.port == 0 {
                return Err(LineError::Invalid {
                    event: "listening",
                    message: "port 0".to_string(),
                });
            }
            Ok(Line::Listening { port: f.port })
        }
        "ready" => Ok(Line::Ready),
        "result" => Ok(Line::Result(fields("result", value)?)),
        "done" => Ok(Line::Done {
            cases: fields::<DoneFields>("done", value)?.cases,
        }),
        "load" => Ok(Line::Load(fields("load", value)?)),
        _ => Err(LineError::UnknownEvent(event)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lines() {
        assert_eq!(
            parse(r#"{"event":"listening","port":40123,"tls":false}"#),
            Ok(Line::Listening { port: 40123 })
        );
        assert!(parse(r#"{"event":"listening","port":0}"#).is_err());
        assert!(parse(r#"{"event":"listening","port":70000}"#).is_err());
        assert!(parse("listening on 1").is_err());
        assert!(!is_protocol_line("listening on 1"));
        assert!(is_protocol_line("  {\"event\":\"ready\"}"));
        assert_eq!(parse(r#"{"event":"ready"}"#), Ok(Line::Ready));
    }

    #[test]
    fn result_and_done_lines() {
        let line = r#"{"event":"result","case":"ping_pong","outcome":"failed","duration_ms":2.5,"message":"x",
            "checks":{"status":"passed","payload_size":"failed"},"not_checked":{"payload_type":"why"}}"#
            .replace('\n', "");
        let Ok(Line::Result(r)) = parse(&line) else {
            panic!("{:?}", parse(&line))
        };
        assert_eq!(
            (r.case.as_str(), r.outcome, r.message.as_str()),
            ("ping_pong", Reported::Failed, "x")
        );
        assert_eq!(r.duration(Duration::ZERO), Duration::from_micros(2500));
        let checks = r.checks.unwrap();
        assert_eq!(checks["payload_size"], CheckState::Failed);
        assert_eq!(r.not_checked["payload_type"], "why");
        // A line without checks parses; the runner judges it.
        let Ok(Line::Result(r)) =
            parse(r#"{"event":"result","case":"x","outcome":"passed","duration_ms":-1}"#)
        else {
            panic!()
        };
        assert_eq!(r.checks, None);
        assert_eq!(r.duration(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(
            parse(r#"{"event":"done","cases":22}"#),
            Ok(Line::Done { cases: 22 })
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(matches!(parse("{not json"), Err(LineError::NotJson(_))));
        assert_eq!(parse(r#"{"a":1}"#), Err(LineError::NoEvent));
        assert_eq!(
            parse(r#"{"event":"finished"}"#),
            Err(LineError::UnknownEvent("finished".into()))
        );
        let err = parse(r#"{"event":"result","case":"x","outcome":"great"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("bad \"result\" line: "),
            "{err}"
        );
        assert!(parse(r#"{"event":"done"}"#).is_err());
        let err = parse(r#"{"event":"load","load":"unary"}"#).unwrap_err();
        assert!(err.to_string().starts_with("bad \"load\" line: "), "{err}");
    }

    #[test]
    fn load_lines() {
        let line = r#"{"event":"load","load":"ping_pong","concurrency":50,"connections":1,"warmup_ms":1000,
            "duration_ms":5000,"payload_bytes":100,"count":12,"errors":1,"elapsed_ms":5000.4,"qps":2.4,
            "latency_us":{"p50":1.5,"p90":2.5,"p99":3.5,"max":4.5},"first_error":"Unavailable: x"}"#
            .replace('\n', "");
        let Ok(Line::Load(l)) = parse(&line) else {
            panic!("{:?}", parse(&line))
        };
        assert_eq!(
            (l.settings.load.as_str(), l.count, l.errors),
            ("ping_pong", 12, 1)
        );
        assert_eq!(
            (
                l.settings.concurrency,
                l.settings.warmup_ms,
                l.settings.payload_bytes
            ),
            (50, 1000, 100)
        );
        assert_eq!(l.latency_us.unwrap().p99, 3.5);
        assert_eq!(l.first_error, "Unavailable: x");
        let none = line.replace(r#"{"p50":1.5,"p90":2.5,"p99":3.5,"max":4.5}"#, "null");
        let Ok(Line::Load(l)) = parse(&none) else {
            panic!()
        };
        assert_eq!(l.latency_us, None);
    }
}
