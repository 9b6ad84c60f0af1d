//! The figures of `interop bench` as text (two matrices per load: throughput
//! and p99 latency, servers as rows, clients and ghz as columns) and as one
//! self-contained HTML page with inline SVG bar charts.

use std::fmt::Write as _;

use super::{BenchReport, Entry, Load};
use crate::report::html::escape;

/// Which figure a matrix shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Throughput,
    P99,
    /// The server's CPU time over the window per successful call.
    ServerCpu,
}

impl Figure {
    /// The figures every load shows, in order.
    pub const ALL: [Figure; 3] = [Figure::Throughput, Figure::P99, Figure::ServerCpu];
}

impl Figure {
    fn of(self, entry: &Entry) -> Option<f64> {
        match self {
            Figure::Throughput => entry.qps,
            Figure::P99 => entry.p99_us.map(|us| us / 1000.0),
            Figure::ServerCpu => entry.server_cpu_us_per_call,
        }
    }

    fn title(self, load: Load) -> String {
        match self {
            Figure::Throughput => format!("{}: throughput ({})", load.name(), load.unit()),
            Figure::P99 => format!("{}: p99 latency (ms)", load.name()),
            Figure::ServerCpu => format!(
                "{}: server CPU per {} (µs)",
                load.name(),
                match load {
                    Load::Unary => "call",
                    Load::PingPong => "round trip",
                }
            ),
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Figure::Throughput => thousands(value.round() as u64),
            Figure::P99 => format!("{value:.2}"),
            Figure::ServerCpu if value < 100.0 => format!("{value:.1}"),
            Figure::ServerCpu => thousands(value.round() as u64),
        }
    }
}

/// `52698` as `52 698`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl BenchReport {
    /// Clients in the order they played, then servers likewise.
    fn axes(&self) -> (Vec<String>, Vec<String>) {
        let mut clients: Vec<String> = Vec::new();
        let mut servers: Vec<String> = Vec::new();
        for e in self.entries.iter().chain(&self.ghz) {
            if e.client != "ghz" && !clients.contains(&e.client) {
                clients.push(e.client.clone());
            }
            if !servers.contains(&e.server) {
                servers.push(e.server.clone());
            }
        }
        (clients, servers)
    }

    /// The runs without figures or with errors, pairings first, then ghz.
    fn not_ok(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .chain(&self.ghz)
            .filter(|e| !e.ok())
            .collect()
    }

    /// A matrix cell: the figure (`—` when there is none), marked `✗`
    /// when the run is not ok; `·` when the pairing was not played.
    fn cell(&self, load: Load, figure: Figure, client: &str, server: &str) -> String {
        match self.find(load, client, server) {
            None => "·".to_string(),
            Some(e) => match (figure.of(e), e.ok()) {
                (Some(v), true) => figure.format(v),
                (Some(v), false) => format!("{} ✗", figure.format(v)),
                (None, true) => "—".to_string(),
                (None, false) => "✗".to_string(),
            },
        }
    }

    fn find(&self, load: Load, client: &str, server: &str) -> Option<&Entry> {
        let list = if client == "ghz" {
            &self.ghz
        } else {
            &self.entries
        };
        list.iter()
            .find(|e| e.load == load && e.client == client && e.server == server)
    }

    /// The settings, in words.
    pub fn settings_lines(&self) -> Vec<String> {
        let s = &self.settings;
        let cpus = |list: &[usize]| {
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let pinning = match (s.server_cpus.is_empty(), s.client_cpus.is_empty()) {
            (true, _) => "nothing pinned to CPUs".to_string(),
            (false, true) => format!(
                "servers on CPU {}, clients and ghz not pinned (no CPU left for them)",
                cpus(&s.server_cpus)
            ),
            (false, false) => format!(
                "servers on CPU {}, clients and ghz on CPU {}",
                cpus(&s.server_cpus),
                cpus(&s.client_cpus)
            ),
        };
        vec![
            format!(
                "{} workers over {} {} connection(s), {}-byte payloads both ways, warm-up {} ms, window {} ms",
                s.concurrency,
                s.connections,
                s.transport,
                s.payload_bytes,
                s.warmup_ms,
                s.duration_ms
            ),
            format!(
                "{pinning} (the runner may use {} CPU(s): {}); ghz: {}",
                s.machine_cpus.len(),
                cpus(&s.machine_cpus),
                s.ghz.as_deref().unwrap_or("not played")
            ),
        ]
    }

    /// The matrices and what went wrong, as text.
    pub fn render(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let (clients, servers) = self.axes();
        writeln!(out, "interop bench")?;
        for line in self.settings_lines() {
            writeln!(out, "  {line}")?;
        }
        for load in &self.settings.loads {
            for figure in Figure::ALL {
                writeln!(out)?;
                writeln!(out, "{}", figure.title(*load))?;
                self.matrix(out, *load, figure, &clients, &servers)?;
            }
        }
        writeln!(out)?;
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        let bad = self.not_ok();
        for e in &bad {
            writeln!(
                out,
                "✗ {} {}→{}: {}",
                e.load.name(),
                e.client,
                e.server,
                e.why_not_ok().unwrap_or_default()
            )?;
        }
        let pairings = self.entries.len() + self.ghz.len();
        let verdict = match (self.interrupted, bad.is_empty()) {
            (true, _) => "INTERRUPTED (figures are partial)".to_string(),
            (false, true) => {
                format!("PASS: {pairings} runs, each with nonzero throughput and no errors")
            }
            (false, false) => format!("FAIL: {} of {pairings} runs did not", bad.len()),
        };
        writeln!(out, "verdict: {verdict}")
    }

    fn matrix(
        &self,
        out: &mut dyn std::io::Write,
        load: Load,
        figure: Figure,
        clients: &[String],
        servers: &[String],
    ) -> std::io::Result<()> {
        let with_ghz = load == Load::Unary && !self.ghz.is_empty();
        let mut columns: Vec<String> = clients.to_vec();
        if with_ghz {
            columns.push("ghz".to_string());
        }
        let mut rows = vec![{
            let mut header = vec!["server \\ client".to_string()];
            header.extend(columns.iter().cloned());
            header
        }];
        for server in servers {
            let mut row = vec![server.clone()];
            row.extend(columns.iter().map(|c| self.cell(load, figure, c, server)));
            rows.push(row);
        }
        let widths: Vec<usize> = (0..=columns.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let mut line = String::new();
            for (i, text) in row.iter().enumerate() {
                let pad = widths[i] - text.chars().count();
                if i == 0 {
                    line.push_str(text);
                    line.push_str(&" ".repeat(pad));
                } else {
                    // ghz, the reference, sits apart from the clients.
                    line.push_str(if with_ghz && i == columns.len() {
                        "  │ "
                    } else {
                        "  "
                    });
                    line.push_str(&" ".repeat(pad));
                    line.push_str(text);
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    /// One self-contained page: settings, a bar chart and a table per load
    /// and figure, and the problems.
    pub fn html(&self) -> String {
        let (clients, servers) = self.axes();
        let mut page = String::new();
        page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        page.push_str("<title>interop bench</title><style>");
        page.push_str(STYLE);
        page.push_str("</style></head><body>\n<h1>interop bench</h1>\n");
        for line in self.settings_lines() {
            let _ = writeln!(page, "<p class=\"meta\">{}</p>", escape(&line));
        }
        for note in &self.notes {
            let _ = writeln!(page, "<p class=\"note\">{}</p>", escape(note));
        }
        let mut columns = clients.clone();
        columns.push("ghz".to_string());
        for load in &self.settings.loads {
            for figure in Figure::ALL {
                let _ = writeln!(page, "<h2>{}</h2>", escape(&figure.title(*load)));
                page.push_str(&self.chart(*load, figure, &columns, &servers));
                page.push_str(&self.table(*load, figure, &columns, &servers));
            }
        }
        let bad = self.not_ok();
        if !bad.is_empty() {
            page.push_str("<h2>Runs without figures or with errors</h2><ul>\n");
            for e in bad {
                let _ = writeln!(
                    page,
                    "<li><b>{} {}→{}</b>: <pre>{}</pre></li>",
                    e.load.name(),
                    escape(&e.client),
                    escape(&e.server),
                    escape(&e.why_not_ok().unwrap_or_default())
                );
            }
            page.push_str("</ul>\n");
        }
        page.push_str("</body></html>\n");
        page
    }

    /// Horizontal bars grouped by server, one colour per client.
    fn chart(&self, load: Load, figure: Figure, columns: &[String], servers: &[String]) -> String {
        let bars: Vec<(&String, &String, Option<f64>, bool)> = servers
            .iter()
            .flat_map(|s| {
                columns.iter().filter_map(move |c| {
                    self.find(load, c, s).map(|e| (s, c, figure.of(e), e.ok()))
                })
            })
            .collect();
        let top = bars
            .iter()
            .filter_map(|b| b.2)
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let (label_w, bar_w, row_h, gap) = (190.0, 520.0, 18.0, 10.0);
        let mut y = 4.0;
        let mut body = String::new();
        let mut last_server: Option<&String> = None;
        for (server, client, value, ok) in &bars {
            if last_server.is_some_and(|s| s != *server) {
                y += gap;
            }
            last_server = Some(server);
            let colour =
                COLOURS[columns.iter().position(|c| c == *client).unwrap_or(0) % COLOURS.len()];
            let width = value.map_or(0.0, |v| v / top * bar_w);
            let text = match (value, ok) {
                (Some(v), true) => figure.format(*v),
                (Some(v), false) => format!("{} ✗", figure.format(*v)),
                (None, _) => "✗ no figure".to_string(),
            };
            let _ = writeln!(
                body,
                "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
                 <rect x=\"{label_w}\" y=\"{y}\" width=\"{width:.1}\" height=\"{h}\" fill=\"{colour}\"><title>{title}</title></rect>\
                 <text x=\"{vx:.1}\" y=\"{ty}\">{text}</text>",
                lx = label_w - 6.0,
                ty = y + row_h - 5.0,
                label = escape(&format!("{client} → {server}")),
                h = row_h - 3.0,
                title = escape(&format!("{client} → {server}: {text}")),
                vx = label_w + width + 4.0,
                text = escape(&text),
            );
            y += row_h;
        }
        format!(
            "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\">\n{body}</svg>\n",
            w = label_w + bar_w + 110.0,
            h = y + 4.0,
            label = escape(&figure.title(load)),
        )
    }

    fn table(&self, load: Load, figure: Figure, columns: &[String], servers: &[String]) -> String {
        let mut html = String::from("<table><tr><th>server \\ client</th>");
        let shown: Vec<&String> = columns
            .iter()
            .filter(|c| servers.iter().any(|s| self.find(load, c, s).is_some()))
            .collect();
        for c in &shown {
            let _ = write!(html, "<th>{}</th>", escape(c));
        }
        html.push_str("</tr>\n");
        for s in servers {
            let _ = write!(html, "<tr><th>{}</th>", escape(s));
            for c in &shown {
                let text = self.cell(load, figure, c, s);
                let _ = write!(html, "<td>{}</td>", escape(&text));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
        html
    }
}

const COLOURS: [&str; 6] = [
    "#c2571a", "#1f77b4", "#2e9d4f", "#7b3fb8", "#d33c3c", "#6b7280",
];

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color:#1d2330; background:#f6f7f9; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color:#5b6472; margin: 2px 0; } .note { color:#8a5a00; margin: 2px 0; }
svg.chart { background:#fff; border-radius:8px; box-shadow:0 1px 2px rgba(0,0,0,.08); font-size: 12px; display:block; margin-bottom: 10px; }
table { border-collapse: collapse; background:#fff; margin-bottom: 8px; }
th, td { padding: 4px 10px; border: 1px solid #e1e4e8; text-align: right; } th { background:#eef0f3; }
pre { white-space: pre-wrap; margin: 4px 0; }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchSettings, REPORT_SCHEMA};

    fn entry(load: Load, client: &str, server: &str, qps: f64, p99_us: f64) -> Entry {
        Entry {
            load,
            client: client.into(),
            server: server.into(),
            client_library: "lib 1".into(),
            server_library: "lib 2".into(),
            count: (qps * 5.0) as u64,
            errors: 0,
            qps: Some(qps),
            p50_us: Some(p99_us / 4.0),
            p90_us: Some(p99_us / 2.0),
            p99_us: Some(p99_us),
            max_us: Some(p99_us * 2.0),
            first_error: String::new(),
            problem: None,
            server_cpu_ms: Some(qps * 5.0 * 0.02),
            server_cpu_us_per_call: Some(20.0),
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            schema: REPORT_SCHEMA.into(),
            settings: BenchSettings {
                loads: vec![Load::Unary, Load::PingPong],
                concurrency: 50,
                connections: 1,
                warmup_ms: 1000,
                duration_ms: 5000,
                payload_bytes: 100,
                machine_cpus: vec![0, 1],
                server_cpus: vec![0],
                client_cpus: vec![1],
                ghz: Some("v0.121.0".into()),
                transport: "tls".into(),
            },
            entries: vec![
                entry(Load::Unary, "rust", "go", 41000.0, 2500.0),
                entry(Load::Unary, "python", "go", 4321.0, 19000.0),
                entry(Load::PingPong, "rust", "go", 90000.0, 800.0),
                Entry {
                    errors: 3,
                    first_error: "Unavailable: <gone>".into(),
                    ..entry(Load::PingPong, "python", "go", 5000.0, 9000.0)
                },
            ],
            ghz: vec![entry(Load::Unary, "ghz", "go", 11000.0, 10750.0)],
            notes: vec!["ghz plays unary only".into()],
            interrupted: false,
        }
    }

    #[test]
    fn thousands_are_spaced() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(52698), "52 698");
        assert_eq!(thousands(1234567), "1 234 567");
    }

    /// The row of `server` in the matrix under the title that starts `title`.
    fn row_of<'t>(text: &'t str, title: &str, server: &str) -> &'t str {
        text.lines()
            .skip_while(|l| !l.starts_with(title))
            .find(|l| l.starts_with(&format!("{server} ")))
            .unwrap_or_else(|| panic!("no {server} row under {title}: {text}"))
    }

    #[test]
    fn matrices_show_throughput_p99_and_ghz_apart() {
        let mut out = Vec::new();
        report().render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("unary: throughput (calls/s)"), "{text}");
        assert!(text.contains("ping_pong: p99 latency (ms)"), "{text}");
        let unary_row = row_of(&text, "unary: throughput", "go");
        assert!(unary_row.contains("41 000"), "{unary_row}");
        assert!(unary_row.contains("4 321"), "{unary_row}");
        assert!(unary_row.contains("│ 11 000"), "{unary_row}");
        let p99_row = row_of(&text, "unary: p99", "go");
        assert!(
            p99_row.contains("2.50") && p99_row.contains("19.00"),
            "{p99_row}"
        );
        let ping_row = row_of(&text, "ping_pong: throughput", "go");
        assert!(!ping_row.contains('│'), "no ghz for ping_pong: {ping_row}");
        assert!(
            text.contains("ping_pong: server CPU per round trip (µs)"),
            "{text}"
        );
        let cpu_row = row_of(&text, "unary: server CPU per call (µs)", "go");
        assert!(
            cpu_row.contains("20.0") && cpu_row.contains("│ 20.0"),
            "{cpu_row}"
        );
        assert!(ping_row.contains("5 000 ✗"), "{ping_row}");
        assert!(
            text.contains("servers on CPU 0, clients and ghz on CPU 1"),
            "{text}"
        );
        assert!(
            text.contains("50 workers over 1 tls connection(s), 100-byte payloads"),
            "{text}"
        );
        assert!(
            text.contains(
                "✗ ping_pong python→go: 3 errors in the window; first: Unavailable: <gone>"
            ),
            "{text}"
        );
        assert!(
            text.contains("verdict: FAIL: 1 of 5 runs did not"),
            "{text}"
        );
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let page = report().html();
        assert!(page.contains("<svg class=\"chart\""));
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        assert!(page.contains("Unavailable: &lt;gone&gt;"));
        assert!(page.contains("rust → go: 41 000"));
        assert_eq!(page.matches("<svg").count(), 6);
    }
}
