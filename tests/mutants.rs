//! `interop mutants` for real: the lying server breaks one checked property
//! at a time, every shipped client plays every lie, and every client catches
//! every lie but its declared blind spots.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use grpc_interop::cases::{Case, CaseGroup};

#[test]
fn every_client_catches_every_applicable_mutation() {
    let _serial = serial();
    ensure_built();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("mutants.json");
    // Builds the lying server (and, already built, the clients) first.
    let out = Command::new(env!("CARGO_BIN_EXE_interop"))
        .args(["mutants", "--json"])
        .arg(&json)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interop mutants failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(table["schema"], grpc_interop::mutants::SCHEMA);

    // At least 40 mutations, every case and every check name covered.
    let mutations = table["mutations"].as_array().unwrap();
    assert!(mutations.len() >= 40, "{} mutations", mutations.len());
    let cases: BTreeSet<&str> = mutations
        .iter()
        .map(|m| m["case"].as_str().unwrap())
        .collect();
    // Every case a server of the matrix serves (the soak cases repeat
    // large_unary; the other groups are the bad server's and the bad client's).
    let served: Vec<Case> = Case::all()
        .into_iter()
        .filter(|c| matches!(c.group(), CaseGroup::Greeter | CaseGroup::Interop))
        .collect();
    let all: BTreeSet<&str> = served.iter().map(|c| c.name()).collect();
    assert_eq!(cases, all, "a mutation for every case");
    let broken: BTreeSet<String> = mutations
        .iter()
        .map(|m| {
            let check = m["check"].as_str().unwrap();
            check.rsplit('.').next().unwrap().to_string()
        })
        .collect();
    for check in served.iter().flat_map(|c| c.checks()) {
        let bare = check.rsplit('.').next().unwrap();
        // sent_compressed checks the client itself: no server lie can break it.
        if bare != "sent_compressed" {
            assert!(broken.contains(bare), "no mutation breaks {bare}");
        }
    }

    // Every client: no hole; the only blind spots are checks its library
    // cannot make, the same ones its results name as not made.
    let scores = table["scores"].as_object().unwrap();
    assert_eq!(
        scores.keys().map(String::as_str).collect::<Vec<_>>(),
        ["go", "python", "rust"]
    );
    for (client, score) in scores {
        assert_eq!(score["holes"], serde_json::json!([]), "{client}");
        let applicable = score["applicable"].as_u64().unwrap();
        let caught = score["caught"].as_u64().unwrap();
        let blind = score["blind_spots"].as_array().unwrap();
        assert_eq!(caught + blind.len() as u64, applicable, "{client}");
        for spot in blind {
            assert!(
                spot["check"]
                    .as_str()
                    .unwrap()
                    .ends_with("response_compressed"),
                "{client}: {spot}"
            );
            assert!(
                spot["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("grpcio 1.85.1"),
                "{client}: {spot}"
            );
        }
        if client != "python" {
            assert!(blind.is_empty(), "{client}: {blind:?}");
        }
        // The rest of the mutations are races not won or not applicable.
        assert!(
            applicable + 4 >= mutations.len() as u64,
            "{client}: {score}"
        );
    }
    // Each result says how it was judged.
    for m in mutations {
        for (client, played) in m["results"].as_object().unwrap() {
            let verdict = played["verdict"].as_str().unwrap();
            if verdict == "caught" {
                let failed: Vec<&str> = played["failed_checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect();
                assert!(
                    failed.contains(&m["check"].as_str().unwrap()),
                    "{client}: {m}"
                );
            }
        }
    }
    assert_no_leftovers();
}
