//! Implementations are data: one TOML manifest per implementation.
//!
//! A manifest says how to build the implementation, how to start its server
//! and its client (argument templates), and which cases each side cannot do,
//! with the reason. The runner knows no language by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cases::{Case, CaseGroup};

/// Errors of loading and validating manifests. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no implementation manifest (*.toml) in {0}")]
    Empty(PathBuf),
    #[error("implementation {name:?} is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// One build step: a command run from `dir` (relative to the repository root).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    pub command: Vec<String>,
    #[serde(default)]
    pub dir: Option<String>,
}

/// How to start one side (server or client) and what it cannot do.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Argument template; see [`Template`] for the placeholders.
    pub command: Vec<String>,
    /// Extra arguments appended when the run uses TLS.
    #[serde(default)]
    pub tls: Vec<String>,
    /// Case name -> reason this side cannot do it.
    #[serde(default)]
    pub unsupported: BTreeMap<String, String>,
    /// Server: how the runner knows it is ready.
    #[serde(default)]
    pub ready: Ready,
    /// Server with TLS: the CA its clients must trust (a template; default
    /// `{root}/testdata/tls/ca.pem`, the project's test CA).
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// Server with TLS: the name its certificate is for (default
    /// `foo.test.google.fr`, as the test certificates).
    #[serde(default)]
    pub tls_name: Option<String>,
    /// Client: how it reports its cases.
    #[serde(default)]
    pub results: Results,
    /// Client: arguments added when it plays a soak case (templates with
    /// the `{soak_*}` placeholders).
    #[serde(default)]
    pub soak: Vec<String>,
    /// Extra arguments for mutual TLS, appended after `tls`: a server's
    /// make it require client certificates, a client's make it present one.
    #[serde(default)]
    pub mtls: Option<Vec<String>>,
    /// The case groups this side plays (default: greeter, interop, soak).
    /// A cell is planned only when both sides play its case's group.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Client: its command in load mode (`interop bench`), a template with
    /// `{host}`, `{port}` and the `{load*}` placeholders; `None`: it has no
    /// load mode.
    #[serde(default)]
    pub load: Option<Vec<String>>,
}

impl Role {
    /// The groups this side plays.
    pub fn groups(&self) -> Vec<CaseGroup> {
        match &self.groups {
            None => CaseGroup::DEFAULT.to_vec(),
            Some(names) => names
                .iter()
                .filter_map(|n| CaseGroup::from_name(n))
                .collect(),
        }
    }

    /// True when this side plays `case`.
    pub fn plays(&self, case: Case) -> bool {
        self.groups().contains(&case.group())
    }
}

/// How the runner knows a server is ready.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// It binds `--port 0` and prints `{"event":"listening","port":N}`.
    #[default]
    Line,
    /// It binds the port the runner chose (`{port}`) and accepts TCP connections
    /// there (a program that follows only the official interop flags).
    Tcp,
}

/// How a client reports its cases.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Results {
    /// Ready, result and done lines on stdout (implementations/CONTRACT.md).
    #[default]
    Lines,
    /// One case per process (`{cases}` is one name), passed when it exits 0,
    /// failed otherwise, with the tail of its output (the official interop
    /// clients).
    ExitStatus,
}

/// Container image of the implementation, for the docker backend.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerSpec {
    /// Image reference the Dockerfile is built as, e.g. `polyglot-grpc-interop/go:latest`.
    pub image: String,
    /// Dockerfile path relative to the repository root.
    pub dockerfile: String,
    /// Build context relative to the repository root.
    #[serde(default = "default_context")]
    pub context: String,
    /// Server command inside the image (template, as [`Role::command`]).
    pub server: Vec<String>,
    /// Client command inside the image (template, as [`Role::command`]).
    pub client: Vec<String>,
    /// Server TLS arguments inside the image, when they differ from `[server] tls`.
    #[serde(default)]
    pub server_tls: Option<Vec<String>>,
}

fn default_context() -> String {
    ".".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    library: String,
    version: String,
    #[serde(default)]
    build: Vec<BuildStep>,
    server: Option<Role>,
    client: Option<Role>,
    docker: Option<DockerSpec>,
}

/// A validated implementation manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Implementation {
    pub name: String,
    pub library: String,
    pub version: String,
    pub build: Vec<BuildStep>,
    pub server: Option<Role>,
    pub client: Option<Role>,
    pub docker: Option<DockerSpec>,
    /// The file it was loaded from.
    pub source: PathBuf,
}

impl Implementation {
    /// Parses and validates one manifest's text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(format!(
                "name {:?} must be non-empty and use only letters, digits, '-', '_' or '.'",
                raw.name
            )));
        }
        if raw.server.is_none() && raw.client.is_none() {
            return Err(invalid("needs a [server] or a [client] table".to_string()));
        }
        for (i, step) in raw.build.iter().enumerate() {
            if step.command.is_empty() {
                return Err(invalid(format!(
                    "build step {} has an empty command",
                    i + 1
                )));
            }
        }
        for (side, role, required) in [
            ("server", &raw.server, &["{port}"][..]),
            ("client", &raw.client, &["{port}", "{host}", "{cases}"][..]),
        ] {
            let Some(role) = role else { continue };
            check_template(&role.command, required)
                .map_err(|m| invalid(format!("[{side}] command: {m}")))?;
            for case in role.unsupported.keys() {
                if case.parse::<Case>().is_err() {
                    return Err(invalid(format!(
                        "[{side}.unsupported] names unknown case {case:?}"
                    )));
                }
            }
            for name in role.groups.iter().flatten() {
                if CaseGroup::from_name(name).is_none() {
                    return Err(invalid(format!(
                        "[{side}] groups: unknown group {name:?} (known: {})",
                        CaseGroup::ALL.map(CaseGroup::name).join(", ")
                    )));
                }
            }
            for (case, reason) in &role.unsupported {
                if reason.trim().is_empty() {
                    return Err(invalid(format!(
                        "[{side}.unsupported] {case}: the reason is empty"
                    )));
                }
            }
            let misplaced = match side {
                "server"
                    if role.results != Results::Lines
                        || !role.soak.is_empty()
                        || role.load.is_some() =>
                {
                    Some("results, soak and load are client fields")
                }
                "client"
                    if role.ready != Ready::Line
                        || role.tls_ca.is_some()
                        || role.tls_name.is_some() =>
                {
                    Some("ready, tls_ca and tls_name are server fields")
                }
                _ => None,
            };
            if let Some(what) = misplaced {
                return Err(invalid(format!("[{side}]: {what}")));
            }
            if let Some(load) = &role.load {
                check_template(load, &["{host}", "{port}", "{load}"])
                    .map_err(|m| invalid(format!("[{side}] load: {m}")))?;
            }
            for template in role
                .tls
                .iter()
                .chain(&role.soak)
                .chain(&role.tls_ca)
                .chain(role.mtls.iter().flatten())
            {
                check_template(std::slice::from_ref(template), &[])
                    .map_err(|m| invalid(format!("[{side}]: {m}")))?;
            }
        }
        if let Some(docker) = &raw.docker {
            check_template(&docker.server, &["{port}"])
                .map_err(|m| invalid(format!("[docker] server: {m}")))?;
            check_template(&docker.client, &["{port}", "{host}", "{cases}"])
                .map_err(|m| invalid(format!("[docker] client: {m}")))?;
        }
        Ok(Implementation {
            name: raw.name,
            library: raw.library,
            version: raw.version,
            build: raw.build,
            server: raw.server,
            client: raw.client,
            docker: raw.docker,
            source: path.to_path_buf(),
        })
    }

    /// Loads one manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Why this implementation's server cannot serve `case`, if it cannot.
    pub fn server_unsupported(&self, case: Case) -> Option<&str> {
        self.server
            .as_ref()?
            .unsupported
            .get(case.name())
            .map(String::as_str)
    }

    /// Why this implementation's client cannot run `case`, if it cannot.
    pub fn client_unsupported(&self, case: Case) -> Option<&str> {
        self.client
            .as_ref()?
            .unsupported
            .get(case.name())
            .map(String::as_str)
    }

    /// "library version", e.g. "grpc-go 1.85.0".
    pub fn library_version(&self) -> String {
        format!("{} {}", self.library, self.version)
    }
}

fn check_template(command: &[String], required: &[&str]) -> Result<(), String> {
    if command.is_empty() {
        return Err("is empty".to_string());
    }
    let joined = command.join(" ");
    for placeholder in required {
        if !joined.contains(placeholder) {
            return Err(format!("must contain {placeholder}"));
        }
    }
    for arg in command {
        let mut rest = arg.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {arg:?}"))?;
            let name = &rest[start + 1..start + end];
            if !Template::KNOWN.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} in {arg:?} (known: {})",
                    Template::KNOWN.join(", ")
                ));
            }
            rest = &rest[start + end + 1..];
        }
    }
    Ok(())
}

/// Values substituted into command templates.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// `{root}`: the repository root.
    pub root: String,
    /// `{host}`: the server's host as the client sees it.
    pub host: String,
    /// `{port}`: the server's port (`0` when starting a server natively).
    pub port: String,
    /// `{cases}`: comma-separated case names.
    pub cases: String,
    /// `{ca}`: the CA the server's certificate chains to (TLS).
    pub ca: String,
    /// `{tls_name}`: the name the server's certificate is for (TLS).
    pub tls_name: String,
    /// `{soak_iterations}` and the other soak settings.
    pub soak: Soak,
    /// `{load}` and the other load settings (`interop bench`).
    pub load: LoadArgs,
}

/// The values of the `{load*}` placeholders: the flags of a client's load
/// mode (implementations/CONTRACT.md, "Load mode"), which its load line
/// echoes under the same names without `load_`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LoadArgs {
    /// `{load}`: `unary` or `ping_pong`.
    pub load: String,
    pub concurrency: u32,
    pub connections: u32,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    pub payload_bytes: u32,
}

impl LoadArgs {
    /// Each setting by its name in the load line, as text.
    pub fn fields(&self) -> [(&'static str, String); 6] {
        [
            ("load", self.load.clone()),
            ("concurrency", self.concurrency.to_string()),
            ("connections", self.connections.to_string()),
            ("warmup_ms", self.warmup_ms.to_string()),
            ("duration_ms", self.duration_ms.to_string()),
            ("payload_bytes", self.payload_bytes.to_string()),
        ]
    }
}

/// The settings of the soak cases, passed to clients with the official flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soak {
    pub iterations: u32,
    pub max_failures: u32,
    pub per_iteration_max_acceptable_latency_ms: u32,
    pub overall_timeout_seconds: u32,
    pub min_time_ms_between_rpcs: u32,
    pub num_threads: u32,
}

impl Default for Soak {
    /// Few iterations and generous limits: the default matrix stays fast and
    /// steady on a loaded machine; a real soak chooses with the runner's flags.
    fn default() -> Self {
        Soak {
            iterations: 10,
            max_failures: 0,
            per_iteration_max_acceptable_latency_ms: 5000,
            overall_timeout_seconds: 30,
            min_time_ms_between_rpcs: 0,
            num_threads: 1,
        }
    }
}

impl Template {
    const KNOWN: [&'static str; 18] = [
        "root",
        "host",
        "port",
        "cases",
        "ca",
        "tls_name",
        "soak_iterations",
        "soak_max_failures",
        "soak_per_iteration_max_acceptable_latency_ms",
        "soak_overall_timeout_seconds",
        "soak_min_time_ms_between_rpcs",
        "soak_num_threads",
        "load",
        "load_concurrency",
        "load_connections",
        "load_warmup_ms",
        "load_duration_ms",
        "load_payload_bytes",
    ];

    /// Substitutes every placeholder of every argument.
    pub fn expand(&self, args: &[String]) -> Vec<String> {
        let s = self.soak;
        let l = &self.load;
        let values: [(&str, String); 18] = [
            ("{root}", self.root.clone()),
            ("{host}", self.host.clone()),
            ("{port}", self.port.clone()),
            ("{cases}", self.cases.clone()),
            ("{ca}", self.ca.clone()),
            ("{tls_name}", self.tls_name.clone()),
            ("{soak_iterations}", s.iterations.to_string()),
            ("{soak_max_failures}", s.max_failures.to_string()),
            (
                "{soak_per_iteration_max_acceptable_latency_ms}",
                s.per_iteration_max_acceptable_latency_ms.to_string(),
            ),
            (
                "{soak_overall_timeout_seconds}",
                s.overall_timeout_seconds.to_string(),
            ),
            (
                "{soak_min_time_ms_between_rpcs}",
                s.min_time_ms_between_rpcs.to_string(),
            ),
            ("{soak_num_threads}", s.num_threads.to_string()),
            ("{load_concurrency}", l.concurrency.to_string()),
            ("{load_connections}", l.connections.to_string()),
            ("{load_warmup_ms}", l.warmup_ms.to_string()),
            ("{load_duration_ms}", l.duration_ms.to_string()),
            ("{load_payload_bytes}", l.payload_bytes.to_string()),
            ("{load}", l.load.clone()),
        ];
        args.iter()
            .map(|arg| {
                values
                    .iter()
                    .fold(arg.clone(), |arg, (key, value)| arg.replace(key, value))
            })
            .collect()
    }
}

/// The test CA and certificate name of a server that names none.
pub const DEFAULT_TLS_CA: &str = "{root}/testdata/tls/ca.pem";
/// The name the project's test server certificate is for.
pub const DEFAULT_TLS_NAME: &str = "foo.test.google.fr";

/// Loads every `*.toml` of `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Implementation>, ManifestError> {
    let read = |source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ManifestError::Empty(dir.to_path_buf()));
    }
    let mut impls: Vec<Implementation> = Vec::new();
    for path in paths {
        let imp = Implementation::load(&path)?;
        if let Some(first) = impls.iter().find(|i| i.name == imp.name) {
            return Err(ManifestError::Duplicate {
                name: imp.name.clone(),
                first: first.source.clone(),
                second: path,
            });
        }
        impls.push(imp);
    }
    Ok(impls)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "go"
library = "grpc-go"
version = "1.85.0"

[[build]]
dir = "go"
command = ["go", "build", "./..."]

[server]
command = ["{root}/bin/server", "--port", "{port}"]
tls = ["--use_tls"]

[server.unsupported]
client_compressed_unary = "cannot see compression"

[client]
command = ["{root}/bin/client", "--server_host={host}", "--server_port={port}", "--test_case={cases}"]
"#;

    #[test]
    fn parses_a_good_manifest() {
        let imp = Implementation::parse(GOOD, Path::new("go.toml")).unwrap();
        assert_eq!(imp.name, "go");
        assert_eq!(imp.library_version(), "grpc-go 1.85.0");
        assert_eq!(imp.build[0].dir.as_deref(), Some("go"));
        assert_eq!(
            imp.server_unsupported(Case::ClientCompressedUnary),
            Some("cannot see compression")
        );
        assert_eq!(imp.server_unsupported(Case::LargeUnary), None);
        assert_eq!(imp.client_unsupported(Case::ClientCompressedUnary), None);
    }

    fn error_of(text: &str) -> String {
        Implementation::parse(text, Path::new("impl/x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rejects_unknown_cases_placeholders_and_fields_naming_the_file() {
        let err = error_of(&GOOD.replace("client_compressed_unary", "client_compresed_unary"));
        assert!(
            err.starts_with("impl/x.toml: ") && err.contains("client_compresed_unary"),
            "{err}"
        );
        let err = error_of(&GOOD.replace("{root}/bin/server", "{rot}/bin/server"));
        assert!(err.contains("unknown placeholder {rot}"), "{err}");
        let err = error_of(&GOOD.replace("--test_case={cases}", "--test_case=all"));
        assert!(err.contains("must contain {cases}"), "{err}");
        let err = error_of(&GOOD.replace("tls = [", "tsl = ["));
        assert!(err.contains("tsl"), "{err}");
        let err = error_of(&GOOD.replace("\"cannot see compression\"", "\" \""));
        assert!(err.contains("reason is empty"), "{err}");
        let err = error_of(&GOOD.replace("name = \"go\"", "name = \"go lang\""));
        assert!(err.contains("\"go lang\""), "{err}");
    }

    #[test]
    fn template_expands_every_placeholder() {
        let t = Template {
            root: "/r".into(),
            host: "h".into(),
            port: "7".into(),
            cases: "a,b".into(),
            ..Template::default()
        };
        let out = t.expand(&[
            "{root}/c".into(),
            "--x={host}:{port}".into(),
            "{cases}".into(),
        ]);
        assert_eq!(out, vec!["/r/c", "--x=h:7", "a,b"]);
    }

    #[test]
    fn load_dir_rejects_duplicates_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load_dir(dir.path()), Err(ManifestError::Empty(_))));
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.toml"), GOOD).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("defined twice"), "{err}");
        std::fs::remove_file(dir.path().join("b.toml")).unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn the_shipped_manifests_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("implementations");
        let impls = load_dir(&dir).unwrap();
        assert!(impls.len() >= 3, "{impls:?}");
    }
}
