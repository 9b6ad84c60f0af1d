//! Reports of a real run agree with each other: terminal, JSON, JUnit and
//! the HTML page as a real browser (headless Chromium) renders it.

// Each test holds the serial lock for its whole run, awaits included: it
// has a runtime of its own, so nothing else on that runtime waits for it.
#![allow(clippy::await_holding_lock)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use grpc_interop::model::{Outcome, Reporter};
use grpc_interop::report::{html::Html, json::Json, junit::Junit, terminal::Terminal};
use grpc_interop::select::Selection;

/// The browser: `$CHROMIUM`, else the first Chromium-family browser on PATH
/// (Debian's chromium package installs /usr/bin/chromium).
fn browser() -> String {
    if let Ok(b) = std::env::var("CHROMIUM")
        && !b.is_empty()
    {
        return b;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate.display().to_string();
            }
        }
    }
    panic!(
        "no Chromium-family browser found: install Debian's chromium package (apt-get install chromium; \
         scripts/setup-machine.sh does it) or set CHROMIUM to a browser's path, to test the HTML report in a real browser"
    );
}

/// Runs headless Chromium on `page` with `args`; returns its stdout.
async fn chromium(profile: &Path, page: &Path, args: &[&str]) -> String {
    let browser = browser();
    let mut argv: Vec<String> = [
        browser.as_str(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        // Without these Chromium keeps trying to reach Google's hosts.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(format!("--user-data-dir={}", profile.display()));
    argv.extend(args.iter().map(|s| s.to_string()));
    argv.push(format!("file://{}", page.display()));
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(profile)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // Chromium normally finishes in a few seconds; the bound turns a hang into a failure.
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(dom: &str, id: &str) -> usize {
    let marker = format!("id=\"{id}\">");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("{id} not in the rendered page"))
        + marker.len();
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].trim().parse().unwrap()
}

/// Reads width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_json_junit_and_html_agree_and_the_page_renders() {
    let _serial = serial();
    ensure_built();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let junit_path = dir.path().join("report.xml");
    let html_path = dir.path().join("report.html");
    let term_path = dir.path().join("terminal.txt");
    let term_file = std::fs::File::create(&term_path).unwrap();
    let reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(Terminal::new(Box::new(term_file), None, false)),
        Box::new(Json::new(json_path.clone())),
        Box::new(Junit::new(junit_path.clone())),
        Box::new(Html::new(html_path.clone())),
    ];
    // Passes, partial passes (the Python client's compression flags),
    // unsupported cells and known failures, races among them, and a soak.
    let selection = Selection {
        clients: Some("go,python,rust".into()),
        servers: Some("go,python,rust".into()),
        cases: Some(
            "greeter_*,large_unary,client_compressed_streaming,status_code_and_message,\
             server_compressed_unary,timeout_on_sleeping_server,rpc_soak"
                .into(),
        ),
        ..Default::default()
    };
    let summary = run_native(&impls(), selection, prebuilt(), false, reporters).await;
    let cells = summary.results.len();
    assert_eq!(cells, 9 * 10);
    assert!(summary.ok(), "{}", describe_problems(&summary.results));

    // JSON: the documented schema, one entry per cell.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["schema"], grpc_interop::report::json::SCHEMA);
    assert_eq!(json["cells"].as_array().unwrap().len(), cells);
    assert_eq!(json["totals"]["cells"], cells);
    let versions: Vec<String> = json["run"]["implementations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["library"].as_str().unwrap(),
                i["version"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        versions.contains(&"grpc-go 1.85.0".to_string()),
        "{versions:?}"
    );
    let from_json = |outcome: Outcome| json["totals"][outcome.name()].as_u64().unwrap() as usize;
    let from_results = |outcome: Outcome| {
        summary
            .results
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    };
    for o in Outcome::ALL {
        assert_eq!(from_json(o), from_results(o), "{o:?}");
    }
    assert!(
        from_json(Outcome::Passed) >= 9 * 6,
        "{}",
        describe_problems(&summary.results)
    );
    assert_eq!(
        from_json(Outcome::PassedPartial),
        3,
        "python × server_compressed_unary"
    );
    // Each played cell names its checks; a partial one what it did not check, and why.
    for cell in json["cells"].as_array().unwrap() {
        if cell["outcome"] == "passed" || cell["outcome"] == "passed_partial" {
            assert!(cell["checks"].is_object(), "{cell}");
        }
        if cell["outcome"] == "passed_partial" {
            let reason = cell["not_checked"]["compressed.response_compressed"]
                .as_str()
                .unwrap();
            assert!(
                reason.starts_with("grpcio 1.85.1 does not expose"),
                "{cell}"
            );
        }
    }
    let known = summary
        .results
        .iter()
        .filter(|r| r.known_failure.is_some())
        .count();
    assert_eq!(json["totals"]["known_failures"], known);
    assert_eq!(json["totals"]["races"], 3);
    // Every soak cell has its iterations and latency percentiles.
    let soaks: Vec<&serde_json::Value> = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["case"] == "rpc_soak")
        .collect();
    assert_eq!(soaks.len(), 9);
    for cell in soaks {
        assert_eq!(cell["metrics"]["iterations"], 10.0, "{cell}");
        assert!(cell["metrics"]["latency_ms_p99"].is_f64(), "{cell}");
    }

    // JUnit: a well-formed document with one testcase per cell.
    let xml = std::fs::read_to_string(&junit_path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit report is well-formed XML");
    let testcases: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(testcases.len(), cells);
    assert_eq!(
        doc.root_element().attribute("tests"),
        Some(cells.to_string().as_str())
    );
    // Skipped: unsupported, and known failures that failed as listed.
    let skipped = testcases
        .iter()
        .filter(|t| t.children().any(|c| c.has_tag_name("skipped")))
        .count();
    assert_eq!(
        skipped,
        from_json(Outcome::Unsupported) + from_json(Outcome::Failed),
        "every failed cell here is a listed known failure"
    );
    let failed = testcases
        .iter()
        .filter(|t| {
            t.children()
                .any(|c| c.has_tag_name("failure") || c.has_tag_name("error"))
        })
        .count();
    assert_eq!(failed, 0);
    let partial_properties = testcases
        .iter()
        .filter(|t| {
            t.descendants().any(|p| {
                p.has_tag_name("property")
                    && p.attribute("name") == Some("outcome")
                    && p.attribute("value") == Some("passed_partial")
            })
        })
        .count();
    assert_eq!(partial_properties, from_json(Outcome::PassedPartial));

    // Terminal: the same totals line, and the partial mark.
    let text = std::fs::read_to_string(&term_path).unwrap();
    let want = format!(
        "{cells} cells: {} passed, {} passed partial, {} failed, {} timed out, {} unsupported, {} setup errors",
        from_json(Outcome::Passed),
        from_json(Outcome::PassedPartial),
        from_json(Outcome::Failed),
        from_json(Outcome::TimedOut),
        from_json(Outcome::Unsupported),
        from_json(Outcome::SetupError)
    );
    assert!(text.contains(&want), "want {want:?} in:\n{text}");
    assert!(text.contains("◐ "), "{text}");
    assert!(text.contains("checks not made (◐ partial):"), "{text}");
    assert!(
        text.contains("races (either outcome accepted, known-failures.toml):"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("/rpc_soak ✓: 10 iterations, 0 failed; p50 "))
            .count(),
        9,
        "{text}"
    );

    // HTML, as the browser renders it.
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let dom = chromium(&profile, &html_path, &["--dump-dom"]).await;
    assert_eq!(count(&dom, "count-cells"), cells);
    for o in Outcome::ALL {
        assert_eq!(
            count(&dom, &format!("count-{}", o.name())),
            from_json(o),
            "{o:?} in the page"
        );
    }
    assert_eq!(
        dom.matches("class=\"cell ").count(),
        cells,
        "one coloured grid cell per matrix cell"
    );
    assert_eq!(
        dom.matches("class=\"case\"").count(),
        10,
        "one grid per case"
    );
    assert!(dom.contains("id=\"soak\""), "the soak latencies are listed");
    assert_eq!(
        dom.matches("class=\"cell passed_partial").count(),
        from_json(Outcome::PassedPartial),
        "partial cells have their own shade"
    );
    assert!(
        dom.contains("not checked: compressed.response_compressed: grpcio 1.85.1"),
        "the reason is on hover"
    );
    assert!(dom.contains("id=\"not-checked\""), "and in a list");
    assert_eq!(
        dom.matches("race, either outcome accepted").count(),
        2 * 3 + from_json(Outcome::Failed) - 1,
        "each race on hover and in its list, and in the failures when it failed"
    );

    let shot: PathBuf = dir.path().join("report.png");
    chromium(
        &profile,
        &html_path,
        &[
            "--window-size=1280,1800",
            &format!("--screenshot={}", shot.display()),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(png_size(&png), (1280, 1800));
    // A blank page compresses to a few kilobytes; grids of coloured cells do not.
    assert!(
        png.len() > 30_000,
        "screenshot looks blank ({} bytes)",
        png.len()
    );
    // Keep a copy for people to look at.
    let keep = root().join("target/html-report-screenshot.png");
    let _ = std::fs::copy(&shot, &keep);
    assert_no_leftovers();
}

#[test]
fn shards_of_real_runs_add_up_to_the_full_matrix_without_overlap() {
    let _serial = serial();
    ensure_built();
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut passed = 0;
    for i in 1..=3 {
        let json = dir.path().join(format!("shard-{i}.json"));
        let junit = dir.path().join(format!("shard-{i}.xml"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_interop"))
            .args(["run", "--no-build", "--shard", &format!("{i}/3")])
            .arg("--json")
            .arg(&json)
            .arg("--junit")
            .arg(&junit)
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "shard {i}/3:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["run"]["shard"], format!("{i}/3"));
        let cells = report["cells"].as_array().unwrap();
        assert_eq!(
            std::fs::read_to_string(&junit)
                .unwrap()
                .matches("<testcase ")
                .count(),
            cells.len()
        );
        assert!(
            stdout.contains(&format!(
                "{} cells: {} passed",
                cells.len(),
                report["totals"]["passed"]
            )),
            "{stdout}"
        );
        passed += report["totals"]["passed"].as_u64().unwrap();
        seen.extend(cells.iter().map(|c| {
            format!(
                "client={}/server={}/{}",
                c["client"], c["server"], c["case"]
            )
        }));
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "shards overlap");
    let full = grpc_interop::select::Plan::new(&impls(), &Selection::default()).unwrap();
    assert_eq!(
        total,
        full.cells.len(),
        "the shards together are the whole matrix"
    );
    assert!(passed >= 170, "{passed}");
    assert_no_leftovers();
}
