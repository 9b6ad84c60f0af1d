//! The JSON report: one file with the run's metadata and every cell.
//!
//! Schema (`schema` = `polyglot-grpc-interop/report/v2`):
//! ```text
//! {
//!   "schema": "polyglot-grpc-interop/report/v2",
//!   "run": { "backend", "tls", "shard"?, "implementations": [{name, library, version, server, client}],
//!            "clients": [..], "servers": [..], "cases": [..], "cells": N, "started_unix": secs },
//!   "duration_ms": f64, "interrupted": bool, "ok": bool,
//!   "notes": [ checks of the run as a whole that were not made, and why ],
//!   "totals": { cells, passed, passed_partial, failed, timed_out, unsupported, setup_error,
//!               known_failures, races, unexpected_passes, unexpectedly_supported },
//!   "cells": [ { client, server, case, outcome, duration_ms, message,
//!                checks?: {name: "passed"|"failed"}, not_checked?: {name: reason},
//!                unsupported?: declared reason, known_failure?: {reason, library?, accepts},
//!                logs? } ]
//! }
//! ```
//! `outcome` is one of passed, passed_partial, failed, timed_out, unsupported,
//! setup_error. `passed_partial`: passed, with the checks in `not_checked`
//! not made. `accepts` is failed, timed_out, setup_error or race.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::model::{CellResult, Event, Finished, Reporter, RunInfo, Totals};

/// Identifies the format of the file.
pub const SCHEMA: &str = "polyglot-grpc-interop/report/v2";

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    run: Option<&'a RunInfo>,
    duration_ms: f64,
    interrupted: bool,
    ok: bool,
    /// Checks of the run as a whole that were not made, and why.
    notes: &'a [String],
    totals: Totals,
    cells: &'a [CellResult],
}

/// Writes the report when the run finishes (also an interrupted one).
pub struct Json {
    path: PathBuf,
    info: Option<RunInfo>,
}

impl Json {
    pub fn new(path: PathBuf) -> Json {
        Json { path, info: None }
    }
}

/// Serializes a finished run.
pub fn to_string(info: Option<&RunInfo>, run: Finished<'_>) -> String {
    let report = Report {
        schema: SCHEMA,
        run: info,
        duration_ms: run.duration.as_secs_f64() * 1000.0,
        interrupted: run.interrupted,
        ok: run.ok(),
        notes: run.notes,
        totals: Totals::of(run.results),
        cells: run.results,
    };
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

impl Reporter for Json {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Event::RunStarted(info) = event {
            self.info = Some(info.clone());
        }
        if let Some(run) = event.finished() {
            let text = to_string(self.info.as_ref(), run);
            super::write_file(&self.path, text.as_bytes())
                .with_context(|| format!("writing JSON report {}", self.path.display()))?;
        }
        Ok(())
    }
}
