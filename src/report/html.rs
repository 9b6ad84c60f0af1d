//! The HTML report: one self-contained file (no external assets) with the
//! totals, a coloured clients × servers grid per case, durations, and
//! failure details that expand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::cases::{Case, CaseGroup};
use crate::model::{CellResult, Event, Finished, Outcome, Reporter, RunInfo, Totals};
use crate::report::terminal::short_duration;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --pass:#2e9d4f; --partial:#93c9a3; --fail:#d33c3c; --timeout:#e08a1e; --unsup:#9aa3ad; --setup:#7b3fb8; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color:#1d2330; background:#f6f7f9; }
h1 { font-size: 22px; margin: 0 0 4px; }
.meta { color:#5b6472; margin-bottom: 16px; }
.totals { display:flex; gap:10px; flex-wrap:wrap; margin-bottom: 20px; }
.total { background:#fff; border-radius:8px; padding:10px 14px; min-width:110px; box-shadow:0 1px 2px rgba(0,0,0,.08); }
.total .n { font-size: 24px; font-weight: 700; display:block; }
.total.passed .n { color: var(--pass); } .total.passed_partial .n { color: #4f9a66; } .total.failed .n { color: var(--fail); }
.total.timed_out .n { color: var(--timeout); } .total.unsupported .n { color: var(--unsup); }
.total.setup_error .n { color: var(--setup); }
.verdict { font-weight:700; padding:2px 8px; border-radius:4px; color:#fff; }
.verdict.PASS { background: var(--pass); } .verdict.FAIL { background: var(--fail); }
h2 { font-size: 17px; margin: 24px 0 8px; }
.cases { display:grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px; }
.case { background:#fff; border-radius:8px; padding:10px; box-shadow:0 1px 2px rgba(0,0,0,.08); }
.case h3 { font-size: 13px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
table.grid { border-collapse: collapse; font-size: 12px; }
table.grid th { font-weight: 600; color:#5b6472; padding: 2px 4px; text-align:center; }
table.grid th.row { text-align:right; }
table.grid td { width: 54px; height: 26px; text-align:center; color:#fff; border:2px solid #fff; border-radius:4px; font-size: 11px; }
td.passed { background: var(--pass); } td.passed_partial { background: var(--partial); color:#14301d; }
td.failed { background: var(--fail); } td.timed_out { background: var(--timeout); }
td.problem { outline: 3px solid var(--fail); outline-offset: -3px; }
td.unsupported { background: var(--unsup); } td.setup_error { background: var(--setup); } td.none { background:#e7e9ed; }
.corner { font-size: 10px; color:#8a93a0; }
details { background:#fff; border-left: 4px solid var(--fail); border-radius:4px; margin: 6px 0; padding: 6px 10px; }
details.timed_out { border-color: var(--timeout); } details.setup_error { border-color: var(--setup); }
details summary { cursor:pointer; font-family: ui-monospace, monospace; }
details pre { white-space: pre-wrap; background:#f1f3f6; padding:8px; border-radius:4px; font-size:12px; }
.legend span { display:inline-block; margin-right: 12px; }
.legend i { display:inline-block; width: 12px; height: 12px; border-radius: 3px; margin-right: 4px; vertical-align: -1px; }
"#;

fn css_class(outcome: Outcome) -> &'static str {
    outcome.name()
}

/// Renders the report page.
pub fn render(info: Option<&RunInfo>, run: Finished<'_>) -> String {
    let Finished {
        results,
        duration,
        interrupted,
        notes,
    } = run;
    let totals = Totals::of(results);
    let ok = crate::model::run_ok(results, interrupted);
    let (clients, servers) = super::axes(info, results);
    let by_cell: BTreeMap<(&str, &str, Case), &CellResult> = results
        .iter()
        .map(|r| ((r.id.client.as_str(), r.id.server.as_str(), r.id.case), r))
        .collect();

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>gRPC interop matrix</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(
        h,
        "<h1>gRPC interop matrix <span class=\"verdict {0}\" id=\"verdict\">{0}</span></h1>",
        if ok { "PASS" } else { "FAIL" }
    );
    if let Some(i) = info {
        let impls = i
            .implementations
            .iter()
            .map(|m| {
                format!(
                    "{} ({} {})",
                    escape(&m.name),
                    escape(&m.library),
                    escape(&m.version)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            h,
            "<div class=\"meta\">{} backend{}{} · {} clients × {} servers × {} cases · {:.1} s{} · {}</div>",
            escape(&i.backend),
            if i.tls { " with TLS" } else { "" },
            i.shard
                .as_ref()
                .map(|s| format!(" · shard {}", escape(s)))
                .unwrap_or_default(),
            i.clients.len(),
            i.servers.len(),
            i.cases.len(),
            duration.as_secs_f64(),
            if interrupted {
                " · INTERRUPTED, results are partial"
            } else {
                ""
            },
            impls
        );
    }
    let _ = writeln!(h, "<div class=\"totals\">");
    let _ = writeln!(
        h,
        "<div class=\"total cells\"><span class=\"n\" id=\"count-cells\">{}</span>cells</div>",
        totals.cells
    );
    for o in Outcome::ALL {
        let _ = writeln!(
            h,
            "<div class=\"total {0}\"><span class=\"n\" id=\"count-{0}\">{1}</span>{2}</div>",
            o.name(),
            totals.count(o),
            o.words()
        );
    }
    let _ = writeln!(h, "</div>");
    let _ = writeln!(
        h,
        "<div class=\"legend\"><span><i style=\"background:var(--pass)\"></i>passed</span>\
         <span><i style=\"background:var(--partial)\"></i>passed partial (a check not made)</span>\
         <span><i style=\"background:var(--fail)\"></i>failed</span>\
         <span><i style=\"background:var(--timeout)\"></i>timed out</span>\
         <span><i style=\"background:var(--unsup)\"></i>unsupported</span>\
         <span><i style=\"background:var(--setup)\"></i>setup error</span>\
         <span>rows: servers, columns: clients; hover a cell for details</span></div>"
    );

    for group in CaseGroup::ALL {
        let cases: Vec<Case> = Case::all()
            .into_iter()
            .filter(|c| c.group() == group && results.iter().any(|r| r.id.case == *c))
            .collect();
        if cases.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h2>{}</h2><div class=\"cases\">", group.name());
        for case in cases {
            let _ = write!(
                h,
                "<div class=\"case\" data-case=\"{case}\"><h3>{case}</h3><table class=\"grid\"><tr><th class=\"corner\">server \\ client</th>"
            );
            for c in &clients {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            let _ = write!(h, "</tr>");
            for s in &servers {
                let _ = write!(h, "<tr><th class=\"row\">{}</th>", escape(s));
                for c in &clients {
                    match by_cell.get(&(c.as_str(), s.as_str(), case)) {
                        Some(r) => {
                            let label = if r.outcome == Outcome::Unsupported {
                                "n/a".to_string()
                            } else {
                                short_duration(r.duration)
                            };
                            let mut title = format!("{} — {}", r.id, r.tag_lower());
                            if !r.message.is_empty() {
                                title.push_str(&format!(": {}", r.message));
                            }
                            for (check, reason) in &r.not_checked {
                                title.push_str(&format!("\nnot checked: {check}: {reason}"));
                            }
                            if let Some(text) = crate::model::metrics_text(r) {
                                title.push_str(&format!("\n{text}"));
                            }
                            let failed = r.failed_checks();
                            if !failed.is_empty() {
                                title.push_str(&format!("\nfailed checks: {}", failed.join(", ")));
                            }
                            let _ = write!(
                                h,
                                "<td class=\"cell {}{}\" data-outcome=\"{}\" title=\"{}\">{}</td>",
                                css_class(r.outcome),
                                if r.is_ok() { "" } else { " problem" },
                                r.outcome.name(),
                                escape(&title),
                                escape(&label)
                            );
                        }
                        None => {
                            let _ = write!(h, "<td class=\"none\" title=\"not run\"></td>");
                        }
                    }
                }
                let _ = write!(h, "</tr>");
            }
            let _ = writeln!(h, "</table></div>");
        }
        let _ = writeln!(h, "</div>");
    }

    let problems: Vec<&CellResult> = results.iter().filter(|r| r.is_problem()).collect();
    let _ = writeln!(h, "<h2 id=\"failures\">failures ({})</h2>", problems.len());
    for r in problems {
        let _ = writeln!(
            h,
            "<details class=\"{}\"><summary>{} — {} after {}</summary><pre>{}</pre>{}</details>",
            css_class(r.outcome),
            escape(&r.id.path()),
            escape(&r.tag_lower()),
            short_duration(r.duration),
            escape(&r.message),
            if r.logs.is_empty() {
                String::new()
            } else {
                format!("<pre>{}</pre>", escape(&r.logs.join("\n")))
            }
        );
    }
    let races: Vec<&CellResult> = crate::model::races(results).collect();
    if !races.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"races\">races (either outcome accepted)</h2><ul class=\"races\">"
        );
        for r in races {
            let _ = writeln!(
                h,
                "<li><code>{}</code>: {}</li>",
                escape(&r.id.path()),
                escape(&r.tag_lower())
            );
        }
        let _ = writeln!(h, "</ul>");
    }
    let measured: Vec<(&CellResult, String)> = results
        .iter()
        .filter_map(|r| crate::model::metrics_text(r).map(|t| (r, t)))
        .collect();
    if !measured.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"soak\">soak: iterations and latencies</h2><ul class=\"soak\">"
        );
        for (r, text) in measured {
            let _ = writeln!(
                h,
                "<li><code>{}</code> {}: {}</li>",
                escape(&r.id.path()),
                r.outcome.words(),
                escape(&text)
            );
        }
        let _ = writeln!(h, "</ul>");
    }
    let bad_input: Vec<(&CellResult, String)> = results
        .iter()
        .filter_map(|r| crate::model::bad_input_text(r).map(|t| (r, t)))
        .collect();
    if !bad_input.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"bad-input\">bad input: answers and server memory</h2><ul class=\"bad-input\">"
        );
        for (r, text) in bad_input {
            let _ = writeln!(
                h,
                "<li><code>{}</code> {}: {}</li>",
                escape(&r.id.path()),
                r.outcome.words(),
                escape(&text)
            );
        }
        let _ = writeln!(h, "</ul>");
    }
    let not_checked = crate::model::not_checked_reasons(results);
    if !not_checked.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"not-checked\">checks not made</h2><ul class=\"not-checked\">"
        );
        for ((client, case, check, reason), n) in not_checked {
            let _ = writeln!(
                h,
                "<li>client <b>{}</b>: <code>{case}</code> <code>{}</code> ({n}): {}</li>",
                escape(client),
                escape(check),
                escape(reason)
            );
        }
        let _ = writeln!(h, "</ul>");
    }
    if !notes.is_empty() {
        let _ = writeln!(h, "<h2 id=\"run-not-checked\">not checked</h2><ul>");
        for note in notes {
            let _ = writeln!(h, "<li>{}</li>", escape(note));
        }
        let _ = writeln!(h, "</ul>");
    }
    let unsupported = crate::model::unsupported_reasons(results);
    if !unsupported.is_empty() {
        let _ = writeln!(h, "<h2>unsupported</h2><ul>");
        for ((case, reason), n) in unsupported {
            let _ = writeln!(h, "<li><code>{case}</code> ({n}): {}</li>", escape(reason));
        }
        let _ = writeln!(h, "</ul>");
    }
    let _ = writeln!(h, "</body></html>");
    h
}

/// Writes the page when the run finishes.
pub struct Html {
    path: PathBuf,
    info: Option<RunInfo>,
}

impl Html {
    pub fn new(path: PathBuf) -> Html {
        Html { path, info: None }
    }
}

impl Reporter for Html {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(info) => self.info = Some(info.clone()),
            Event::RunFinished { .. } => {
                if let Some(run) = event.finished() {
                    let page = render(self.info.as_ref(), run);
                    super::write_file(&self.path, page.as_bytes())
                        .with_context(|| format!("writing HTML report {}", self.path.display()))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::CellId;

    #[test]
    fn page_is_self_contained_escaped_and_counts_cells() {
        let cell = |client: &str, case, outcome, message: &str| CellResult {
            duration: Duration::from_millis(5),
            logs: vec!["<log>".into()],
            ..CellResult::not_run(
                CellId {
                    client: client.into(),
                    server: "go".into(),
                    case,
                },
                outcome,
                message,
            )
        };
        let results = [
            cell("rust", Case::EmptyUnary, Outcome::Passed, ""),
            cell(
                "rust",
                Case::LargeUnary,
                Outcome::Failed,
                "got <b> & want \"c\"",
            ),
        ];
        let page = render(None, Finished::of(&results, Duration::from_secs(1), false));
        assert!(page.contains("id=\"count-cells\">2<"), "{page}");
        assert!(page.contains("id=\"count-passed_partial\">0<"), "{page}");
        assert!(page.contains("id=\"count-passed\">1<"));
        assert!(page.contains("id=\"count-failed\">1<"));
        assert!(page.contains("got &lt;b&gt; &amp; want &quot;c&quot;"));
        assert!(page.contains("&lt;log&gt;"));
        assert!(!page.contains("<b>"));
        for external in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!page.contains(external), "external asset {external}");
        }
        assert!(page.contains("id=\"verdict\">FAIL<"));
    }
}
