//! Reporters: each turns the event stream of a run into one output.

use std::path::Path;

pub mod html;
pub mod json;
pub mod junit;
pub mod terminal;

/// Writes `bytes` to `path` through a temporary file, so a reader never sees
/// half a report; creates the parent folder.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Clients and servers of a report, from the run's metadata or, without it,
/// in order of first appearance in the results.
pub fn axes(
    info: Option<&crate::model::RunInfo>,
    results: &[crate::model::CellResult],
) -> (Vec<String>, Vec<String>) {
    if let Some(i) = info {
        return (i.clients.clone(), i.servers.clone());
    }
    let mut clients: Vec<String> = Vec::new();
    let mut servers: Vec<String> = Vec::new();
    for r in results {
        if !clients.contains(&r.id.client) {
            clients.push(r.id.client.clone());
        }
        if !servers.contains(&r.id.server) {
            servers.push(r.id.server.clone());
        }
    }
    (clients, servers)
}
