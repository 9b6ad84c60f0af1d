//! The docker backend: each implementation's image, built and started with
//! testcontainers on a private network of the run.
//!
//! Everything the run creates carries labels naming the run and the runner's
//! process, and is removed when the run ends, whichever way it ends. A runner
//! killed with SIGKILL cannot clean up; the next run removes what such a
//! runner left (its process is gone) before it starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testcontainers::bollard;
use testcontainers::core::WaitFor;
use testcontainers::core::build::build_options::BuildImageOptions;
use testcontainers::runners::{AsyncBuilder, AsyncRunner};
use testcontainers::{ContainerAsync, GenericBuildableImage, GenericImage, ImageExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Backend, BackendError, BoxFuture, ClientHandle, Exit, Next, ServerHandle, Settings, Target,
    Transport, client_argv, transport_args,
};
use crate::cases::Case;
use crate::manifest::{DEFAULT_TLS_NAME, DockerSpec, Implementation, Ready, Template};
use crate::process::LogTail;
use crate::protocol::is_protocol_line;

/// Label on everything the docker backend creates.
pub const LABEL: &str = "com.polyglot-grpc-interop.runner";
/// Label with the run's id.
pub const RUN_LABEL: &str = "com.polyglot-grpc-interop.run";
/// Label with the runner's pid and host, to tell whether its runner is alive.
pub const OWNER_LABEL: &str = "com.polyglot-grpc-interop.owner";
/// Port servers listen on inside their containers.
pub const SERVER_PORT: u16 = 8080;
/// Name lookups from a client container retry after 1 s instead of 5: on a
/// busy machine Docker's embedded DNS server now and then drops a query, and
/// the resolver's default 5 s wait then lands in a case's timing (a soak
/// iteration's latency limit, for one). The lookup itself is not changed.
fn quick_dns_retries(host: &mut bollard::models::HostConfig) {
    host.dns_options = Some(vec!["timeout:1".to_string(), "attempts:5".to_string()]);
}

/// The project's test CA, inside every image.
pub const CLIENT_CA: &str = "/app/testdata/tls/ca.pem";

/// Names the base-image build arguments the Dockerfiles take. Values come
/// from the environment, else from `target/docker-base.env` (written by
/// `scripts/docker-base-images.sh` where no image registry can be reached).
const BASE_IMAGE_ARGS: [&str; 3] = ["RUST_IMAGE", "GO_IMAGE", "PYTHON_IMAGE"];

/// Errors of talking to Docker.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach a Docker engine ({0}); install and start one (Debian: apt-get install docker.io, then start dockerd) or set DOCKER_HOST"
    )]
    Unreachable(String),
    #[error("docker: {0}")]
    Api(String),
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn owner() -> String {
    format!("{}@{}", std::process::id(), hostname())
}

/// Whether the runner named by an owner label is gone (same host, dead pid).
fn owner_is_gone(label: &str) -> bool {
    let Some((pid, host)) = label.split_once('@') else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    // SAFETY: signal 0 only checks whether the process exists.
    host == hostname() && unsafe { libc::kill(pid, 0) } != 0
}

/// Runs implementations in containers.
pub struct Docker {
    root: PathBuf,
    settings: Settings,
    run_id: String,
    network: String,
    api: bollard::Docker,
    build_args: HashMap<String, String>,
    counter: AtomicU64,
}

impl Docker {
    /// Connects, removes what killed runners left behind, and creates the
    /// run's network.
    pub async fn connect(root: &Path, settings: Settings) -> Result<Docker, DockerError> {
        let api = bollard::Docker::connect_with_defaults()
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        api.ping()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let run_id = format!("{}-{millis}", std::process::id());
        let docker = Docker {
            root: root.to_path_buf(),
            settings,
            network: format!("polyglot-grpc-interop-{run_id}"),
            run_id,
            api,
            build_args: base_image_args(root),
            counter: AtomicU64::new(0),
        };
        docker.remove_leftovers().await?;
        let labels = docker.labels().into_iter().collect();
        docker
            .api
            .create_network(bollard::models::NetworkCreateRequest {
                name: docker.network.clone(),
                driver: Some("bridge".to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| DockerError::Api(format!("creating network {}: {e}", docker.network)))?;
        Ok(docker)
    }

    fn labels(&self) -> Vec<(String, String)> {
        vec![
            (LABEL.to_string(), "true".to_string()),
            (RUN_LABEL.to_string(), self.run_id.clone()),
            (OWNER_LABEL.to_string(), owner()),
        ]
    }

    /// Removes containers and networks of runners that no longer run.
    async fn remove_leftovers(&self) -> Result<(), DockerError> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
        let containers = self
            .api
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?;
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            if labels.get(OWNER_LABEL).is_some_and(|o| owner_is_gone(o))
                && let Some(id) = c.id
            {
                let _ = self.api.remove_container(&id, Some(force_remove())).await;
            }
        }
        let networks = self
            .api
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?;
        for n in networks {
            let labels = n.labels.unwrap_or_default();
            if labels.get(OWNER_LABEL).is_some_and(|o| owner_is_gone(o))
                && let Some(id) = n.id
            {
                let _ = self.api.remove_network(&id).await;
            }
        }
        Ok(())
    }

    /// Removes every container and the network of this run.
    async fn remove_run(&self) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{RUN_LABEL}={}", self.run_id)],
        )]);
        if let Ok(containers) = self
            .api
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            for c in containers {
                if let Some(id) = c.id {
                    let _ = self.api.remove_container(&id, Some(force_remove())).await;
                }
            }
        }
        let _ = self.api.remove_network(&self.network).await;
    }

    fn spec<'a>(&self, imp: &'a Implementation) -> Result<&'a DockerSpec, BackendError> {
        imp.docker.as_ref().ok_or_else(|| {
            BackendError::Config(format!(
                "{} has no [docker] section in {}",
                imp.name,
                imp.source.display()
            ))
        })
    }

    /// Waits until the container accepts TCP connections on [`SERVER_PORT`]
    /// at its address on the run's network (reachable from this host).
    async fn wait_for_accept(&self, id: &str, argv: &[String]) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.settings.ready_timeout;
        loop {
            let address = self
                .api
                .inspect_container(id, None)
                .await
                .ok()
                .and_then(|c| c.network_settings)
                .and_then(|n| n.networks)
                .and_then(|n| n.get(&self.network).cloned())
                .and_then(|n| n.ip_address)
                .filter(|ip| !ip.is_empty());
            if let Some(ip) = address {
                let connect = tokio::net::TcpStream::connect((ip.as_str(), SERVER_PORT));
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Start(format!(
                    "server ({}) accepted no connection on port {SERVER_PORT} within {:?}",
                    argv.join(" "),
                    self.settings.ready_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn container_name(&self, role: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("pgi-{}-{role}-{n}", self.run_id)
    }

    fn image(&self, spec: &DockerSpec) -> GenericImage {
        let (name, tag) = split_image(&spec.image);
        GenericImage::new(name, tag)
    }
}

fn force_remove() -> bollard::query_parameters::RemoveContainerOptions {
    bollard::query_parameters::RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    }
}

/// `repo/name:tag` → (`repo/name`, `tag`), `latest` when there is no tag.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Base-image build arguments from the environment or `target/docker-base.env`.
pub fn base_image_args(root: &Path) -> HashMap<String, String> {
    let mut args = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(root.join("target/docker-base.env")) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=')
                && BASE_IMAGE_ARGS.contains(&k.trim())
            {
                args.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    for key in BASE_IMAGE_ARGS {
        if let Ok(v) = std::env::var(key)
            && !v.is_empty()
        {
            args.insert(key.to_string(), v);
        }
    }
    args
}

/// Entries of the repository that go into a build context.
fn context_entries(root: &Path) -> Vec<PathBuf> {
    let skip = [".git", "target", "reports", ".github"];
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !skip.contains(&n))
    });
    entries.sort();
    entries
}

/// Streams a container log into lines: protocol lines to `tx`, the rest to `logs`.
fn pump(
    reader: std::pin::Pin<Box<dyn AsyncBufRead + Send>>,
    tx: Option<mpsc::UnboundedSender<String>>,
    logs: LogTail,
    echo: Option<String>,
) {
    tokio::spawn(async move {
        let mut lines = reader.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(name) = &echo {
                eprintln!("[{name}] {line}");
            }
            match &tx {
                Some(tx) if is_protocol_line(&line) => {
                    let _ = tx.send(line);
                }
                _ => logs.push_line(line),
            }
        }
    });
}

impl Backend for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn prepare<'a>(&'a self, imp: &'a Implementation) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let spec = self.spec(imp)?;
            let (name, tag) = split_image(&spec.image);
            let mut image = GenericBuildableImage::new(name, tag)
                .with_dockerfile(self.root.join(&spec.dockerfile));
            let context = self.root.join(&spec.context);
            for entry in context_entries(&context) {
                let target = entry
                    .strip_prefix(&context)
                    .unwrap_or(&entry)
                    .display()
                    .to_string();
                image = image.with_file(entry, target);
            }
            let options = BuildImageOptions::new().with_build_args(self.build_args.clone());
            let built =
                tokio::time::timeout(self.settings.build_timeout, image.build_image_with(options))
                    .await;
            match built {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(BackendError::Build(format!(
                    "building image {} from {} failed: {e:#}{}",
                    spec.image,
                    spec.dockerfile,
                    if self.build_args.is_empty() {
                        " (no base-image build args set: where no registry can be reached, run scripts/docker-base-images.sh first)"
                    } else {
                        ""
                    }
                ))),
                Err(_) => Err(BackendError::Build(format!(
                    "building image {} took longer than {:?}",
                    spec.image, self.settings.build_timeout
                ))),
            }
        })
    }

    fn start_server<'a>(
        &'a self,
        imp: &'a Implementation,
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ServerHandle>, BackendError>> {
        Box::pin(async move {
            let spec = self.spec(imp)?;
            let role = imp
                .server
                .as_ref()
                .ok_or_else(|| BackendError::Config(format!("{} has no server", imp.name)))?;
            let name = self.container_name(&format!("server-{}", imp.name));
            let template = Template {
                port: SERVER_PORT.to_string(),
                ..Template::default()
            };
            let mut argv = template.expand(&spec.server);
            argv.extend(
                transport_args(
                    role,
                    &template,
                    spec.server_tls.as_ref().unwrap_or(&role.tls),
                    transport,
                    "server",
                )
                .map_err(|e| BackendError::Config(format!("server {}: {e}", imp.name)))?,
            );
            // A server that announces readiness is waited for by its line; one
            // that only accepts connections, by connecting (below).
            let wait = match role.ready {
                Ready::Line => WaitFor::message_on_stdout("\"event\":\"listening\""),
                Ready::Tcp => WaitFor::Nothing,
            };
            let mut request = self
                .image(spec)
                .with_wait_for(wait)
                .with_cmd(argv.clone())
                .with_network(self.network.clone())
                .with_container_name(name.clone())
                .with_startup_timeout(self.settings.ready_timeout);
            for (k, v) in self.labels() {
                request = request.with_label(k, v);
            }
            let container = request.start().await.map_err(|e| {
                BackendError::Start(format!(
                    "server {} ({}) did not start in image {}: {e}",
                    imp.name,
                    argv.join(" "),
                    spec.image
                ))
            })?;
            if role.ready == Ready::Tcp {
                self.wait_for_accept(container.id(), &argv).await?;
            }
            let logs = LogTail::default();
            let echo = self
                .settings
                .verbose
                .then(|| format!("server {}", imp.name));
            pump(container.stderr(true), None, logs.clone(), echo.clone());
            let exited = Arc::new(Mutex::new(None));
            let stdout = container.stdout(true);
            let watcher_logs = logs.clone();
            let watcher_exited = exited.clone();
            let api = self.api.clone();
            let id = container.id().to_string();
            tokio::spawn(async move {
                // Following the log ends when the container stops.
                let mut lines = stdout.lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    watcher_logs.push_line(line);
                }
                let state = api
                    .inspect_container(&id, None)
                    .await
                    .ok()
                    .and_then(|c| c.state);
                let text = match state.and_then(|s| s.exit_code) {
                    Some(code) => format!("container exited with status {code}"),
                    None => "container stopped".to_string(),
                };
                *watcher_exited.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            });
            Ok(Box::new(DockerServer {
                container: Some(container),
                host: name,
                logs,
                exited,
            }) as Box<dyn ServerHandle>)
        })
    }

    fn start_client<'a>(
        &'a self,
        imp: &'a Implementation,
        server: &'a str,
        target: &'a Target,
        cases: &'a [Case],
        transport: Transport,
    ) -> BoxFuture<'a, Result<Box<dyn ClientHandle>, BackendError>> {
        Box::pin(async move {
            let spec = self.spec(imp)?;
            let role = imp
                .client
                .as_ref()
                .ok_or_else(|| BackendError::Config(format!("{} has no client", imp.name)))?;
            let template = Template {
                host: target.host.clone(),
                port: target.port.to_string(),
                cases: cases.iter().map(|c| c.name()).collect::<Vec<_>>().join(","),
                ca: target.ca.clone(),
                tls_name: target.tls_name.clone(),
                soak: self.settings.soak,
                ..Template::default()
            };
            let argv = client_argv(&spec.client, role, &template, transport, cases)
                .map_err(|e| BackendError::Config(format!("client {}: {e}", imp.name)))?;
            let name = self.container_name(&format!("client-{}-{server}", imp.name));
            let mut request = self
                .image(spec)
                .with_cmd(argv.clone())
                .with_network(self.network.clone())
                .with_container_name(name)
                .with_startup_timeout(self.settings.ready_timeout)
                .with_host_config_modifier(quick_dns_retries);
            for (k, v) in self.labels() {
                request = request.with_label(k, v);
            }
            let container = request.start().await.map_err(|e| {
                BackendError::Start(format!(
                    "client {} ({}) did not start: {e}",
                    imp.name,
                    argv.join(" ")
                ))
            })?;
            let logs = LogTail::default();
            let (tx, lines) = mpsc::unbounded_channel();
            let echo = self
                .settings
                .verbose
                .then(|| format!("client {}→{server}", imp.name));
            pump(container.stdout(true), Some(tx), logs.clone(), echo.clone());
            pump(container.stderr(true), None, logs.clone(), echo);
            Ok(Box::new(DockerClient {
                container: Some(container),
                lines,
                logs,
                api: self.api.clone(),
                grace: self.settings.stop_grace,
            }) as Box<dyn ClientHandle>)
        })
    }

    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.remove_run())
    }
}

struct DockerServer {
    container: Option<ContainerAsync<GenericImage>>,
    host: String,
    logs: LogTail,
    exited: Arc<Mutex<Option<String>>>,
}

impl ServerHandle for DockerServer {
    fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: SERVER_PORT,
            // Every image holds the project's test CA here; a server in a
            // container serves a certificate it signed (`[docker] server_tls`).
            ca: CLIENT_CA.to_string(),
            tls_name: DEFAULT_TLS_NAME.to_string(),
        }
    }

    fn exited(&mut self) -> Option<String> {
        self.exited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn logs(&self, lines: usize) -> Vec<String> {
        self.logs.last(lines)
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(c) = self.container.take() {
                // Servers stop gracefully within about two seconds.
                let _ = c.stop_with_timeout(Some(3)).await;
                let _ = c.rm().await;
            }
        })
    }
}

struct DockerClient {
    container: Option<ContainerAsync<GenericImage>>,
    lines: mpsc::UnboundedReceiver<String>,
    logs: LogTail,
    api: bollard::Docker,
    grace: Duration,
}

impl DockerClient {
    async fn exit_code(&self) -> Option<i64> {
        let id = self.container.as_ref()?.id().to_string();
        let state = self.api.inspect_container(&id, None).await.ok()?.state?;
        if state.running == Some(true) {
            None
        } else {
            state.exit_code
        }
    }
}

impl ClientHandle for DockerClient {
    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Next> {
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => Next::Line(line),
                Ok(None) => Next::Eof,
                Err(_) => Next::Deadline,
            }
        })
    }

    fn wait(&mut self, deadline: Instant) -> BoxFuture<'_, Option<Exit>> {
        Box::pin(async move {
            loop {
                if let Some(code) = self.exit_code().await {
                    return Some(Exit::Code(code));
                }
                if Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Option<Exit>> {
        Box::pin(async move {
            let c = self.container.take()?;
            let grace = i32::try_from(self.grace.as_secs().max(1)).unwrap_or(2);
            let _ = c.stop_with_timeout(Some(grace)).await;
            let id = c.id().to_string();
            let code = self
                .api
                .inspect_container(&id, None)
                .await
                .ok()
                .and_then(|s| s.state)
                .and_then(|s| s.exit_code);
            let _ = c.rm().await;
            code.map(Exit::Code)
        })
    }

    fn logs(&self, lines: usize) -> Vec<String> {
        self.logs.last(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_name_and_tag() {
        assert_eq!(
            split_image("polyglot-grpc-interop/go:latest"),
            ("polyglot-grpc-interop/go", "latest")
        );
        assert_eq!(
            split_image("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(split_image("x"), ("x", "latest"));
    }

    #[test]
    fn owners_of_dead_processes_are_gone() {
        assert!(!owner_is_gone(&owner()), "this process is alive");
        assert!(owner_is_gone(&format!("{}@{}", i32::MAX, hostname())));
        assert!(!owner_is_gone(&format!("{}@another-host", i32::MAX)));
        assert!(!owner_is_gone("garbage"));
    }
}
