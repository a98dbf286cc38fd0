//! The `cargo lambda watch` that serves the local stack: cargo-lambda 1.9.2 built from its
//! crates.io source with our patch to its emulator (`ops/upstream/cargo-lambda-watch-1.9.2.patch`,
//! written up in `ops/upstream/cargo-lambda.md`). Stock 1.9.2 stops serving every function for
//! good once one function has 100 invocations queued; the patch queues without blocking,
//! answers a full queue with 429 + `Retry-After`, lets `AWS_LAMBDA_MAX_CONCURRENCY` reach the
//! function, base64-encodes bodies that are not UTF-8 and sends a real invocation deadline.
//!
//! The build takes about 15 minutes of two cores, so it is cached per machine, outside the
//! clone (`$XDG_CACHE_HOME/order-service/cargo-lambda`, else `~/.cache/...`), under a name that
//! carries the patch's hash: every clone on the machine reuses it, and a changed patch builds
//! a new binary (reusing part of the cached target dir). The PyPI wheel's cargo-lambda stays for
//! `cargo lambda build` (it brings zig for the arm64 cross-build).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::install::run;
use crate::paths;

pub(crate) const VERSION: &str = "1.9.2";
const PATCH: &str = "ops/upstream/cargo-lambda-watch-1.9.2.patch";

/// The folder that holds the cached build (sources, target dir and finished binaries).
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| paths::local().join("cache"));
    base.join("order-service").join("cargo-lambda")
}

/// The binary for the current patch: its name carries the patch's hash.
pub(crate) fn binary() -> Result<PathBuf> {
    let patch =
        std::fs::read(paths::root().join(PATCH)).with_context(|| format!("cannot read {PATCH}"))?;
    let key = key_of(&patch);
    // The file keeps the name `cargo-lambda`, which is how process listings show it.
    Ok(cache_dir()
        .join("bin")
        .join(format!("{VERSION}-{key}"))
        .join("cargo-lambda"))
}

/// The cache key of a patch: the first 12 hex digits of its SHA-256.
fn key_of(patch: &[u8]) -> String {
    Sha256::digest(patch)
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Returns the patched cargo-lambda, building it first if this machine has not yet.
pub(crate) fn ensure() -> Result<PathBuf> {
    let binary = binary()?;
    if binary.is_file() {
        return Ok(binary);
    }
    let cache = cache_dir();
    eprintln!(
        "Building cargo-lambda {VERSION} with {PATCH} into {} (once per machine, ~15 min on 2 cores) ...",
        cache.display()
    );
    let sources = cache.join("src");
    fetch_sources(&cache, &sources)?;
    let watch = sources.join(format!("cargo-lambda-watch-{VERSION}"));
    run(Command::new("patch")
        .args(["--quiet", "--forward", "-p1", "-d"])
        .arg(&watch)
        .arg("-i")
        .arg(paths::root().join(PATCH)))?;
    let cli = sources.join(format!("cargo-lambda-{VERSION}"));
    let manifest = cli.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest)?;
    text.push_str(&format!(
        "\n[patch.crates-io]\ncargo-lambda-watch = {{ path = \"../cargo-lambda-watch-{VERSION}\" }}\n"
    ));
    std::fs::write(&manifest, text)?;
    // The published Cargo.lock pins every dependency; only the patched crate's entry changes.
    run(Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "cargo-lambda"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(cache.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS"))?;
    let built = cache.join("target/release/cargo-lambda");
    if let Some(folder) = binary.parent() {
        std::fs::create_dir_all(folder)?;
    }
    // Copy then rename, so a stopped copy never leaves a half-written binary under the name.
    let partial = binary.with_extension("partial");
    std::fs::copy(&built, &partial).with_context(|| format!("cannot copy {}", built.display()))?;
    std::fs::rename(&partial, &binary)?;
    Ok(binary)
}

/// Unpacks the pristine 1.9.2 sources of cargo-lambda and cargo-lambda-watch into `sources`,
/// downloading them (and every dependency) through cargo from the registry.
fn fetch_sources(cache: &Path, sources: &Path) -> Result<()> {
    let fetcher = cache.join("fetch");
    std::fs::create_dir_all(fetcher.join("src"))?;
    std::fs::write(
        fetcher.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-cargo-lambda\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\ncargo-lambda = \"={VERSION}\"\ncargo-lambda-watch = \"={VERSION}\"\n"
        ),
    )?;
    std::fs::write(fetcher.join("src/lib.rs"), "")?;
    run(Command::new("cargo")
        .args(["fetch", "--quiet", "--manifest-path"])
        .arg(fetcher.join("Cargo.toml")))?;
    if sources.exists() {
        std::fs::remove_dir_all(sources)?;
    }
    std::fs::create_dir_all(sources)?;
    for name in ["cargo-lambda", "cargo-lambda-watch"] {
        let archive = find_crate_archive(&format!("{name}-{VERSION}.crate"))?;
        run(Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(sources))?;
    }
    Ok(())
}

/// Where cargo keeps a downloaded `.crate` file: `$CARGO_HOME/registry/cache/<index>/`.
fn find_crate_archive(file: &str) -> Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let registries = cargo_home.join("registry/cache");
    for entry in std::fs::read_dir(&registries)
        .with_context(|| format!("cannot read {}", registries.display()))?
    {
        let candidate = entry?.path().join(file);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("cargo fetch left no {file} under {}", registries.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_named_after_the_patch_it_was_built_with() -> Result<()> {
        let binary = binary()?;
        assert_eq!(
            binary.file_name().and_then(|name| name.to_str()),
            Some("cargo-lambda")
        );
        let folder = binary
            .parent()
            .and_then(|folder| folder.file_name())
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let key = folder.strip_prefix("1.9.2-").unwrap_or_default();
        assert_eq!(key.len(), 12, "{folder}");
        assert!(key.chars().all(|character| character.is_ascii_hexdigit()));
        Ok(())
    }

    #[test]
    fn a_changed_patch_gets_another_build() {
        assert_eq!(key_of(b"one patch"), key_of(b"one patch"));
        assert_ne!(key_of(b"one patch"), key_of(b"one patch, changed"));
    }
}
