//! `cargo xtask emulator`: the service from `template.yaml` on MiniStack, the Docker-free
//! LocalStack-compatible emulator, on 127.0.0.1:4566 (recipe and measurements:
//! ops/deploy-notes.md).
//!
//! * `up`: install, build the four bootstraps for the host (`cargo lambda build --release
//!   --x86-64`, into target/lambda/<function>/bootstrap: MiniStack runs them as local
//!   processes), write the MiniStack variant of template.yaml (`cargo xtask template
//!   --emulator`: the HTTP API without its authorizer, x86_64), `localstack/ministack-deploy.sh
//!   up` with the development JWT key (so `cargo xtask token` tokens work there), seed the
//!   stack's table when it is empty, and write the base URL to `.local/emulator.json`.
//! * `down`: stop the MiniStack the deploy script started (all emulator state goes with it).
//! * `test`: `up` unless the emulator already serves the stack, replay every event of
//!   `events/expected.json` as HTTP requests through the emulator's API Gateway (stage `v1`),
//!   a short low-rate k6 smoke through it, the conservation audit, then `down` again if this
//!   run started it. Prints the timings of each step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use order_service::app::FUNCTIONS;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit;
use crate::http::Request;
use crate::install;
use crate::invoke::{self, Target};
use crate::seed_plan::SeedArgs;
use crate::{paths, stack, template};

/// The stack name emulator.py deploys (its STACK_NAME default).
const STACK_NAME: &str = "order-service";
const EMULATOR_PORT: u16 = 4566;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: EmulatorCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum EmulatorCommand {
    /// Build the x86_64 bootstraps, start MiniStack on 127.0.0.1:4566, deploy template.yaml's
    /// MiniStack variant with the development JWT key, seed the table, print the API base URL.
    Up(UpArgs),
    /// Stop MiniStack (its state is in memory: the stack and the table go with it).
    Down,
    /// Up if needed, replay events/ through the emulator's API Gateway, k6 smoke, audit,
    /// down (if this run started it).
    Test(TestArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct UpArgs {
    /// Deploy the bootstraps already in target/lambda instead of building them first.
    #[arg(long)]
    pub skip_build: bool,
    /// Use the host binaries of the local stack (target/local/<function>) as the
    /// bootstraps instead of a second, cross-linked build: MiniStack runs them as local
    /// processes, so the host build is exactly what it needs (CI saves a full release build).
    #[arg(long, conflicts_with = "skip_build")]
    pub from_release: bool,
    #[command(flatten)]
    pub seed: SeedArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TestArgs {
    #[command(flatten)]
    pub up: UpArgs,
    /// Leave the emulator running at the end even if this run started it.
    #[arg(long)]
    pub keep: bool,
    /// The k6 smoke's rate, HTTP requests per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// The k6 smoke's length (k6 duration syntax).
    #[arg(long, default_value = "15s")]
    pub duration: String,
    /// The k6 smoke's p95 latency threshold in ms (MiniStack adds ~50-100 ms per request).
    #[arg(long, default_value_t = 1_000)]
    pub p95_ms: u32,
    /// Skip the k6 smoke (events only).
    #[arg(long)]
    pub skip_k6: bool,
}

/// What `up` deployed, in `.local/emulator.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmulatorState {
    /// The API Gateway stage URL: `http://127.0.0.1:4566/_aws/execute-api/<apiId>/v1`.
    pub base_url: String,
    /// The emulator's endpoint (DynamoDB and every other service).
    pub endpoint: String,
    pub stack: String,
    pub table: String,
    pub deployed_at: String,
    /// Bytes of each deployed bootstrap.
    pub bootstraps: BTreeMap<String, u64>,
    pub timings: Timings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Timings {
    pub install_seconds: f64,
    /// `None` with --skip-build.
    pub build_seconds: Option<f64>,
    pub deploy_seconds: f64,
    /// `None` when the table already held the seed.
    pub seed_seconds: Option<f64>,
    pub total_seconds: f64,
}

pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        EmulatorCommand::Up(up_args) => up(up_args).map(|_| ()),
        EmulatorCommand::Down => down(),
        EmulatorCommand::Test(test_args) => test(test_args),
    }
}

fn state_path() -> PathBuf {
    paths::local().join("emulator.json")
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{EMULATOR_PORT}")
}

fn table_name() -> String {
    // template.yaml: TableName empty derives "<stack name>-orders".
    format!("{STACK_NAME}-orders")
}

fn deploy_script() -> PathBuf {
    paths::root().join("localstack/ministack-deploy.sh")
}

fn bootstrap_dir() -> PathBuf {
    paths::root().join("target/lambda")
}

/// Whether MiniStack answers on 127.0.0.1:4566.
fn healthy() -> bool {
    let url = format!("{}/_ministack/health", endpoint());
    Request::new("GET", &url, Duration::from_secs(2))
        .send()
        .is_ok_and(|response| response.status == 200)
}

/// The state of a deployed stack that still answers through its API: an unauthenticated
/// request gets the function's own 401.
pub(crate) fn read_state() -> Option<EmulatorState> {
    let text = std::fs::read_to_string(state_path()).ok()?;
    let state: EmulatorState = serde_json::from_str(&text).ok()?;
    if !healthy() {
        return None;
    }
    let url = format!("{}/users/user-1/orders", state.base_url);
    let probe = Request::new("GET", &url, Duration::from_secs(30)).send();
    probe
        .is_ok_and(|response| response.status == 401)
        .then_some(state)
}

fn seconds(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

/// `cargo lambda build --release --x86-64` for the four functions: the host's architecture,
/// because MiniStack runs each bootstrap as a local process. Writes
/// target/lambda/<function>/bootstrap.
fn build_bootstraps() -> Result<f64> {
    eprintln!("Building the x86_64 bootstraps (cargo lambda build --release --x86-64) ...");
    let started = Instant::now();
    cargo_lambda_build("--x86-64", "release")?;
    Ok(seconds(started))
}

/// `cargo lambda build --profile <profile> <architecture flag>` for the four functions, with
/// the venv (where cargo-lambda's zig linker lives) first on PATH. Writes
/// target/lambda/<function>/bootstrap. `release` is what is deployed (and what `sam build`
/// builds); `local` is the fast profile CI uses to prove the cross-build.
pub(crate) fn cargo_lambda_build(architecture: &str, profile: &str) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut search = vec![paths::local().join("venv/bin")];
    search.extend(std::env::split_paths(&path));
    let mut command = Command::new(install::cargo_lambda());
    command
        .args(["lambda", "build", "--profile", profile, architecture])
        .env("PATH", std::env::join_paths(search)?)
        .current_dir(paths::root());
    for function in FUNCTIONS {
        command.args(["--bin", function]);
    }
    crate::process::run(&mut command)
}

/// Builds the functions for the host (as the local stack does) and copies each binary to
/// target/lambda/<function>/bootstrap.
fn copy_release_binaries() -> Result<f64> {
    let started = Instant::now();
    stack::build_functions()?;
    for function in FUNCTIONS {
        let target = bootstrap_dir().join(function);
        std::fs::create_dir_all(&target)?;
        std::fs::copy(paths::function_binary(function), target.join("bootstrap"))?;
    }
    Ok(seconds(started))
}

fn bootstrap_sizes() -> Result<BTreeMap<String, u64>> {
    let mut sizes = BTreeMap::new();
    for function in FUNCTIONS {
        let path = bootstrap_dir().join(function).join("bootstrap");
        let metadata = std::fs::metadata(&path).with_context(|| {
            format!(
                "{} is missing: build it (drop --skip-build)",
                path.display()
            )
        })?;
        sizes.insert(function.to_owned(), metadata.len());
    }
    Ok(sizes)
}

/// Writes the MiniStack variant of template.yaml, runs the deploy script on it (start MiniStack
/// if needed, deploy) and returns the base URL it prints as the last line of stdout.
fn deploy(secret: &str) -> Result<String> {
    // x86_64: the architecture the bootstraps are built for (MiniStack runs them as they are).
    let variant = template::default_out("emulator");
    template::write_emulator_variant(
        template::Flavour::Http,
        template::Architecture::X86_64,
        &variant,
    )?;
    eprintln!(
        "Deploying {} (template.yaml's HTTP API without its authorizer) to MiniStack on {} ...",
        variant.display(),
        endpoint()
    );
    // Its progress goes to the terminal; its last line of stdout is the base URL.
    let output = crate::process::output(
        Command::new("bash")
            .arg(deploy_script())
            .arg("up")
            .env("TEMPLATE", &variant)
            .env("BOOTSTRAP_DIR", bootstrap_dir())
            .env("AUTH_JWT_SECRET", secret)
            .env("EMULATOR_PORT", EMULATOR_PORT.to_string())
            .env("STACK_NAME", STACK_NAME)
            .current_dir(paths::root())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .context("localstack/ministack-deploy.sh up failed")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let base_url = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .context("the deploy script printed no base URL")?;
    if !base_url.starts_with(&format!("{}/_aws/execute-api/", endpoint())) {
        bail!("the deploy script's last line is not a base URL: {base_url}");
    }
    Ok(base_url.to_owned())
}

/// Seeds the table unless it already holds the seed (user-1 exists). Returns the seconds
/// spent seeding, or `None` when nothing was written.
fn seed_if_empty(seed: &SeedArgs) -> Result<Option<f64>> {
    let endpoint = endpoint();
    let table = table_name();
    crate::client::runtime()?.block_on(async {
        let store = crate::client::store_for(&endpoint, &table).await;
        // No DescribeTable: MiniStack 1.5.33 returns the table's DeletionProtectionEnabled as
        // the string CloudFormation passed ("false"), which the Rust SDK refuses to parse. A
        // missing table shows up as the GetItem's ResourceNotFoundException instead.
        let user = order_service::domain::UserId::parse("user-1")
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let existing = store
            .user_balance(&user)
            .await
            .map_err(crate::client::store_failure)?;
        if existing.is_some() {
            eprintln!("The table {table} is already seeded.");
            return Ok(None);
        }
        let started = Instant::now();
        let summary = store
            .seed(&seed.plan())
            .await
            .map_err(crate::client::store_failure)?;
        eprintln!(
            "Seeded {} users ({} KRW each) and {} products into {table}.",
            summary.users, seed.balance, summary.products
        );
        Ok(Some(seconds(started)))
    })
}

pub(crate) fn up(args: &UpArgs) -> Result<EmulatorState> {
    let started = Instant::now();
    let installed = install::install_all()?;
    let install_seconds = seconds(started);
    let build_seconds = if args.skip_build {
        None
    } else if args.from_release {
        Some(copy_release_binaries()?)
    } else {
        Some(build_bootstraps()?)
    };
    let bootstraps = bootstrap_sizes()?;
    let deploy_started = Instant::now();
    let base_url = deploy(&installed.jwt_secret)?;
    let deploy_seconds = seconds(deploy_started);
    let seed_seconds = seed_if_empty(&args.seed)?;
    let state = EmulatorState {
        base_url,
        endpoint: endpoint(),
        stack: STACK_NAME.to_owned(),
        table: table_name(),
        deployed_at: crate::clock::utc_stamp(),
        bootstraps,
        timings: Timings {
            install_seconds,
            build_seconds,
            deploy_seconds,
            seed_seconds,
            total_seconds: seconds(started),
        },
    };
    std::fs::write(state_path(), serde_json::to_string_pretty(&state)?)?;
    print_state(&state)?;
    Ok(state)
}

fn print_state(state: &EmulatorState) -> Result<()> {
    let token = crate::token::sign(&crate::token::jwt_secret()?, "user-1")?;
    println!("The order service runs on MiniStack at {}", state.base_url);
    for (function, bytes) in &state.bootstraps {
        println!(
            "  bootstrap {function:<13} {:>6.1} MiB",
            *bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let timings = &state.timings;
    let optional = |value: Option<f64>| {
        value.map_or_else(|| "skipped".to_owned(), |value| format!("{value:.1} s"))
    };
    println!(
        "  timings: install {:.1} s, build {}, deploy {:.1} s, seed {}, total {:.1} s",
        timings.install_seconds,
        optional(timings.build_seconds),
        timings.deploy_seconds,
        optional(timings.seed_seconds),
        timings.total_seconds
    );
    println!("  state:   {}", state_path().display());
    println!(
        "  try:     curl -s -H \"Authorization: Bearer {token}\" {}/users/user-1/orders",
        state.base_url
    );
    Ok(())
}

pub(crate) fn down() -> Result<()> {
    crate::process::run(
        Command::new("bash")
            .arg(deploy_script())
            .arg("stop")
            .env("EMULATOR_PORT", EMULATOR_PORT.to_string())
            .current_dir(paths::root())
            .stdin(Stdio::null()),
    )?;
    let _ = std::fs::remove_file(state_path());
    println!("Stopped MiniStack.");
    Ok(())
}

/// What the k6 smoke measured.
#[derive(Debug, Clone)]
struct Smoke {
    passed: bool,
    report_dir: PathBuf,
    requests: f64,
    failed_rate: f64,
    p95_ms: f64,
    per_endpoint_p95: Vec<(String, f64)>,
}

fn k6_smoke(args: &TestArgs, base_url: &str, secret: &str) -> Result<Smoke> {
    let report_dir = paths::reports().join(format!("{}-emulator-smoke", crate::clock::utc_stamp()));
    std::fs::create_dir_all(&report_dir)?;
    let log_path = report_dir.join("k6.log");
    let log = std::fs::File::create(&log_path)?;
    let seed = &args.up.seed;
    eprintln!(
        "Running the k6 smoke at {} req/s for {} through {base_url} (log: {}) ...",
        args.rate,
        args.duration,
        log_path.display()
    );
    let status = Command::new(crate::install::k6())
        .args(["run", "--no-usage-report"])
        .arg(paths::root().join("k6/smoke.js"))
        .current_dir(paths::root())
        .env("K6_NO_USAGE_REPORT", "true")
        .env("BASE_URL", base_url)
        .env("AUTH_SECRET", secret)
        .env("RATE", args.rate.to_string())
        .env("DURATION", &args.duration)
        .env("P95_MS", args.p95_ms.to_string())
        .env("REPORT_DIR", &report_dir)
        .envs(seed.k6_env())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run k6 (run `cargo xtask install`)")?;
    let passed = match status.code() {
        Some(0) => true,
        Some(99) => false,
        _ => bail!("k6 failed with {status}; see {}", log_path.display()),
    };
    let summary_path = report_dir.join("summary.json");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .with_context(|| format!("k6 wrote no {}", summary_path.display()))?,
    )?;
    let metric = |name: &str, value: &str| crate::k6::summary_value(&summary, name, value);
    let per_endpoint_p95 = ["create", "pay", "get", "list", "cancel"]
        .into_iter()
        .filter_map(|endpoint| {
            metric(
                &format!("http_req_duration{{endpoint:{endpoint}}}"),
                "p(95)",
            )
            .map(|p95| (endpoint.to_owned(), p95))
        })
        .collect();
    Ok(Smoke {
        passed,
        requests: metric("http_reqs", "count").unwrap_or(0.0),
        failed_rate: metric("http_req_failed", "rate").unwrap_or(1.0),
        p95_ms: metric("http_req_duration", "p(95)").unwrap_or(f64::NAN),
        per_endpoint_p95,
        report_dir,
    })
}

pub(crate) fn test(args: &TestArgs) -> Result<()> {
    let started = Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    let (state, started_here) = match read_state() {
        Some(state) => {
            eprintln!("MiniStack already serves the stack at {}.", state.base_url);
            (state, false)
        }
        None => {
            let step = Instant::now();
            let state = up(&args.up)?;
            timings.push(("up", seconds(step)));
            if let Some(build) = state.timings.build_seconds {
                timings.push(("  build (cargo lambda)", build));
            }
            timings.push((
                "  deploy (ministack-deploy.sh up)",
                state.timings.deploy_seconds,
            ));
            if let Some(seed) = state.timings.seed_seconds {
                timings.push(("  seed", seed));
            }
            (state, true)
        }
    };
    let result = exercise(args, &state, &mut timings);
    if started_here && !args.keep {
        let step = Instant::now();
        down()?;
        timings.push(("down", seconds(step)));
    }
    timings.push(("total", seconds(started)));
    println!();
    println!("Timings:");
    for (name, value) in &timings {
        println!("  {name:<34} {value:>7.1} s");
    }
    result
}

/// The checks of `test` against a deployed stack: events, k6 smoke, audit.
fn exercise(args: &TestArgs, state: &EmulatorState, timings: &mut Vec<(&str, f64)>) -> Result<()> {
    let secret = crate::token::jwt_secret()?;
    let step = Instant::now();
    let report = invoke::replay_all(
        &Target::Http(state.base_url.clone()),
        &secret,
        &paths::root().join("events"),
    )?;
    timings.push(("replay events (API Gateway)", seconds(step)));
    invoke::print_report(&report);
    let mut failures = Vec::new();
    if !report.passed() {
        failures.push(format!(
            "{} events did not get the expected answer",
            report.failures()
        ));
    }
    if !args.skip_k6 {
        let step = Instant::now();
        let smoke = k6_smoke(args, &state.base_url, &secret)?;
        timings.push(("k6 smoke", seconds(step)));
        println!(
            "k6 smoke {}: {} requests, {:.2}% failed, p95 {:.1} ms (threshold {} ms); report {}",
            if smoke.passed { "passed" } else { "FAILED" },
            smoke.requests,
            smoke.failed_rate * 100.0,
            smoke.p95_ms,
            args.p95_ms,
            smoke.report_dir.display()
        );
        let endpoints: Vec<String> = smoke
            .per_endpoint_p95
            .iter()
            .map(|(endpoint, p95)| format!("{endpoint} {p95:.1}"))
            .collect();
        println!("  p95 per endpoint (ms): {}", endpoints.join(", "));
        if !smoke.passed {
            failures.push(format!(
                "the k6 smoke failed its thresholds (see {})",
                smoke.report_dir.join("k6.log").display()
            ));
        }
    }
    // The audit as an operator runs it against a deployed stack: `cargo xtask audit --stack`,
    // the table found through the stack's outputs (CloudFormation), the standard AWS
    // credential chain (the emulator takes any keys), judged by its exit code.
    let step = Instant::now();
    let audit = Command::new(std::env::current_exe()?)
        .args([
            "audit",
            "--stack",
            &state.stack,
            "--endpoint",
            &state.endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .status()?;
    timings.push(("audit --stack", seconds(step)));
    match audit.code() {
        Some(audit::exit::CLEAN) => {}
        Some(audit::exit::VIOLATION) => failures.push("the audit found violations".to_owned()),
        _ => failures.push(format!("the audit could not run ({audit})")),
    }
    if failures.is_empty() {
        println!("emulator test: passed");
        Ok(())
    } else {
        bail!("emulator test failed: {}", failures.join("; "))
    }
}
