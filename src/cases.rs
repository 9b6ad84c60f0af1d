//! The catalogue of cases: the same snake_case names in every language.

use serde::Serialize;
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

/// Which service a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseGroup {
    /// `helloworld.Greeter`: the four call kinds.
    Greeter,
    /// `grpc.testing.TestService`: the official interop cases.
    Interop,
    /// The official soak cases: many `large_unary` calls in a row.
    Soak,
    /// The official negative HTTP/2 cases, against the bad server.
    Http2Negative,
    /// Broken answers (HTTP statuses, trailers, framing), against the bad server.
    Wire,
    /// TLS and mutual-TLS refusals, against a server requiring client certificates.
    Tls,
    /// Bad input fed to a server by the bad client.
    BadInput,
}

impl CaseGroup {
    /// Every group, in report order.
    pub const ALL: [CaseGroup; 7] = [
        CaseGroup::Greeter,
        CaseGroup::Interop,
        CaseGroup::Soak,
        CaseGroup::Http2Negative,
        CaseGroup::Wire,
        CaseGroup::Tls,
        CaseGroup::BadInput,
    ];

    /// The groups every server serves and every client plays: the ones of
    /// `--test_case all`, and of a manifest role that names none.
    pub const DEFAULT: [CaseGroup; 3] = [CaseGroup::Greeter, CaseGroup::Interop, CaseGroup::Soak];

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CaseGroup::Greeter => "greeter",
            CaseGroup::Interop => "interop",
            CaseGroup::Soak => "soak",
            CaseGroup::Http2Negative => "http2_negative",
            CaseGroup::Wire => "wire",
            CaseGroup::Tls => "tls",
            CaseGroup::BadInput => "bad_input",
        }
    }

    /// The group named `name`.
    pub fn from_name(name: &str) -> Option<CaseGroup> {
        CaseGroup::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// One test case. The order of the variants is the order clients run `all` in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, EnumString, IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum Case {
    GreeterUnary,
    GreeterServerStreaming,
    GreeterClientStreaming,
    GreeterBidiStreaming,
    EmptyUnary,
    LargeUnary,
    ClientStreaming,
    ServerStreaming,
    PingPong,
    EmptyStream,
    CustomMetadata,
    StatusCodeAndMessage,
    SpecialStatusMessage,
    UnimplementedMethod,
    UnimplementedService,
    CancelAfterBegin,
    CancelAfterFirstResponse,
    TimeoutOnSleepingServer,
    ClientCompressedUnary,
    ServerCompressedUnary,
    ClientCompressedStreaming,
    ServerCompressedStreaming,
    RpcSoak,
    ChannelSoak,
    // http2_negative
    Goaway,
    RstAfterHeader,
    RstDuringData,
    RstAfterData,
    Ping,
    MaxStreams,
    DataFramePadding,
    NoDfPaddingSanityTest,
    // wire
    #[strum(serialize = "http_400")]
    Http400,
    #[strum(serialize = "http_401")]
    Http401,
    #[strum(serialize = "http_403")]
    Http403,
    #[strum(serialize = "http_404")]
    Http404,
    #[strum(serialize = "http_429")]
    Http429,
    #[strum(serialize = "http_502")]
    Http502,
    #[strum(serialize = "http_503")]
    Http503,
    #[strum(serialize = "http_504")]
    Http504,
    MissingGrpcStatus,
    NonGrpcContentType,
    UnparsableGrpcStatus,
    TruncatedMessage,
    InvalidProtobuf,
    ResponseTooLarge,
    CompressedWithoutEncoding,
    UnknownResponseEncoding,
    TwoResponses,
    NoResponse,
    ConnectionDropped,
    SilentServer,
    // tls
    MtlsAccepted,
    TlsUntrustedServer,
    TlsWrongName,
    MtlsNoClientCert,
    MtlsOtherCaClient,
    // bad_input
    OversizedRequest,
    ContentTypeTextPlain,
    ContentTypeMissing,
    UnknownRequestEncoding,
    TruncatedRequestMessage,
    InvalidRequestProtobuf,
    UnknownService,
    UnknownMethod,
    RequestCompressedWithoutEncoding,
    InvalidGrpcTimeout,
    GrpcTimeoutTooManyDigits,
    GrpcTimeoutOverflow,
    #[strum(serialize = "metadata_64k")]
    Metadata64k,
    #[strum(serialize = "metadata_1m")]
    Metadata1m,
    #[strum(serialize = "streams_500")]
    Streams500,
    #[strum(serialize = "held_streams_64")]
    HeldStreams64,
    #[strum(serialize = "unfinished_prefaces_200")]
    UnfinishedPrefaces200,
    TruncatedFrame,
}

impl Case {
    /// Every case, in catalogue order.
    pub fn all() -> Vec<Case> {
        Case::iter().collect()
    }

    /// The cases of `--test_case all`: those of the default groups, which
    /// every server serves.
    pub fn default_cases() -> Vec<Case> {
        Case::iter()
            .filter(|c| CaseGroup::DEFAULT.contains(&c.group()))
            .collect()
    }

    /// A case that holds many connections or streams for a while: played
    /// when named with `--case`, or with `--slow`, not in the default run.
    pub fn is_slow(self) -> bool {
        matches!(self, Case::UnfinishedPrefaces200 | Case::Streams500)
    }

    /// The spec's snake_case name.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The service the case exercises.
    pub fn group(self) -> CaseGroup {
        match self {
            Case::GreeterUnary
            | Case::GreeterServerStreaming
            | Case::GreeterClientStreaming
            | Case::GreeterBidiStreaming => CaseGroup::Greeter,
            Case::RpcSoak | Case::ChannelSoak => CaseGroup::Soak,
            Case::Goaway
            | Case::RstAfterHeader
            | Case::RstDuringData
            | Case::RstAfterData
            | Case::Ping
            | Case::MaxStreams
            | Case::DataFramePadding
            | Case::NoDfPaddingSanityTest => CaseGroup::Http2Negative,
            Case::Http400
            | Case::Http401
            | Case::Http403
            | Case::Http404
            | Case::Http429
            | Case::Http502
            | Case::Http503
            | Case::Http504
            | Case::MissingGrpcStatus
            | Case::NonGrpcContentType
            | Case::UnparsableGrpcStatus
            | Case::TruncatedMessage
            | Case::InvalidProtobuf
            | Case::ResponseTooLarge
            | Case::CompressedWithoutEncoding
            | Case::UnknownResponseEncoding
            | Case::TwoResponses
            | Case::NoResponse
            | Case::ConnectionDropped
            | Case::SilentServer => CaseGroup::Wire,
            Case::MtlsAccepted
            | Case::TlsUntrustedServer
            | Case::TlsWrongName
            | Case::MtlsNoClientCert
            | Case::MtlsOtherCaClient => CaseGroup::Tls,
            Case::OversizedRequest
            | Case::ContentTypeTextPlain
            | Case::ContentTypeMissing
            | Case::UnknownRequestEncoding
            | Case::TruncatedRequestMessage
            | Case::InvalidRequestProtobuf
            | Case::UnknownService
            | Case::UnknownMethod
            | Case::RequestCompressedWithoutEncoding
            | Case::InvalidGrpcTimeout
            | Case::GrpcTimeoutTooManyDigits
            | Case::GrpcTimeoutOverflow
            | Case::Metadata64k
            | Case::Metadata1m
            | Case::Streams500
            | Case::HeldStreams64
            | Case::UnfinishedPrefaces200
            | Case::TruncatedFrame => CaseGroup::BadInput,
            _ => CaseGroup::Interop,
        }
    }

    /// The checks this case makes, by name (implementations/CONTRACT.md,
    /// "Checks"). Result lines name them; the runner judges every result
    /// against this list.
    pub fn checks(self) -> &'static [&'static str] {
        match self {
            Case::GreeterUnary | Case::GreeterClientStreaming => &["status", "message", "index"],
            Case::GreeterServerStreaming | Case::GreeterBidiStreaming => {
                &["status", "reply_count", "message", "index"]
            }
            Case::EmptyUnary => &["status"],
            Case::LargeUnary => &["status", "payload_size", "payload_body", "payload_type"],
            Case::ClientStreaming => &["status", "aggregated_size"],
            Case::ServerStreaming | Case::PingPong => &[
                "status",
                "response_count",
                "payload_size",
                "payload_body",
                "payload_type",
            ],
            Case::EmptyStream => &["status", "response_count"],
            Case::CustomMetadata => &[
                "unary.status",
                "unary.payload_size",
                "unary.payload_body",
                "unary.payload_type",
                "unary.echo_initial",
                "unary.echo_trailing",
                "duplex.status",
                "duplex.response_count",
                "duplex.payload_size",
                "duplex.payload_body",
                "duplex.payload_type",
                "duplex.echo_initial",
                "duplex.echo_trailing",
            ],
            Case::StatusCodeAndMessage => &[
                "unary.status_code",
                "unary.status_message",
                "duplex.status_code",
                "duplex.status_message",
            ],
            Case::SpecialStatusMessage => &["status_code", "status_message"],
            Case::UnimplementedMethod
            | Case::UnimplementedService
            | Case::CancelAfterBegin
            | Case::TimeoutOnSleepingServer => &["status_code"],
            Case::CancelAfterFirstResponse => &[
                "status",
                "payload_size",
                "payload_body",
                "payload_type",
                "status_code",
            ],
            Case::ClientCompressedUnary => &[
                "probe.status_code",
                "compressed.status",
                "compressed.payload_size",
                "compressed.payload_body",
                "compressed.payload_type",
                "compressed.sent_compressed",
                "uncompressed.status",
                "uncompressed.payload_size",
                "uncompressed.payload_body",
                "uncompressed.payload_type",
            ],
            Case::ServerCompressedUnary => &[
                "compressed.status",
                "compressed.payload_size",
                "compressed.payload_body",
                "compressed.payload_type",
                "compressed.response_compressed",
                "uncompressed.status",
                "uncompressed.payload_size",
                "uncompressed.payload_body",
                "uncompressed.payload_type",
                "uncompressed.response_compressed",
            ],
            Case::ClientCompressedStreaming => &[
                "probe.status_code",
                "stream.status",
                "stream.aggregated_size",
                "stream.sent_compressed",
            ],
            Case::ServerCompressedStreaming => &[
                "status",
                "response_count",
                "payload_size",
                "payload_body",
                "payload_type",
                "response_compressed",
            ],
            Case::RpcSoak | Case::ChannelSoak => &["completed", "failures"],
            Case::Goaway => &[
                "first.status",
                "first.payload_size",
                "second.status",
                "second.payload_size",
            ],
            Case::RstAfterHeader | Case::RstDuringData | Case::RstAfterData => &["not_ok"],
            Case::Ping => &["status", "payload_size"],
            Case::MaxStreams => &["status", "payload_size", "payload_type"],
            Case::DataFramePadding | Case::NoDfPaddingSanityTest => {
                &["status", "payload_size", "payload_body"]
            }
            Case::MtlsAccepted => &["status"],
            _ => match self.group() {
                CaseGroup::Wire | CaseGroup::Tls => &["status_code"],
                CaseGroup::BadInput => &["answer", "alive"],
                _ => &[],
            },
        }
    }

    /// Parses a `--test_case` value: one name, a comma list, or `all`.
    pub fn parse_list(text: &str) -> Result<Vec<Case>, String> {
        if text.trim() == "all" {
            return Ok(Case::default_cases());
        }
        let mut cases = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let case = name
                .parse::<Case>()
                .map_err(|_| format!("unknown test case {name:?}"))?;
            if !cases.contains(&case) {
                cases.push(case);
            }
        }
        if cases.is_empty() {
            return Err("no test case given".to_string());
        }
        Ok(cases)
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Case {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_snake_case() {
        for case in Case::all() {
            assert_eq!(case.name().parse::<Case>().unwrap(), case);
            assert!(
                case.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
            assert!(!case.checks().is_empty(), "{case}");
        }
        assert_eq!(Case::default_cases().len(), 24);
        assert_eq!(Case::Http404.name(), "http_404");
        assert_eq!(Case::Metadata64k.name(), "metadata_64k");
        assert_eq!(
            Case::NoDfPaddingSanityTest.name(),
            "no_df_padding_sanity_test"
        );
        assert_eq!(Case::LargeUnary.name(), "large_unary");
        assert_eq!(Case::GreeterBidiStreaming.name(), "greeter_bidi_streaming");
    }

    #[test]
    fn parse_list_accepts_all_lists_and_rejects_unknown() {
        assert_eq!(Case::parse_list("all").unwrap().len(), 24);
        assert_eq!(
            Case::parse_list("goaway,http_503").unwrap(),
            vec![Case::Goaway, Case::Http503]
        );
        assert_eq!(
            Case::parse_list("ping_pong, empty_unary,ping_pong").unwrap(),
            vec![Case::PingPong, Case::EmptyUnary]
        );
        let err = Case::parse_list("large_unary,larg_unary").unwrap_err();
        assert!(err.contains("larg_unary"), "{err}");
        assert!(Case::parse_list(" , ").is_err());
    }

    #[test]
    fn the_checks_are_the_ones_the_contract_lists() {
        let contract = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/implementations/CONTRACT.md"
        ))
        .unwrap();
        let table = &contract[contract
            .find("| case | checks |")
            .expect("the checks table")..];
        let mut rows = 0;
        for line in table.lines().skip(2).take_while(|l| l.starts_with("| `")) {
            let mut cells = line.split(" | ");
            let case: Case = cells
                .next()
                .unwrap()
                .trim_matches(['|', ' ', '`'])
                .parse()
                .unwrap();
            // A row may explain some of its names in parentheses after the list.
            let names = cells.next().unwrap().split(" (").next().unwrap();
            let listed: Vec<&str> = names
                .split_whitespace()
                .map(|w| w.trim_matches(['`', '|']))
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(listed, case.checks(), "{case}");
            rows += 1;
        }
        assert_eq!(rows, Case::all().len());
    }

    #[test]
    fn groups_split_greeter_from_interop() {
        let greeter = Case::all()
            .into_iter()
            .filter(|c| c.group() == CaseGroup::Greeter)
            .count();
        assert_eq!(greeter, 4);
        let count = |g| Case::all().into_iter().filter(|c| c.group() == g).count();
        assert_eq!(count(CaseGroup::Http2Negative), 8);
        assert!(count(CaseGroup::Wire) >= 12);
        assert!(count(CaseGroup::BadInput) >= 12);
        for g in CaseGroup::ALL {
            assert_eq!(CaseGroup::from_name(g.name()), Some(g));
        }
    }
}
