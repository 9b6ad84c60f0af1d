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
}

impl CaseGroup {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CaseGroup::Greeter => "greeter",
            CaseGroup::Interop => "interop",
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
            _ => CaseGroup::Interop,
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
        assert_eq!(Case::all().len(), 22);
        assert_eq!(Case::LargeUnary.name(), "large_unary");
        assert_eq!(Case::GreeterBidiStreaming.name(), "greeter_bidi_streaming");
    }

    #[test]
    fn parse_list_accepts_all_lists_and_rejects_unknown() {
        assert_eq!(Case::parse_list("all").unwrap().len(), 22);
        assert_eq!(
            Case::parse_list("ping_pong, empty_unary,ping_pong").unwrap(),
            vec![Case::PingPong, Case::EmptyUnary]
        );
        let err = Case::parse_list("large_unary,larg_unary").unwrap_err();
        assert!(err.contains("larg_unary"), "{err}");
        assert!(Case::parse_list(" , ").is_err());
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
