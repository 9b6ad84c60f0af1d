//! The two loads of load mode (implementations/CONTRACT.md, "Load mode"):
//! what the Rust client plays and what `interop bench` asks for.

use serde::{Deserialize, Serialize};

/// A load: how each worker keeps the server busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// `UnaryCall`, one call in flight per worker.
    Unary,
    /// Round trips on one `FullDuplexCall` stream per worker.
    PingPong,
}

impl Load {
    pub const ALL: [Load; 2] = [Load::Unary, Load::PingPong];

    /// `unary` or `ping_pong`, as `--load` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Load::Unary => "unary",
            Load::PingPong => "ping_pong",
        }
    }

    /// What one unit of its throughput is.
    pub fn unit(self) -> &'static str {
        match self {
            Load::Unary => "calls/s",
            Load::PingPong => "round trips/s",
        }
    }

    /// The load named `name`; an unknown name is an error naming the loads.
    pub fn parse(name: &str) -> Result<Load, String> {
        Load::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| format!("unknown load {name:?}: the loads are unary and ping_pong"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for load in Load::ALL {
            assert_eq!(Load::parse(load.name()), Ok(load));
        }
        assert_eq!(
            Load::parse("stream"),
            Err("unknown load \"stream\": the loads are unary and ping_pong".to_string())
        );
    }
}
