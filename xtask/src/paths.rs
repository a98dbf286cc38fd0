//! Where things live: the workspace root and the git-ignored `.local/` folder.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the xtask crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn local() -> PathBuf {
    root().join(".local")
}

pub fn logs() -> PathBuf {
    local().join("logs")
}

pub fn venv_bin(tool: &str) -> PathBuf {
    local().join("venv/bin").join(tool)
}

#[allow(dead_code)]
pub fn reports() -> PathBuf {
    root().join("reports")
}
