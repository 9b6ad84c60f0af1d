//! Reporters: each turns the event stream of a run into one output.

use std::path::Path;

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
