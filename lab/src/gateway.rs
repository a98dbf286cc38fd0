//! The local stack's gateway, `local-gateway` (the package in `gateway/`): cargo-lambda 1.9.2's
//! `watch` server (the crate cargo-lambda-watch) with our patch to it
//! (`ops/upstream/cargo-lambda-watch-1.9.2.patch`, written up in `ops/upstream/cargo-lambda.md`)
//! behind a main of our own. Stock 1.9.2 stops serving every function for good once one
//! function has 100 invocations queued; the patch queues without blocking, answers a full
//! queue with a 429 problem (`TOO_MANY_REQUESTS`, `Retry-After`), lets
//! `AWS_LAMBDA_MAX_CONCURRENCY` reach the function, base64-encodes bodies that are not UTF-8
//! and sends a real invocation deadline.
//!
//! Building only this server, not the whole cargo-lambda CLI, in the workspace's `target/` and
//! `local` profile, is what keeps a first run short: it shares every dependency the functions
//! have already built, and its own are the server's (ARCHITECTURE.md, "Which `cargo lambda
//! watch`", has the measurements). The crate's pristine source comes from the cargo registry;
//! the patched copy lives in `.local/gateway/`, where `gateway/Cargo.toml`'s `[patch]` points,
//! and is unpacked again whenever the patch changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::paths;
use crate::process::run;

/// The cargo-lambda release whose `watch` server we patch and serve.
pub(crate) const WATCH_VERSION: &str = "1.9.2";
const PATCH: &str = "ops/upstream/cargo-lambda-watch-1.9.2.patch";
/// The package and binary name (also the process name the resource sampler looks for).
pub(crate) const BINARY: &str = "local-gateway";

/// The patched crate, where `gateway/Cargo.toml`'s `[patch.crates-io]` expects it.
fn patched_source() -> PathBuf {
    paths::local()
        .join("gateway")
        .join(format!("cargo-lambda-watch-{WATCH_VERSION}"))
}

/// The file in the patched copy that names the patch it was made with.
const STAMP: &str = ".order-service-patch";

/// The built gateway: `target/local/local-gateway`.
pub(crate) fn binary() -> PathBuf {
    paths::root()
        .join("target")
        .join(paths::FUNCTION_PROFILE)
        .join(BINARY)
}

/// A patch's identity: the first 12 hex digits of its SHA-256.
fn key_of(patch: &[u8]) -> String {
    Sha256::digest(patch)
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Prepares the patched source and builds the gateway (cargo decides what is stale: nothing
/// after the first build, unless the patch or the gateway changed). Returns the binary.
pub(crate) fn ensure() -> Result<PathBuf> {
    prepare_source()?;
    eprintln!("Building the local gateway (gateway/, profile local) ...");
    run(Command::new("cargo")
        .args(["build", "--locked", "--profile", paths::FUNCTION_PROFILE])
        .arg("--manifest-path")
        .arg(paths::root().join("gateway/Cargo.toml"))
        .arg("--target-dir")
        .arg(paths::root().join("target"))
        .current_dir(paths::root()))
    .context("cannot build the local gateway")?;
    Ok(binary())
}

/// Unpacks the pristine crate from the cargo registry and applies the patch, unless the copy
/// in `.local/gateway/` was made with this very patch.
fn prepare_source() -> Result<()> {
    let patch_path = paths::root().join(PATCH);
    let patch = std::fs::read(&patch_path)
        .with_context(|| format!("cannot read {}", patch_path.display()))?;
    let key = key_of(&patch);
    let source = patched_source();
    if std::fs::read_to_string(source.join(STAMP)).is_ok_and(|stamp| stamp.trim() == key) {
        return Ok(());
    }
    let folder = source.parent().unwrap_or(&source).to_path_buf();
    std::fs::create_dir_all(&folder)?;
    let archive = crate_archive(&folder)?;
    if source.exists() {
        std::fs::remove_dir_all(&source)?;
    }
    run(Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&folder))?;
    run(Command::new("patch")
        .args(["--quiet", "--forward", "-p1", "-d"])
        .arg(&source)
        .arg("-i")
        .arg(&patch_path))
    .with_context(|| format!("cannot apply {PATCH} to cargo-lambda-watch {WATCH_VERSION}"))?;
    std::fs::write(source.join(STAMP), key)?;
    Ok(())
}

/// The registry's `.crate` archive of cargo-lambda-watch, fetched through cargo when this
/// machine's registry cache does not hold it yet.
fn crate_archive(folder: &Path) -> Result<PathBuf> {
    let file = format!("cargo-lambda-watch-{WATCH_VERSION}.crate");
    if let Some(archive) = find_crate_archive(&file)? {
        return Ok(archive);
    }
    // A throwaway package that depends on exactly that release: `cargo fetch` downloads it
    // (and the gateway's other dependencies, which the build needs next anyway).
    let fetcher = folder.join("fetch");
    std::fs::create_dir_all(fetcher.join("src"))?;
    std::fs::write(
        fetcher.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-cargo-lambda-watch\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\ncargo-lambda-watch = \"={WATCH_VERSION}\"\n"
        ),
    )?;
    std::fs::write(fetcher.join("src/lib.rs"), "")?;
    eprintln!("Fetching cargo-lambda-watch {WATCH_VERSION} from the registry ...");
    run(Command::new("cargo")
        .args(["fetch", "--manifest-path"])
        .arg(fetcher.join("Cargo.toml")))?;
    find_crate_archive(&file)?.with_context(|| format!("cargo fetch left no {file}"))
}

/// Where cargo keeps a downloaded `.crate` file: `$CARGO_HOME/registry/cache/<index>/`.
fn find_crate_archive(file: &str) -> Result<Option<PathBuf>> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let registries = cargo_home.join("registry/cache");
    let Ok(entries) = std::fs::read_dir(&registries) else {
        return Ok(None);
    };
    Ok(entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(file))
        .find(|candidate| candidate.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_patch_is_applied_again() {
        assert_eq!(key_of(b"one patch"), key_of(b"one patch"));
        assert_ne!(key_of(b"one patch"), key_of(b"one patch, changed"));
        assert_eq!(key_of(b"one patch").len(), 12);
    }

    #[test]
    fn the_manifest_patches_the_crate_where_the_xtask_puts_it() {
        let manifest = std::fs::read_to_string(paths::root().join("gateway/Cargo.toml")).unwrap();
        let relative = patched_source()
            .strip_prefix(paths::root())
            .unwrap()
            .display()
            .to_string();
        assert!(
            manifest.contains(&format!(
                "cargo-lambda-watch = {{ path = \"../{relative}\" }}"
            )),
            "gateway/Cargo.toml must patch cargo-lambda-watch from ../{relative}"
        );
        assert!(manifest.contains(&format!("cargo-lambda-watch = \"={WATCH_VERSION}\"")));
    }

    /// The settings of one `[header]` section: its lines up to the next section, without
    /// comments and blank lines.
    fn section(text: &str, header: &str) -> String {
        let start = text.find(header).unwrap();
        text[start..]
            .lines()
            .skip(1)
            .take_while(|line| !line.starts_with('['))
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_gateway_builds_in_the_workspace_profile_it_shares() {
        // The same settings make the dependencies both trees share one build in target/local/.
        let workspace = std::fs::read_to_string(paths::root().join("Cargo.toml")).unwrap();
        let gateway = std::fs::read_to_string(paths::root().join("gateway/Cargo.toml")).unwrap();
        for header in ["[profile.release]", "[profile.local]"] {
            assert_eq!(
                section(&workspace, header),
                section(&gateway, header),
                "{header}"
            );
        }
    }
}
