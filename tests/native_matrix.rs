//! The matrix for real: every shipped client against every shipped server,
//! as local processes.

// Each test holds the serial lock for its whole run, awaits included: it
// has a runtime of its own, so nothing else on that runtime waits for it.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use grpc_interop::cases::{Case, CaseGroup};
use grpc_interop::model::{Event, Outcome, Totals};
use grpc_interop::protocol::CheckState;
use grpc_interop::select::{Plan, Selection};

/// Cases a library may be unable to express; nothing else may be unsupported.
const COMPRESSION_CASES: [Case; 4] = [
    Case::ClientCompressedUnary,
    Case::ServerCompressedUnary,
    Case::ClientCompressedStreaming,
    Case::ServerCompressedStreaming,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_matrix_passes_in_every_pairing() {
    let _serial = serial();
    ensure_built();
    let impls = impls();
    let recorder = Recorder::default();
    let summary = run_native(
        &impls,
        Selection::default(),
        prebuilt(),
        false,
        vec![Box::new(recorder.clone())],
    )
    .await;

    let names: BTreeSet<&str> = impls.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "bad-client",
            "bad-server",
            "go",
            "go-official",
            "python",
            "rust"
        ])
    );
    let plan = Plan::new(&impls, &Selection::default()).unwrap();
    assert_eq!(
        summary.results.len(),
        plan.cells.len(),
        "one result per cell"
    );
    // The groups are where they belong: every language client plays the
    // bad server's groups and the tls group, every server faces the bad client.
    let count = |client: &str, server: &str, group: CaseGroup| {
        summary
            .results
            .iter()
            .filter(|r| r.id.client == client && r.id.server == server)
            .filter(|r| r.id.case.group() == group)
            .count()
    };
    for client in ["go", "python", "rust"] {
        assert_eq!(count(client, "bad-server", CaseGroup::Http2Negative), 8);
        assert!(count(client, "bad-server", CaseGroup::Wire) >= 12);
        for server in ["go", "python", "rust"] {
            assert_eq!(
                count(client, server, CaseGroup::Tls),
                5,
                "{client}→{server}"
            );
        }
    }
    for server in ["go", "go-official", "python", "rust"] {
        assert!(
            count("bad-client", server, CaseGroup::BadInput) >= 12,
            "{server}"
        );
        assert_eq!(count("go", server, CaseGroup::Interop), 18, "{server}");
    }
    // Each bad_input cell checked that the server was still alive, says what
    // it answered, and has the server's memory before and after.
    for r in summary
        .results
        .iter()
        .filter(|r| r.id.case.group() == CaseGroup::BadInput)
    {
        let alive = r.checks.as_ref().and_then(|c| c.get("alive"));
        assert_eq!(alive, Some(&CheckState::Passed), "{}: {}", r.id, r.message);
        assert!(r.observed.contains_key("answer"), "{}", r.id);
        for key in [
            grpc_interop::runner::SERVER_MEMORY_BEFORE,
            grpc_interop::runner::SERVER_MEMORY_AFTER,
        ] {
            assert!(r.metrics[key] > 1000.0, "{}: {:?}", r.id, r.metrics);
        }
    }
    let problems = describe_problems(&summary.results);
    assert!(problems.is_empty(), "cells that did not pass:\n{problems}");
    assert!(summary.ok());

    for r in &summary.results {
        if r.outcome == Outcome::Unsupported {
            // The official interop binaries have no Greeter; elsewhere only
            // compression can be unsupported.
            assert!(
                COMPRESSION_CASES.contains(&r.id.case)
                    || (r.id.case.group() == CaseGroup::Greeter
                        && [&r.id.client, &r.id.server].contains(&&"go-official".to_string())),
                "{} unsupported: {}",
                r.id,
                r.message
            );
            assert!(
                !r.message.is_empty(),
                "{} unsupported without a reason",
                r.id
            );
        }
    }
    // The other cells pass in full in all sixteen pairings, but for the
    // cells known-failures.toml lists, each naming its library.
    for r in summary
        .results
        .iter()
        .filter(|r| !COMPRESSION_CASES.contains(&r.id.case) && r.unsupported.is_none())
    {
        match &r.known_failure {
            None if r.id.case.group() == CaseGroup::BadInput => {
                assert!(r.outcome.is_pass(), "{}: {}", r.id, r.message);
            }
            None => assert_eq!(r.outcome, Outcome::Passed, "{}: {}", r.id, r.message),
            Some(k) => assert!(k.library.is_some(), "{}: {k:?}", r.id),
        }
        // A full pass names every check of its case, but the official
        // client's, which tells its result by its exit status only.
        if r.outcome == Outcome::Passed {
            match r.reported_by {
                None => {
                    let made = r.checks.as_ref().map_or(0, |c| c.len());
                    assert_eq!(made, r.id.case.checks().len(), "{}", r.id);
                }
                Some(how) => {
                    assert_eq!((r.id.client.as_str(), how), ("go-official", "exit_status"));
                    assert_eq!(r.checks, None, "{}", r.id);
                }
            }
        }
        // Every soak cell of our clients reports its latencies.
        if r.id.case.group() == CaseGroup::Soak && r.reported_by.is_none() {
            for key in ["iterations", "failures", "latency_ms_p50", "latency_ms_p99"] {
                assert!(r.metrics.contains_key(key), "{}: {:?}", r.id, r.metrics);
            }
        }
    }
    // Only checks a client's library cannot make are not made (the Python
    // client's compression flags), and the answers the spec leaves open,
    // which are held against their baselines.
    for r in summary
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::PassedPartial)
    {
        if r.id.case.group() == CaseGroup::BadInput {
            assert_eq!(
                r.not_checked.keys().collect::<Vec<_>>(),
                ["answer"],
                "{}",
                r.id
            );
            continue;
        }
        assert_eq!(r.id.client, "python", "{}", r.id);
        assert!(COMPRESSION_CASES.contains(&r.id.case), "{}", r.id);
    }
    // Every cell went through the reporters once, and the totals agree.
    let events = recorder.0.lock().unwrap();
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::CellFinished(_)))
        .count();
    assert_eq!(finished, summary.results.len());
    let totals = Totals::of(&summary.results);
    assert_eq!(
        totals.passed + totals.passed_partial + totals.unsupported + totals.failed,
        totals.cells
    );
    assert!(totals.passed_partial > 0);
    drop(events);
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_greeting_fails_exactly_that_servers_greeter_cells() {
    let _serial = serial();
    ensure_built();
    let mut impls = impls();
    // A second Go server that greets with another word: the same binary, one flag.
    let mut howdy = impls.iter().find(|i| i.name == "go").unwrap().clone();
    howdy.name = "go-howdy".to_string();
    howdy.client = None;
    howdy
        .server
        .as_mut()
        .unwrap()
        .command
        .extend(["--greeting".to_string(), "Howdy".to_string()]);
    impls.push(howdy);
    let selection = Selection {
        servers: Some("go,go-howdy".into()),
        cases: Some("greeter_*,large_unary".into()),
        ..Default::default()
    };
    let summary = run_native(&impls, selection, prebuilt(), false, vec![]).await;
    assert_eq!(summary.results.len(), 4 * 2 * 5);
    for r in &summary.results {
        let expect_fail = r.id.server == "go-howdy" && r.id.case.name().starts_with("greeter_");
        if r.id.client == "go-official" && r.id.case.group() == CaseGroup::Greeter {
            // It has no Greeter cases: shown by its exit status.
            assert_eq!(r.outcome, Outcome::Unsupported, "{}: {}", r.id, r.message);
        } else if expect_fail {
            assert_eq!(r.outcome, Outcome::Failed, "{}: {}", r.id, r.message);
            assert!(
                r.message.contains("Howdy") && r.message.contains("Hello"),
                "{}: message must say got and want: {}",
                r.id,
                r.message
            );
        } else {
            assert_eq!(r.outcome, Outcome::Passed, "{}: {}", r.id, r.message);
        }
    }
    assert!(!summary.ok());
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_passes_over_tls() {
    let _serial = serial();
    ensure_built();
    let impls = impls();
    // The official server serves its own test certificate: clients trust its
    // CA (its manifest names it), and the official client trusts ours.
    let selection = Selection {
        cases: Some("large_unary,custom_metadata,special_status_message,channel_soak".into()),
        ..Default::default()
    };
    let summary = run_native(&impls, selection, prebuilt(), true, vec![]).await;
    assert_eq!(summary.results.len(), 16 * 4);
    let problems = describe_problems(&summary.results);
    assert!(
        problems.is_empty(),
        "TLS cells that did not pass:\n{problems}"
    );
    assert!(summary.results.iter().all(|r| r.outcome == Outcome::Passed));
    assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_case_gives_the_same_outcomes() {
    let _serial = serial();
    ensure_built();
    let impls = impls();
    let selection = Selection {
        servers: Some("rust".into()),
        cases: Some(
            "greeter_*,empty_unary,ping_pong,cancel_after_begin,timeout_on_sleeping_server".into(),
        ),
        ..Default::default()
    };
    let batched = run_native(&impls, selection.clone(), prebuilt(), false, vec![]).await;
    let per_case = run_native(
        &impls,
        selection,
        grpc_interop::runner::Options {
            process_per_case: true,
            ..prebuilt()
        },
        false,
        vec![],
    )
    .await;
    let outcomes = |s: &grpc_interop::runner::Summary| {
        s.results
            .iter()
            .map(|r| (r.id.clone(), r.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&batched), outcomes(&per_case));
    assert!(batched.ok(), "{}", describe_problems(&batched.results));
    assert_eq!(batched.results.len(), 4 * 8);
    assert!(per_case.duration > Duration::ZERO);
    assert_no_leftovers();
}

/// `--mtls`: every server requires client certificates and every client
/// presents one; the tls group's refusals are refused; the fixtures' groups
/// stay in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_passes_over_mutual_tls_and_its_refusals_are_refused() {
    let _serial = serial();
    ensure_built();
    let impls = impls();
    let selection = Selection {
        clients: Some("go,python,rust".into()),
        servers: Some("go,python,rust,bad-server".into()),
        cases: Some("large_unary,custom_metadata,client_streaming,mtls_*,tls_*,goaway".into()),
        ..Default::default()
    };
    let summary = run_native_over(
        &impls,
        selection,
        prebuilt(),
        grpc_interop::backend::Transport::Mtls,
        vec![],
    )
    .await;
    // 3 clients × (3 servers × (3 + 5 cases) + goaway against the bad server).
    assert_eq!(summary.results.len(), 3 * (3 * 8 + 1));
    assert!(summary.ok(), "{}", describe_problems(&summary.results));
    for r in &summary.results {
        let made = r.checks.clone().unwrap_or_default();
        match r.id.case {
            // The refusals: UNAVAILABLE, or the library's known other code.
            Case::TlsUntrustedServer
            | Case::TlsWrongName
            | Case::MtlsNoClientCert
            | Case::MtlsOtherCaClient => {
                assert!(made.contains_key("status_code"), "{}", r.id);
                if r.outcome == Outcome::Failed {
                    assert!(r.known_failure.is_some(), "{}: {}", r.id, r.message);
                    assert!(
                        !r.message.contains("status = OK"),
                        "{}: {}",
                        r.id,
                        r.message
                    );
                }
            }
            _ => assert_eq!(r.outcome, Outcome::Passed, "{}: {}", r.id, r.message),
        }
    }
    assert_no_leftovers();
}
