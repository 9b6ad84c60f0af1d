//! Which cells a run plays: filters, known failures, the plan and sharding.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::cases::Case;
use crate::manifest::Implementation;
use crate::model::{Accepts, CellId, KnownFailure};

/// Errors of selecting cells. They name what did not match or where.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("bad pattern {pattern:?} in --{flag}: {message}")]
    BadPattern {
        flag: &'static str,
        pattern: String,
        message: String,
    },
    #[error("--{flag} {pattern:?} matches nothing (choose from: {choices})")]
    NoMatch {
        flag: &'static str,
        pattern: String,
        choices: String,
    },
    #[error(
        "the selection has no cell: no selected client and server both play a selected case's group (see `interop list`)"
    )]
    NoCell,
    #[error("bad --shard {0:?}: want i/n with 1 <= i <= n, e.g. 2/4")]
    BadShard(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    KnownFailures { path: PathBuf, message: String },
}

/// A comma-separated list of globs given to one flag.
#[derive(Debug, Clone)]
pub struct Filter {
    flag: &'static str,
    globs: Vec<(String, GlobMatcher)>,
}

impl Filter {
    /// Parses `a,b*,c`; `None` or an empty text selects everything.
    pub fn parse(flag: &'static str, text: Option<&str>) -> Result<Self, SelectError> {
        let mut globs = Vec::new();
        for pattern in text
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let glob = Glob::new(pattern).map_err(|e| SelectError::BadPattern {
                flag,
                pattern: pattern.to_string(),
                message: e.kind().to_string(),
            })?;
            globs.push((pattern.to_string(), glob.compile_matcher()));
        }
        Ok(Filter { flag, globs })
    }

    /// Keeps the names matched by any glob; every glob must match something.
    pub fn select<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<Vec<&'a str>, SelectError> {
        if self.globs.is_empty() {
            return Ok(names.into_iter().collect());
        }
        for (pattern, matcher) in &self.globs {
            if !names.clone().into_iter().any(|n| matcher.is_match(n)) {
                return Err(SelectError::NoMatch {
                    flag: self.flag,
                    pattern: pattern.clone(),
                    choices: names.into_iter().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(names
            .into_iter()
            .filter(|n| self.globs.iter().any(|(_, m)| m.is_match(n)))
            .collect())
    }
}

/// `--shard i/n`: this run plays every n-th cell, starting with the i-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = SelectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectError::BadShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One entry of the known-failures file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnownFailure {
    client: String,
    server: String,
    case: String,
    reason: String,
    /// The library and version that behaves so, e.g. `tonic 0.14.9`.
    #[serde(default)]
    library: Option<String>,
    /// The outcome the entry absorbs: `failed` (the default), `timed_out`,
    /// `setup_error`, or `race` (passed and failed both accepted).
    #[serde(default)]
    outcome: Option<Accepts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnownFailures {
    #[serde(default)]
    failure: Vec<RawKnownFailure>,
}

/// Cells that are expected to fail, each with a reason and the outcome it
/// absorbs. A listed cell that passes is reported as an unexpected pass and
/// fails the run (except a race entry); one that ends with another outcome
/// than the entry names counts as not passed.
#[derive(Debug, Clone, Default)]
pub struct KnownFailures {
    entries: Vec<(GlobMatcher, GlobMatcher, GlobMatcher, KnownFailure)>,
}

impl KnownFailures {
    /// Parses the file's text. Every entry needs a reason, and its case
    /// pattern must match at least one case.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SelectError> {
        let err = |message: String| SelectError::KnownFailures {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawKnownFailures = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut entries = Vec::new();
        for (i, f) in raw.failure.into_iter().enumerate() {
            let n = i + 1;
            if f.reason.trim().is_empty() {
                return Err(err(format!("failure {n}: the reason is empty")));
            }
            let glob = |field: &str, p: &str| {
                Glob::new(p).map(|g| g.compile_matcher()).map_err(|e| {
                    err(format!(
                        "failure {n}: bad {field} pattern {p:?}: {}",
                        e.kind()
                    ))
                })
            };
            let case = glob("case", &f.case)?;
            if !Case::all().iter().any(|c| case.is_match(c.name())) {
                return Err(err(format!(
                    "failure {n}: case pattern {:?} matches no case",
                    f.case
                )));
            }
            entries.push((
                glob("client", &f.client)?,
                glob("server", &f.server)?,
                case,
                KnownFailure {
                    reason: f.reason,
                    library: f.library,
                    accepts: f.outcome.unwrap_or(Accepts::Failed),
                },
            ));
        }
        Ok(KnownFailures { entries })
    }

    /// Loads the file; a missing file means no known failures.
    pub fn load(path: &Path) -> Result<Self, SelectError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SelectError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The entry of `cell`, if it is listed (the first that matches).
    pub fn get(&self, cell: &CellId) -> Option<&KnownFailure> {
        self.entries
            .iter()
            .find(|(c, s, k, _)| {
                c.is_match(&cell.client) && s.is_match(&cell.server) && k.is_match(cell.case.name())
            })
            .map(|(_, _, _, entry)| entry)
    }
}

/// What to run, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub clients: Option<String>,
    pub servers: Option<String>,
    pub cases: Option<String>,
    pub shard: Option<Shard>,
    /// Play the slow cases ([`Case::is_slow`]) also when `cases` does not
    /// name them.
    pub slow: bool,
}

/// A planned cell, with what the manifests declare about it. Every cell is
/// played, also a declared unsupported one: it must then fail, or the client
/// must report that it cannot attempt the case, with its manifest's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCell {
    pub id: CellId,
    /// Why the client's manifest says the client cannot attempt the case.
    pub client_unsupported: Option<String>,
    /// Why the server's manifest says the server cannot serve it.
    pub server_unsupported: Option<String>,
}

impl PlannedCell {
    /// The declared reason as reports show it, the client's first:
    /// `client python: ...` or `server rust: ...`.
    pub fn unsupported(&self) -> Option<String> {
        match (&self.client_unsupported, &self.server_unsupported) {
            (Some(c), _) => Some(format!("client {}: {c}", self.id.client)),
            (None, Some(s)) => Some(format!("server {}: {s}", self.id.server)),
            (None, None) => None,
        }
    }
}

/// The cells of a run, in canonical order (client, server, case catalogue).
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: Vec<String>,
    pub servers: Vec<String>,
    pub cases: Vec<Case>,
    pub cells: Vec<PlannedCell>,
}

impl Plan {
    /// Keeps the cells `keep` accepts, and only the clients, servers and
    /// cases those still have.
    pub fn retain(&mut self, mut keep: impl FnMut(&PlannedCell) -> bool) {
        self.cells.retain(|c| keep(c));
        let cells = &self.cells;
        self.clients
            .retain(|n| cells.iter().any(|c| &c.id.client == n));
        self.servers
            .retain(|n| cells.iter().any(|c| &c.id.server == n));
        self.cases.retain(|k| cells.iter().any(|c| c.id.case == *k));
    }

    /// Builds the plan from the manifests and the selection.
    pub fn new(impls: &[Implementation], sel: &Selection) -> Result<Plan, SelectError> {
        let client_names: Vec<&str> = impls
            .iter()
            .filter(|i| i.client.is_some())
            .map(|i| i.name.as_str())
            .collect();
        let server_names: Vec<&str> = impls
            .iter()
            .filter(|i| i.server.is_some())
            .map(|i| i.name.as_str())
            .collect();
        let case_names: Vec<&str> = Case::all().into_iter().map(Case::name).collect();
        let clients = Filter::parse("client", sel.clients.as_deref())?
            .select(client_names.iter().copied())?;
        let servers = Filter::parse("server", sel.servers.as_deref())?
            .select(server_names.iter().copied())?;
        let cases: Vec<Case> = Filter::parse("case", sel.cases.as_deref())?
            .select(case_names.iter().copied())?
            .into_iter()
            .filter_map(|n| n.parse::<Case>().ok())
            // Without --case, the slow cases wait for --slow.
            .filter(|c| sel.slow || sel.cases.is_some() || !c.is_slow())
            .collect();
        let by_name = |n: &str| impls.iter().find(|i| i.name == n);
        let plays = |n: &str, case: Case, client: bool| {
            by_name(n)
                .and_then(|i| {
                    if client {
                        i.client.as_ref()
                    } else {
                        i.server.as_ref()
                    }
                })
                .is_some_and(|role| role.plays(case))
        };
        let mut cells = Vec::new();
        for client in &clients {
            for server in &servers {
                for &case in &cases {
                    if !plays(client, case, true) || !plays(server, case, false) {
                        continue;
                    }
                    cells.push(PlannedCell {
                        id: CellId {
                            client: client.to_string(),
                            server: server.to_string(),
                            case,
                        },
                        client_unsupported: by_name(client)
                            .and_then(|i| i.client_unsupported(case))
                            .map(String::from),
                        server_unsupported: by_name(server)
                            .and_then(|i| i.server_unsupported(case))
                            .map(String::from),
                    });
                }
            }
        }
        if cells.is_empty() {
            return Err(SelectError::NoCell);
        }
        // Only what some cell plays is part of the run (a server-only
        // implementation has no client column, a group no other side plays
        // has no cells).
        let clients: Vec<&str> = clients
            .into_iter()
            .filter(|n| cells.iter().any(|c| c.id.client == *n))
            .collect();
        let servers: Vec<&str> = servers
            .into_iter()
            .filter(|n| cells.iter().any(|c| c.id.server == *n))
            .collect();
        let cases: Vec<Case> = cases
            .into_iter()
            .filter(|k| cells.iter().any(|c| c.id.case == *k))
            .collect();
        if let Some(shard) = sel.shard {
            cells = cells
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % shard.count == shard.index - 1)
                .map(|(_, c)| c)
                .collect();
        }
        Ok(Plan {
            clients: clients.into_iter().map(String::from).collect(),
            servers: servers.into_iter().map(String::from).collect(),
            cases,
            cells,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impls() -> Vec<Implementation> {
        let make = |name: &str, server_unsupported: &str, client_unsupported: &str| {
            let text = format!(
                "name = \"{name}\"\nlibrary = \"l\"\nversion = \"1\"\n\
                 [server]\ncommand = [\"s\", \"{{port}}\"]\n[server.unsupported]\n{server_unsupported}\n\
                 [client]\ncommand = [\"c\", \"{{host}}\", \"{{port}}\", \"{{cases}}\"]\n[client.unsupported]\n{client_unsupported}\n"
            );
            Implementation::parse(&text, Path::new("t.toml")).unwrap()
        };
        vec![
            make(
                "go",
                "",
                "client_compressed_streaming = \"no per-message control\"",
            ),
            make("python", "client_compressed_unary = \"cannot observe\"", ""),
            make("rust", "", ""),
        ]
    }

    #[test]
    fn full_plan_is_the_cross_product_with_unsupported_marked() {
        let plan = Plan::new(&impls(), &Selection::default()).unwrap();
        assert_eq!(plan.cells.len(), 3 * 3 * Case::default_cases().len());
        let find = |c: &str, s: &str, case: Case| {
            plan.cells
                .iter()
                .find(|p| p.id.client == c && p.id.server == s && p.id.case == case)
                .unwrap()
                .unsupported()
        };
        assert_eq!(
            find("go", "rust", Case::ClientCompressedStreaming).as_deref(),
            Some("client go: no per-message control")
        );
        assert_eq!(
            find("rust", "python", Case::ClientCompressedUnary).as_deref(),
            Some("server python: cannot observe")
        );
        assert_eq!(find("rust", "rust", Case::ClientCompressedUnary), None);
    }

    #[test]
    fn filters_use_globs_and_reject_patterns_matching_nothing() {
        let sel = Selection {
            clients: Some("go,py*".into()),
            servers: Some("rust".into()),
            cases: Some("greeter_*,large_unary".into()),
            shard: None,
            slow: false,
        };
        let plan = Plan::new(&impls(), &sel).unwrap();
        assert_eq!(plan.clients, ["go", "python"]);
        assert_eq!(plan.servers, ["rust"]);
        assert_eq!(plan.cases.len(), 5);
        assert_eq!(plan.cells.len(), 10);

        let sel = Selection {
            cases: Some("large_unary,larg_unray".into()),
            ..Default::default()
        };
        let err = Plan::new(&impls(), &sel).unwrap_err().to_string();
        assert!(
            err.contains("--case \"larg_unray\" matches nothing"),
            "{err}"
        );
        let sel = Selection {
            clients: Some("java".into()),
            ..Default::default()
        };
        let err = Plan::new(&impls(), &sel).unwrap_err().to_string();
        assert!(err.contains("choose from: go, python, rust"), "{err}");
    }

    #[test]
    fn shards_partition_the_matrix() {
        let full = Plan::new(&impls(), &Selection::default()).unwrap();
        for n in [1, 2, 5, 7] {
            let mut union: Vec<CellId> = Vec::new();
            for i in 1..=n {
                let sel = Selection {
                    shard: Some(format!("{i}/{n}").parse().unwrap()),
                    ..Default::default()
                };
                let part = Plan::new(&impls(), &sel).unwrap();
                assert!(part.cells.len() >= full.cells.len() / n);
                union.extend(part.cells.into_iter().map(|c| c.id));
            }
            union.sort();
            let before = union.len();
            union.dedup();
            assert_eq!(before, union.len(), "overlap with n={n}");
            let mut all: Vec<CellId> = full.cells.iter().map(|c| c.id.clone()).collect();
            all.sort();
            assert_eq!(union, all, "union with n={n}");
        }
        for bad in ["0/3", "4/3", "1/0", "x", "1-3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn known_failures_match_by_glob_and_need_reasons() {
        let path = Path::new("known-failures.toml");
        let kf = KnownFailures::parse(
            "[[failure]]\nclient = \"py*\"\nserver = \"*\"\ncase = \"ping_pong\"\nreason = \"issue 9\"\n",
            path,
        )
        .unwrap();
        let id = |client: &str, case| CellId {
            client: client.into(),
            server: "go".into(),
            case,
        };
        let entry = kf.get(&id("python", Case::PingPong)).unwrap();
        assert_eq!(
            (entry.reason.as_str(), entry.accepts),
            ("issue 9", Accepts::Failed)
        );
        assert!(kf.get(&id("go", Case::PingPong)).is_none());
        assert!(kf.get(&id("python", Case::EmptyUnary)).is_none());
        let kf = KnownFailures::parse(
            "[[failure]]\nclient = \"*\"\nserver = \"go\"\ncase = \"ping_pong\"\nreason = \"r\"\n\
             library = \"grpcio 1.85.1\"\noutcome = \"race\"\n",
            path,
        )
        .unwrap();
        let entry = kf.get(&id("rust", Case::PingPong)).unwrap();
        assert_eq!(entry.accepts, Accepts::Race);
        assert_eq!(entry.describe(), "grpcio 1.85.1: r");
        let err = KnownFailures::parse(
            "[[failure]]\nclient = \"*\"\nserver = \"*\"\ncase = \"ping_pong\"\nreason = \"x\"\noutcome = \"flaky\"\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("flaky"), "{err}");
        let err = KnownFailures::parse(
            "[[failure]]\nclient = \"*\"\nserver = \"*\"\ncase = \"pingpong\"\nreason = \"x\"\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("matches no case"), "{err}");
        let err = KnownFailures::parse(
            "[[failure]]\nclient = \"*\"\nserver = \"*\"\ncase = \"ping_pong\"\nreason = \"\"\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("reason is empty"), "{err}");
    }
}
