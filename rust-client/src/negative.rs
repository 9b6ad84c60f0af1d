//! The cases of the groups `http2_negative` and `wire` (played against the
//! bad server) and `tls` (against a server that requires client
//! certificates): each makes a channel of its own (implementations/CONTRACT.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use grpc_interop::cases::{Case, CaseGroup};
use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;
use grpc_interop::pb::grpc_testing::{Empty, SimpleRequest, SimpleResponse};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Response};

use crate::cases::{Deadline, LARGE_RESPONSE_SIZE, RPC_DEADLINE, large_request};
use crate::checks::{CallError, Checks};
use crate::{ClientOptions, Clients, TlsOptions};

/// The request metadata that tells the bad server which case a call plays.
pub const CASE_HEADER: &str = "x-interop-case";
/// The pause between the two calls of `goaway` (the official description's).
pub const GOAWAY_PAUSE: Duration = Duration::from_secs(1);
/// How many calls `max_streams` makes at the same time.
pub const MAX_STREAMS_CONCURRENT: usize = 10;
/// The deadline of `silent_server`.
pub const SILENT_SERVER_DEADLINE: Duration = Duration::from_secs(1);
/// The deadline of the other `wire` cases (the contract's): every answer of
/// the bad server comes at once on loopback, and a library that waits for
/// more than the server sends ends at it.
pub const WIRE_DEADLINE: Duration = Duration::from_secs(3);
/// The name `tls_wrong_name` verifies, which no test certificate carries.
pub const WRONG_NAME: &str = "wrong.name.invalid";

/// The code each `wire` case must end with (the contract's table).
pub const WIRE: &[(Case, Code)] = &[
    (Case::Http400, Code::Internal),
    (Case::Http401, Code::Unauthenticated),
    (Case::Http403, Code::PermissionDenied),
    (Case::Http404, Code::Unimplemented),
    (Case::Http429, Code::Unavailable),
    (Case::Http502, Code::Unavailable),
    (Case::Http503, Code::Unavailable),
    (Case::Http504, Code::Unavailable),
    (Case::MissingGrpcStatus, Code::Unknown),
    (Case::NonGrpcContentType, Code::Unknown),
    (Case::UnparsableGrpcStatus, Code::Unknown),
    (Case::TruncatedMessage, Code::Internal),
    (Case::InvalidProtobuf, Code::Internal),
    (Case::ResponseTooLarge, Code::ResourceExhausted),
    (Case::CompressedWithoutEncoding, Code::Internal),
    (Case::UnknownResponseEncoding, Code::Internal),
    (Case::TwoResponses, Code::Unimplemented),
    (Case::NoResponse, Code::Unimplemented),
    (Case::ConnectionDropped, Code::Unavailable),
    (Case::SilentServer, Code::DeadlineExceeded),
];

/// The wanted code and the deadline of a `wire` case.
pub fn wire_expectation(case: Case) -> Option<(Code, Duration)> {
    let (_, code) = WIRE.iter().find(|(c, _)| *c == case)?;
    let deadline = if case == Case::SilentServer {
        SILENT_SERVER_DEADLINE
    } else {
        WIRE_DEADLINE
    };
    Some((*code, deadline))
}

/// Runs one case of these groups.
pub async fn run(case: Case, c: &Clients) -> Checks {
    match case.group() {
        CaseGroup::Tls => tls_case(case, c).await,
        CaseGroup::Http2Negative | CaseGroup::Wire => {
            let mut checks = Checks::default();
            let channel = match c.options.as_ref().map(ClientOptions::channel) {
                Some(Ok(channel)) => channel,
                Some(Err(error)) => {
                    fail_first(&mut checks, case, format!("{case}: no channel: {error}"));
                    return checks;
                }
                None => {
                    fail_first(
                        &mut checks,
                        case,
                        format!("{case}: these clients were made without a way to make channels"),
                    );
                    return checks;
                }
            };
            let client = TestServiceClient::new(channel);
            if case.group() == CaseGroup::Wire {
                wire_case(case, client, &mut checks).await;
            } else {
                negative_case(case, client, &mut checks).await;
            }
            checks
        }
        _ => {
            let mut checks = Checks::default();
            fail_first(
                &mut checks,
                case,
                format!("{case} is not a case of the http2_negative, wire or tls groups"),
            );
            checks
        }
    }
}

fn fail_first(checks: &mut Checks, case: Case, why: String) {
    checks.fail(case.checks().first().copied().unwrap_or("status"), why);
}

/// `UnaryCall` with `large_unary`'s request, naming `case` for the bad server.
async fn unary(
    client: &mut TestServiceClient<Channel>,
    case: Case,
    deadline: Duration,
) -> Result<Response<SimpleResponse>, CallError> {
    let d = Deadline::start(deadline);
    let mut request: Request<SimpleRequest> = d.request(large_request());
    request
        .metadata_mut()
        .insert(CASE_HEADER, MetadataValue::from_static(case.name()));
    d.wait(client.unary_call(request)).await
}

async fn wire_case(case: Case, mut client: TestServiceClient<Channel>, checks: &mut Checks) {
    let Some((code, deadline)) = wire_expectation(case) else {
        fail_first(checks, case, format!("{case} has no expected code"));
        return;
    };
    let result = unary(&mut client, case, deadline).await;
    checks.status("status_code", "UnaryCall", result, code, None);
}

/// `<prefix>status` and `<prefix>payload_size` (and, when asked, the body
/// and type) of one call that must succeed.
fn check_response(
    checks: &mut Checks,
    prefix: &str,
    call: &str,
    result: Result<Response<SimpleResponse>, CallError>,
    names: &[&str],
) {
    let Some(response) = checks.ok(&format!("{prefix}status"), call, result) else {
        return;
    };
    let mut all = Checks::default();
    all.payload(
        prefix,
        call,
        response.get_ref().payload.as_ref(),
        LARGE_RESPONSE_SIZE,
    );
    for name in names {
        let name = format!("{prefix}{name}");
        match all.made().get(&name) {
            Some(crate::checks::CheckState::Passed) => checks.pass(&name),
            _ => {
                // The payload check says what was wrong, in order.
                let why = all.message();
                checks.fail(&name, why);
            }
        }
    }
}

async fn negative_case(case: Case, mut client: TestServiceClient<Channel>, checks: &mut Checks) {
    match case {
        Case::Goaway => {
            let first = unary(&mut client, case, RPC_DEADLINE).await;
            check_response(checks, "first.", "UnaryCall 1", first, &["payload_size"]);
            tokio::time::sleep(GOAWAY_PAUSE).await;
            let second = unary(&mut client, case, RPC_DEADLINE).await;
            check_response(checks, "second.", "UnaryCall 2", second, &["payload_size"]);
        }
        Case::RstAfterHeader | Case::RstDuringData | Case::RstAfterData => {
            match unary(&mut client, case, RPC_DEADLINE).await {
                Err(CallError::Status(_)) => checks.pass("not_ok"),
                Ok(_) => checks.fail("not_ok", "UnaryCall status = OK, want any status but OK"),
                Err(error @ CallError::Overrun { .. }) => checks.fail(
                    "not_ok",
                    format!("UnaryCall status = {error}, want any status but OK"),
                ),
            }
        }
        Case::Ping => {
            let result = unary(&mut client, case, RPC_DEADLINE).await;
            check_response(checks, "", "UnaryCall", result, &["payload_size"]);
        }
        Case::MaxStreams => {
            let names = ["payload_size", "payload_type"];
            let first = unary(&mut client, case, RPC_DEADLINE).await;
            check_response(checks, "", "UnaryCall 1", first, &names);
            let mut calls = tokio::task::JoinSet::new();
            for index in 0..MAX_STREAMS_CONCURRENT {
                let mut client = client.clone();
                calls.spawn(async move {
                    (
                        index + 2,
                        unary(&mut client, Case::MaxStreams, RPC_DEADLINE).await,
                    )
                });
            }
            let mut results = Vec::new();
            while let Some(joined) = calls.join_next().await {
                match joined {
                    Ok(result) => results.push(result),
                    Err(error) => checks.fail("status", format!("a call task failed: {error}")),
                }
            }
            results.sort_by_key(|(index, _)| *index);
            for (index, result) in results {
                check_response(
                    checks,
                    "",
                    &format!("UnaryCall {index} (of {MAX_STREAMS_CONCURRENT} at once)"),
                    result,
                    &names,
                );
            }
        }
        Case::DataFramePadding | Case::NoDfPaddingSanityTest => {
            let result = unary(&mut client, case, RPC_DEADLINE).await;
            check_response(
                checks,
                "",
                "UnaryCall",
                result,
                &["payload_size", "payload_body"],
            );
        }
        other => fail_first(
            checks,
            other,
            format!("{other} is not an http2_negative case"),
        ),
    }
}

/// The channel a `tls` case asks for, from the client's TLS settings.
fn tls_channel(case: Case, c: &Clients) -> Result<Channel, String> {
    let options = c
        .options
        .as_ref()
        .ok_or("these clients were made without a way to make channels")?;
    let files = &options.tls_cases;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let in_dir = |name: &str| -> Result<PathBuf, String> {
        files
            .dir
            .as_ref()
            .map(|dir| dir.join(name))
            .ok_or_else(|| format!("{case} needs INTEROP_TLS_DIR (for {name})"))
    };
    let ca_path = match case {
        Case::TlsUntrustedServer => in_dir("other-ca.pem")?,
        _ => files
            .ca
            .clone()
            .ok_or_else(|| format!("{case} needs --ca_file or INTEROP_TLS_DIR"))?,
    };
    let identity = match case {
        Case::MtlsNoClientCert => None,
        Case::MtlsOtherCaClient => Some((
            read(&in_dir("other-client.pem")?)?,
            read(&in_dir("other-client.key")?)?,
        )),
        _ => {
            let (cert, key) = files.client_cert.as_ref().ok_or_else(|| {
                format!(
                    "{case} needs a client certificate (--client_cert_file, --client_key_file or INTEROP_TLS_DIR)"
                )
            })?;
            Some((read(cert)?, read(key)?))
        }
    };
    let server_name = if case == Case::TlsWrongName {
        WRONG_NAME.to_string()
    } else {
        files.server_name.clone()
    };
    let options = ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(read(&ca_path)?),
            server_name,
            identity,
        }),
        ..options.clone()
    };
    options.channel().map_err(|e| format!("{e:#}"))
}

async fn tls_case(case: Case, c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let channel = match tls_channel(case, c) {
        Ok(channel) => channel,
        Err(why) => {
            fail_first(&mut checks, case, format!("{case}: {why}"));
            return checks;
        }
    };
    let mut client = TestServiceClient::new(channel);
    let d = Deadline::start(RPC_DEADLINE);
    let result = d.wait(client.empty_call(d.request(Empty {}))).await;
    if case == Case::MtlsAccepted {
        checks.ok("status", "EmptyCall", result);
    } else {
        checks.status("status_code", "EmptyCall", result, Code::Unavailable, None);
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_case_has_one_expected_code() {
        let wire: Vec<Case> = Case::all()
            .into_iter()
            .filter(|c| c.group() == CaseGroup::Wire)
            .collect();
        assert_eq!(wire.len(), WIRE.len());
        for case in wire {
            assert!(wire_expectation(case).is_some(), "{case}");
        }
        assert_eq!(
            wire_expectation(Case::Http404),
            Some((Code::Unimplemented, WIRE_DEADLINE))
        );
        assert_eq!(
            wire_expectation(Case::SilentServer),
            Some((Code::DeadlineExceeded, SILENT_SERVER_DEADLINE))
        );
        assert_eq!(wire_expectation(Case::Goaway), None);
    }

    /// The table is the contract's: every row of its `wire` table names the
    /// code this client wants, by name and number.
    #[test]
    fn the_wire_codes_are_the_contracts() {
        let contract = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../implementations/CONTRACT.md"
        ))
        .unwrap();
        let table = &contract[contract
            .find("| case | what the bad server answers | code |")
            .expect("the wire table")..];
        let mut rows = 0;
        for line in table.lines().skip(2).take_while(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let case: Case = cells[0].trim_matches(['|', ' ', '`']).parse().unwrap();
            let (code, _) = wire_expectation(case).unwrap();
            let want = crate::checks::code_text(code);
            assert_eq!(cells.last().unwrap().trim_end_matches(" |"), want, "{case}");
            rows += 1;
        }
        assert_eq!(rows, WIRE.len());
    }
}
