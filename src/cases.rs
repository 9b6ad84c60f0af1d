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
}

impl CaseGroup {
    /// Every group, in report order.
    pub const ALL: [CaseGroup; 3] = [CaseGroup::Greeter, CaseGroup::Interop, CaseGroup::Soak];

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CaseGroup::Greeter => "greeter",
            CaseGroup::Interop => "interop",
            CaseGroup::Soak => "soak",
        }
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
}

impl Case {
    /// Every case, in catalogue order.
    pub fn all() -> Vec<Case> {
        Case::iter().collect()
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
        }
    }

    /// Parses a `--test_case` value: one name, a comma list, or `all`.
    pub fn parse_list(text: &str) -> Result<Vec<Case>, String> {
        if text.trim() == "all" {
            return Ok(Case::all());
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
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
        assert_eq!(Case::all().len(), 24);
        assert_eq!(Case::LargeUnary.name(), "large_unary");
        assert_eq!(Case::GreeterBidiStreaming.name(), "greeter_bidi_streaming");
    }

    #[test]
    fn parse_list_accepts_all_lists_and_rejects_unknown() {
        assert_eq!(Case::parse_list("all").unwrap().len(), 24);
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
    }
}
