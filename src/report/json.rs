//! The JSON report: one file with the run's metadata and every cell.
//!
//! Schema (`schema` = `polyglot-grpc-interop/report/v1`):
//! ```text
//! {
//!   "schema": "polyglot-grpc-interop/report/v1",
//!   "run": { "backend", "tls", "shard"?, "implementations": [{name, library, version, server, client}],
//!            "clients": [..], "servers": [..], "cases": [..], "cells": N, "started_unix": secs },
//!   "duration_ms": f64, "interrupted": bool, "ok": bool,
//!   "totals": { cells, passed, failed, timed_out, unsupported, setup_error, known_failures, unexpected_passes },
//!   "cells": [ { client, server, case, outcome, duration_ms, message, known_failure?, logs? } ]
//! }
//! ```
//! `outcome` is one of passed, failed, timed_out, unsupported, setup_error.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::model::{CellResult, Event, Reporter, RunInfo, Totals};

/// Identifies the format of the file.
pub const SCHEMA: &str = "polyglot-grpc-interop/report/v1";

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    run: Option<&'a RunInfo>,
    duration_ms: f64,
    interrupted: bool,
    ok: bool,
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
pub fn to_string(
    info: Option<&RunInfo>,
    results: &[CellResult],
    duration_ms: f64,
    interrupted: bool,
) -> String {
    let report = Report {
        schema: SCHEMA,
        run: info,
        duration_ms,
        interrupted,
        ok: crate::model::run_ok(results, interrupted),
        totals: Totals::of(results),
        cells: results,
    };
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

impl Reporter for Json {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(info) => self.info = Some(info.clone()),
            Event::RunFinished {
                results,
                duration,
                interrupted,
            } => {
                let text = to_string(
                    self.info.as_ref(),
                    results,
                    duration.as_secs_f64() * 1000.0,
                    *interrupted,
                );
                super::write_file(&self.path, text.as_bytes())
                    .with_context(|| format!("writing JSON report {}", self.path.display()))?;
            }
            _ => {}
        }
        Ok(())
    }
}
