//! The terminal report: live progress on stderr, then the matrix on stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::cases::{Case, CaseGroup};
use crate::model::{CellResult, Event, Finished, Outcome, Reporter, RunInfo, Totals};

/// Width of one pairing column of the case grid.
const COL: usize = 12;
/// Width of the case-name column.
const NAME_COL: usize = 32;

/// Writes the matrix report to `out` and progress to `progress`.
pub struct Terminal {
    out: Box<dyn Write + Send>,
    progress: Option<Box<dyn Write + Send>>,
    info: Option<RunInfo>,
    done: Totals,
    started: Instant,
    /// Redraw the progress line in place (a terminal) or print phases only.
    live: bool,
}

impl Terminal {
    /// `progress` gets phase lines and, when `live`, a progress line redrawn in place.
    pub fn new(
        out: Box<dyn Write + Send>,
        progress: Option<Box<dyn Write + Send>>,
        live: bool,
    ) -> Terminal {
        Terminal {
            out,
            progress,
            info: None,
            done: Totals::default(),
            started: Instant::now(),
            live,
        }
    }

    fn progress_line(&mut self) -> std::io::Result<()> {
        let Some(p) = self.progress.as_mut() else {
            return Ok(());
        };
        let total = self.info.as_ref().map_or(0, |i| i.cells);
        let width = 30;
        let filled = (self.done.cells * width).checked_div(total).unwrap_or(0);
        write!(
            p,
            "\r\x1b[2K[{}{}] {}/{} cells  {}{} {}{} {}{} {}{} {}{}  {:.1} s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done.cells,
            total,
            Outcome::Passed.mark(),
            self.done.passed,
            Outcome::PassedPartial.mark(),
            self.done.passed_partial,
            Outcome::Failed.mark(),
            self.done.failed,
            Outcome::TimedOut.mark(),
            self.done.timed_out,
            Outcome::Unsupported.mark(),
            self.done.unsupported,
            self.started.elapsed().as_secs_f64()
        )?;
        p.flush()
    }

    fn phase(&mut self, text: &str) -> std::io::Result<()> {
        let live = self.live;
        let Some(p) = self.progress.as_mut() else {
            return Ok(());
        };
        if live {
            write!(p, "\r\x1b[2K")?;
        }
        writeln!(p, "interop: {text}")?;
        p.flush()
    }

    fn finish(&mut self, run: Finished<'_>) -> std::io::Result<()> {
        if self.live
            && let Some(p) = self.progress.as_mut()
        {
            write!(p, "\r\x1b[2K")?;
            p.flush()?;
        }
        let info = self.info.clone();
        render(&mut self.out, info.as_ref(), run)?;
        self.out.flush()
    }
}

impl Reporter for Terminal {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(info) => {
                self.started = Instant::now();
                self.info = Some(info.clone());
                let text = format!(
                    "{} backend{}: {} client(s) × {} server(s) × {} case(s) = {} cells{}",
                    info.backend,
                    if info.tls { " with TLS" } else { "" },
                    info.clients.len(),
                    info.servers.len(),
                    info.cases.len(),
                    info.cells,
                    info.shard
                        .as_ref()
                        .map(|s| format!(" (shard {s})"))
                        .unwrap_or_default()
                );
                self.phase(&text)?;
            }
            Event::Phase(text) => self.phase(text)?,
            Event::CellsStarted(_) => {}
            Event::CellFinished(result) => {
                self.done.add(result);
                if self.live {
                    self.progress_line()?;
                }
            }
            Event::RunFinished { .. } => {
                if let Some(run) = event.finished() {
                    self.finish(run)?;
                }
            }
        }
        Ok(())
    }
}

/// Formats a duration compactly: `0.4ms`, `12ms`, `1.2s`.
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len >= width {
        format!("{text} ")
    } else {
        format!("{text}{}", " ".repeat(width - len))
    }
}

/// Renders the whole report: per group a summary table and a case grid,
/// then failures, then totals.
pub fn render(
    out: &mut dyn Write,
    info: Option<&RunInfo>,
    run: Finished<'_>,
) -> std::io::Result<()> {
    let Finished {
        results,
        duration,
        interrupted,
        notes,
    } = run;
    let (clients, servers) = super::axes(info, results);
    let pairings: Vec<(&str, &str)> = clients
        .iter()
        .flat_map(|c| servers.iter().map(move |s| (c.as_str(), s.as_str())))
        .filter(|(c, s)| {
            results
                .iter()
                .any(|r| r.id.client == *c && r.id.server == *s)
        })
        .collect();
    let by_cell: BTreeMap<(&str, &str, Case), &CellResult> = results
        .iter()
        .map(|r| ((r.id.client.as_str(), r.id.server.as_str(), r.id.case), r))
        .collect();

    for group in CaseGroup::ALL {
        let cases: Vec<Case> = Case::all()
            .into_iter()
            .filter(|c| c.group() == group && results.iter().any(|r| r.id.case == *c))
            .collect();
        if cases.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{} ({} cases)", group.name(), cases.len())?;
        // Only the sides and pairings with cells of this group.
        let in_group = |c: &str, s: &str| cases.iter().any(|k| by_cell.contains_key(&(c, s, *k)));
        let group_clients: Vec<&String> = clients
            .iter()
            .filter(|c| servers.iter().any(|s| in_group(c, s)))
            .collect();
        let group_servers: Vec<&String> = servers
            .iter()
            .filter(|s| clients.iter().any(|c| in_group(c, s)))
            .collect();
        let group_pairings: Vec<&(&str, &str)> =
            pairings.iter().filter(|(c, s)| in_group(c, s)).collect();
        // Summary: servers down, clients across.
        let mut line = pad("  server \\ client", NAME_COL);
        for c in &group_clients {
            line.push_str(&pad(c, 16));
        }
        writeln!(out, "{}", line.trim_end())?;
        for s in &group_servers {
            let mut line = pad(&format!("  {s}"), NAME_COL);
            for c in &group_clients {
                let cells: Vec<&CellResult> = cases
                    .iter()
                    .filter_map(|k| by_cell.get(&(c.as_str(), s.as_str(), *k)).copied())
                    .collect();
                let t = Totals::of(cells.iter().copied());
                let text = Outcome::ALL
                    .iter()
                    .filter(|o| t.count(**o) > 0)
                    .map(|o| format!("{}{}", t.count(*o), o.mark()))
                    .collect::<Vec<_>>()
                    .join(" ");
                line.push_str(&pad(if cells.is_empty() { "·" } else { &text }, 16));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        // Case grid: one row per case, one column per client→server pairing.
        writeln!(out)?;
        let mut head_c = pad("  client", NAME_COL);
        let mut head_s = pad("  server", NAME_COL);
        for (c, s) in &group_pairings {
            head_c.push_str(&pad(c, COL));
            head_s.push_str(&pad(s, COL));
        }
        writeln!(out, "{}", head_c.trim_end())?;
        writeln!(out, "{}", head_s.trim_end())?;
        for case in &cases {
            let mut line = pad(&format!("  {case}"), NAME_COL);
            for (c, s) in &group_pairings {
                let text = match by_cell.get(&(*c, *s, *case)) {
                    None => "·".to_string(),
                    Some(r) if r.outcome == Outcome::Unsupported => r.outcome.mark().to_string(),
                    Some(r) => format!("{} {}", r.outcome.mark(), short_duration(r.duration)),
                };
                line.push_str(&pad(&text, COL));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    writeln!(out)?;
    let legend: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| format!("{} {}", o.mark(), o.words()))
        .collect();
    writeln!(out, "legend: {}  · not run", legend.join("  "))?;

    let problems: Vec<&CellResult> = results.iter().filter(|r| r.is_problem()).collect();
    if !problems.is_empty() {
        writeln!(out)?;
        writeln!(out, "failures ({}):", problems.len())?;
        for r in problems {
            writeln!(
                out,
                "  {} {} after {}",
                r.id,
                r.tag(),
                short_duration(r.duration)
            )?;
            for line in r.message.lines() {
                writeln!(out, "      {line}")?;
            }
            if !r.logs.is_empty() {
                writeln!(out, "      logs:")?;
                for line in &r.logs {
                    writeln!(out, "        {line}")?;
                }
            }
        }
    }
    let races: Vec<&CellResult> = crate::model::races(results).collect();
    if !races.is_empty() {
        writeln!(out)?;
        writeln!(out, "races (either outcome accepted, known-failures.toml):")?;
        for r in races {
            writeln!(out, "  {} {}", r.id, r.tag())?;
        }
    }
    let measured: Vec<(&CellResult, String)> = results
        .iter()
        .filter_map(|r| crate::model::metrics_text(r).map(|t| (r, t)))
        .collect();
    if !measured.is_empty() {
        writeln!(out)?;
        writeln!(out, "soak (iterations and latencies):")?;
        for (r, text) in measured {
            writeln!(out, "  {} {}: {text}", r.id, r.outcome.mark())?;
        }
    }
    let bad_input: Vec<(&CellResult, String)> = results
        .iter()
        .filter_map(|r| crate::model::bad_input_text(r).map(|t| (r, t)))
        .collect();
    if !bad_input.is_empty() {
        writeln!(out)?;
        writeln!(out, "bad input (answers and server memory):")?;
        for (r, text) in bad_input {
            writeln!(out, "  {} {}: {text}", r.id, r.outcome.mark())?;
        }
    }
    let not_checked = crate::model::not_checked_reasons(results);
    if !not_checked.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "checks not made ({} partial):",
            Outcome::PassedPartial.mark()
        )?;
        for ((client, case, check, reason), n) in not_checked {
            writeln!(
                out,
                "  client {client}: {case} {check} ({n} cell{}): {reason}",
                if n == 1 { "" } else { "s" }
            )?;
        }
    }
    let unsupported = crate::model::unsupported_reasons(results);
    if !unsupported.is_empty() {
        writeln!(out)?;
        writeln!(out, "unsupported:")?;
        for ((case, reason), n) in unsupported {
            writeln!(
                out,
                "  {case} ({n} cell{}): {reason}",
                if n == 1 { "" } else { "s" }
            )?;
        }
    }
    if !notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "not checked:")?;
        for note in notes {
            writeln!(out, "  {note}")?;
        }
    }
    let t = Totals::of(results);
    writeln!(out)?;
    let extra = |n: usize, what: &str| {
        if n > 0 {
            format!(", {n} {what}")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "{} cells: {} passed, {} passed partial, {} failed, {} timed out, {} unsupported, {} setup errors{}{}{}{} in {:.1} s{}",
        t.cells,
        t.passed,
        t.passed_partial,
        t.failed,
        t.timed_out,
        t.unsupported,
        t.setup_error,
        extra(t.known_failures, "known failures"),
        extra(t.races, "of them races"),
        extra(t.unexpected_passes, "unexpected passes"),
        extra(t.unexpectedly_supported, "unexpectedly supported"),
        duration.as_secs_f64(),
        if interrupted {
            " (INTERRUPTED: results are partial)"
        } else {
            ""
        }
    )?;
    let ok = crate::model::run_ok(results, interrupted);
    writeln!(out, "verdict: {}", if ok { "PASS" } else { "FAIL" })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CellId;

    fn cell(client: &str, server: &str, case: Case, outcome: Outcome, message: &str) -> CellResult {
        CellResult {
            duration: Duration::from_millis(3),
            logs: vec!["[client go] boom".into()],
            ..CellResult::not_run(
                CellId {
                    client: client.into(),
                    server: server.into(),
                    case,
                },
                outcome,
                message,
            )
        }
    }

    #[test]
    fn renders_tables_failures_and_totals() {
        let results = vec![
            cell("go", "rust", Case::GreeterUnary, Outcome::Passed, ""),
            cell(
                "go",
                "rust",
                Case::LargeUnary,
                Outcome::Failed,
                "UnaryCall payload size = 1, want 314159",
            ),
            cell(
                "go",
                "rust",
                Case::ClientCompressedStreaming,
                Outcome::Unsupported,
                "client go: no per-message control",
            ),
        ];
        let mut out = Vec::new();
        render(
            &mut out,
            None,
            Finished::of(&results, Duration::from_secs(2), false),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("greeter (1 cases)"), "{text}");
        assert!(text.contains("interop (2 cases)"), "{text}");
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            line("  greeter_unary")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["greeter_unary", "✓", "3ms"]
        );
        assert_eq!(
            line("  client_compressed_streaming")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["client_compressed_streaming", "–"]
        );
        assert_eq!(
            line("  rust ").split_whitespace().collect::<Vec<_>>(),
            ["rust", "1✓"]
        );
        assert!(
            text.contains("  client=go/server=rust/large_unary FAILED after 3ms"),
            "{text}"
        );
        assert!(
            text.contains("      UnaryCall payload size = 1, want 314159"),
            "{text}"
        );
        assert!(text.contains("        [client go] boom"), "{text}");
        assert!(
            text.contains(
                "  client_compressed_streaming (1 cell): client go: no per-message control"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "3 cells: 1 passed, 0 passed partial, 1 failed, 0 timed out, 1 unsupported, 0 setup errors in 2.0 s"
            ),
            "{text}"
        );
        assert!(text.ends_with("verdict: FAIL\n"), "{text}");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_micros(400)), "0.4ms");
        assert_eq!(short_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(short_duration(Duration::from_millis(1234)), "1.2s");
    }
}
