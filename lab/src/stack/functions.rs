//! The functions' side of the local stack: building them (and the store proxy they reach),
//! their environment, starting `dynamodb-faithful` and the local gateway that serves them,
//! warming every route up, and stopping them again.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use order_service::app::FUNCTIONS;

use super::StoreArgs;
use crate::http::Request;
use crate::paths;
use crate::process;
use crate::process::run;
use crate::state::Serving;

/// Sends one unauthenticated request to every route, so every function is built and started
/// before the first real request (the answer is a 401 from the function itself).
/// One request per route (method, path), with a made-up order id: enough to start and reach
/// every function without changing any data.
pub(crate) fn probe_routes() -> [(&'static str, String); 6] {
    let order = "01J0000000000000000000000A";
    [
        ("POST", "/users/user-1/orders".to_owned()),
        ("GET", "/users/user-1/orders".to_owned()),
        ("GET", format!("/users/user-1/orders/{order}")),
        ("POST", format!("/users/user-1/orders/{order}/payment")),
        ("POST", format!("/users/user-1/orders/{order}/cancel")),
        ("POST", format!("/users/user-1/orders/{order}/refunds")),
    ]
}

pub(super) fn warm_up(base_url: &str) -> Result<()> {
    for (method, path) in probe_routes() {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let url = format!("{base_url}{path}");
            let status = Request::new(method, &url, Duration::from_secs(30))
                .send()
                .map_or_else(
                    |error| format!("nothing ({error:#})"),
                    |response| response.status.to_string(),
                );
            if status == "401" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{method} {path} answered {status} instead of 401 during warm-up");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

pub(crate) fn function_env(
    dynamodb_endpoint: &str,
    table: &str,
    secret: &str,
    fault_injection_rate: f64,
) -> Vec<(String, String)> {
    [
        ("TABLE_NAME", table.to_owned()),
        ("AUTH_MODE", "jwt".to_owned()),
        ("AUTH_JWT_SECRET", secret.to_owned()),
        ("AUTH_ISSUER", order_service::auth::LOCAL_ISSUER.to_owned()),
        (
            "AUTH_AUDIENCE",
            order_service::auth::LOCAL_AUDIENCE.to_owned(),
        ),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("FAULT_INJECTION_RATE", fault_injection_rate.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// Builds the five functions the way the gateway runs them (`cargo run --profile local --bin
/// <name>` from the workspace root), in one cargo command so that two compile at once: the
/// five have the same dependencies and features, so each `cargo run` then finds its binary
/// fresh and starts it at once (a test holds them to that). `dynamodb-faithful` is built in a
/// command of its own, so that its dependencies' features never join the functions'.
pub(crate) fn build_functions() -> Result<()> {
    let build = || {
        let mut command = Command::new("cargo");
        command
            .args(["build", "--manifest-path", "Cargo.toml", "--profile"])
            .arg(paths::FUNCTION_PROFILE)
            .current_dir(paths::root());
        command
    };
    let mut functions = build();
    for function in FUNCTIONS {
        functions.args(["--bin", function]);
    }
    run(&mut functions)?;
    run(build().args(["--bin", FAITHFUL]))
}

/// The binary (and process name) of the production-faithful store proxy.
pub(crate) const FAITHFUL: &str = "dynamodb-faithful";

/// Starts `dynamodb-faithful` on `port` in front of `upstream`, its conflicts and throttles
/// appended to `event_log` (the functions' log, where the monitor reads them), its own output
/// and summary beside it in `log_dir`. Returns its pid.
pub(super) fn start_faithful(
    port: u16,
    upstream: &str,
    store: &StoreArgs,
    log_dir: &Path,
    event_log: &Path,
) -> Result<u32> {
    let binary = paths::root()
        .join("target")
        .join(paths::FUNCTION_PROFILE)
        .join(FAITHFUL);
    let output = std::fs::File::create(log_dir.join("faithful.log"))?;
    let child = Command::new(&binary)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream])
        .args(["--partition-wcu", &store.partition_wcu.to_string()])
        .args(["--partition-rcu", &store.partition_rcu.to_string()])
        .args(["--hold-ms", &store.hold_ms.to_string()])
        .arg("--summary-file")
        .arg(log_dir.join("faithful-summary.json"))
        .arg("--event-log")
        .arg(event_log)
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(child.id())
}

/// Starts the functions under the local gateway (built by `gateway::ensure`, which `start`
/// runs first) in a process group of their own, appending their output to `log_file`.
/// Returns the process group id.
pub(crate) fn start_functions(
    port: u16,
    serving: Serving,
    env: &[(String, String)],
    log_file: &std::path::Path,
) -> Result<u32> {
    if let Some(dir) = log_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)?;
    let gateway = crate::gateway::binary();
    if !gateway.is_file() {
        bail!(
            "{} is not built yet (`cargo xtask up` builds it)",
            gateway.display()
        );
    }
    let mut command = Command::new(gateway);
    command
        .args([
            "--profile",
            paths::FUNCTION_PROFILE,
            "--ignore-changes",
            "--quiet",
            "--disable-cors",
        ])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .args(["--concurrency", &serving.instances.to_string()])
        .env(
            "CARGO_LAMBDA_MAX_QUEUE_DEPTH",
            serving.queue_depth.max(1).to_string(),
        )
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    for (key, value) in env {
        command.arg("--env-var").arg(format!("{key}={value}"));
    }
    command.arg("--env-var").arg(format!(
        "AWS_LAMBDA_MAX_CONCURRENCY={}",
        serving.max_concurrency.max(1)
    ));
    let child = command.spawn().context("cannot start the local gateway")?;
    Ok(child.id())
}

/// Stops the gateway (a process group of its own) and every function instance it started.
pub(crate) fn stop_functions(pgid: u32) {
    process::stop_tree(pgid, Duration::from_secs(15));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[dependencies]` lines of a manifest, without blanks and comments.
    fn dependency_lines(manifest: &str) -> Vec<String> {
        let text = std::fs::read_to_string(paths::root().join(manifest)).unwrap();
        text.split("[dependencies]")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|line| !line.starts_with('['))
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_four_functions_build_with_the_same_dependency_features() {
        // One `cargo build` of all four must leave each binary fresh for the gateway's
        // `cargo run --bin <name>`: that holds when no function brings a feature the others
        // lack, i.e. each depends only on workspace dependencies without features of its own,
        // and on nothing order-service does not already depend on (besides the runtime and
        // the allocator).
        let shared = dependency_lines("shared/Cargo.toml");
        for function in FUNCTIONS {
            for line in dependency_lines(&format!("functions/{function}/Cargo.toml")) {
                let name = line.strip_suffix(".workspace = true").unwrap_or_else(|| {
                    panic!("{function}: `{line}` is not a plain workspace dependency")
                });
                assert!(
                    ["order-service", "mimalloc"].contains(&name)
                        || shared.contains(&format!("{name}.workspace = true")),
                    "{function} depends on {name}, which order-service does not"
                );
            }
        }
    }
}
