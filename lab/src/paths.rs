//! Where things live: the workspace root and the git-ignored `.local/` folder.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the xtask crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn local() -> PathBuf {
    root().join(".local")
}

pub(crate) fn logs() -> PathBuf {
    local().join("logs")
}

/// The cargo profile of the local stack's function binaries (see `[profile.local]`).
pub(crate) const FUNCTION_PROFILE: &str = "local";

/// A function binary as the local stack runs it: `target/local/<function>`.
pub(crate) fn function_binary(function: &str) -> PathBuf {
    root().join("target").join(FUNCTION_PROFILE).join(function)
}

pub(crate) fn venv_bin(tool: &str) -> PathBuf {
    local().join("venv/bin").join(tool)
}

#[allow(dead_code)]
pub(crate) fn reports() -> PathBuf {
    root().join("reports")
}
