//! The local stack: DynamoDB Local, the table and its seed, and the four functions served by
//! the local gateway (`local-gateway`: cargo-lambda's `watch` server with our patch, see
//! `gateway.rs`) on 127.0.0.1 with the routes of the workspace router table. The pids
//! are kept in `.local/stack.json`, so `down` (or Ctrl-C in the foreground) stops exactly what
//! `up` started.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{self, SeedArgs};
use crate::http::{self, Reach};
use crate::install::{self, run};
use crate::paths;
use crate::process::{self, Signal};

pub(crate) const FUNCTIONS: [&str; 4] = ["create-order", "pay-order", "cancel-order", "get-order"];
pub(crate) const TABLE_NAME: &str = "orders-local";

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// The port the functions are served on.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The port of DynamoDB Local.
    #[arg(long, default_value_t = 8000)]
    pub dynamodb_port: u16,
    /// Function instances (processes) per function: cargo lambda watch --concurrency.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Invocations one instance serves at once (AWS_LAMBDA_MAX_CONCURRENCY, as on Lambda
    /// Managed Instances): the functions wait on DynamoDB, so one process interleaves many.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENCY)]
    pub max_concurrency: u32,
    /// Invocations that may wait per function beyond those being served; past it the gateway
    /// answers 429 with Retry-After at once, as Lambda throttles a function at its limit.
    #[arg(long, default_value_t = DEFAULT_QUEUE_DEPTH)]
    pub queue_depth: u32,
    /// Start, print the URL and return, leaving the stack running (stop it with `down`).
    #[arg(long)]
    pub detach: bool,
    /// The fraction of requests the functions fail on purpose (the bad-deploy drill).
    #[arg(long, default_value_t = 0.0)]
    pub fault_injection_rate: f64,
    #[command(flatten)]
    pub(crate) seed: SeedArgs,
}

/// What is running, for `down`, `seed`, `audit` and the load tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StackState {
    pub dynamodb_pid: u32,
    pub watch_pgid: u32,
    pub dynamodb_endpoint: String,
    pub base_url: String,
    pub table: String,
    pub port: u16,
    pub concurrency: u32,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
    /// Where the functions' output (JSON logs and EMF lines) goes.
    pub function_log: PathBuf,
    pub jwt_secret: String,
}

/// Invocations one function instance serves at once in the local stack. Measured with
/// `cargo xtask bench` (ARCHITECTURE.md): past about this many, more only queue inside
/// DynamoDB Local.
pub(crate) const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Invocations that may wait per function before the gateway throttles: enough to ride out a
/// pause of DynamoDB Local's JVM at the target rate, small enough that an admitted request
/// never waits long (its wait is about depth / throughput).
pub(crate) const DEFAULT_QUEUE_DEPTH: u32 = 32;

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}

fn default_queue_depth() -> u32 {
    DEFAULT_QUEUE_DEPTH
}

/// How the gateway serves the functions: instances per function, invocations per instance,
/// and the queue per function before throttling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serving {
    pub instances: u32,
    pub max_concurrency: u32,
    pub queue_depth: u32,
}

impl StackState {
    pub(crate) fn serving(&self) -> Serving {
        Serving {
            instances: self.concurrency,
            max_concurrency: self.max_concurrency,
            queue_depth: self.queue_depth,
        }
    }
}

impl UpArgs {
    /// The default stack: DynamoDB Local on 8000, the functions on 9000, the default serving.
    pub(crate) fn local_default(seed: SeedArgs) -> Self {
        UpArgs {
            port: DEFAULT_PORT,
            dynamodb_port: 8000,
            concurrency: 1,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            detach: true,
            fault_injection_rate: 0.0,
            seed,
        }
    }

    pub(crate) fn serving(&self) -> Serving {
        Serving {
            instances: self.concurrency,
            max_concurrency: self.max_concurrency,
            queue_depth: self.queue_depth,
        }
    }
}

/// The state file of the stack on `port`: the default port's is `.local/stack.json`, so
/// that `down`, `seed` and `audit` find it without flags; other ports (drills) get their own.
fn state_path_for(port: u16) -> PathBuf {
    if port == DEFAULT_PORT {
        paths::local().join("stack.json")
    } else {
        paths::local().join(format!("stack-{port}.json"))
    }
}

/// The log folder of the stack on `port` (`.local/logs/` for the default port).
pub(crate) fn log_dir_for(port: u16) -> PathBuf {
    if port == DEFAULT_PORT {
        paths::logs()
    } else {
        paths::local().join(format!("logs-{port}"))
    }
}

pub(crate) const DEFAULT_PORT: u16 = 9000;

pub(crate) fn read_state() -> Option<StackState> {
    read_state_at(DEFAULT_PORT)
}

/// The state of the stack on `port`, if it is running.
pub(crate) fn read_state_at(port: u16) -> Option<StackState> {
    let text = std::fs::read_to_string(state_path_for(port)).ok()?;
    let state: StackState = serde_json::from_str(&text).ok()?;
    (process::alive(state.dynamodb_pid) && process::alive(state.watch_pgid)).then_some(state)
}

/// Records the state of a running stack (e.g. after its functions were restarted).
pub(crate) fn save_state(state: &StackState) -> Result<()> {
    std::fs::write(
        state_path_for(state.port),
        serde_json::to_string_pretty(state)?,
    )?;
    Ok(())
}

pub(crate) fn require_state() -> Result<StackState> {
    read_state().context("the local stack is not running: start it with `cargo xtask up`")
}

fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("nothing is listening on 127.0.0.1:{port} after {timeout:?}")
}

/// Sends one unauthenticated request to every route, so every function is built and started
/// before the first real request (the answer is a 401 from the function itself).
/// One request per route (method, path), with a made-up order id: enough to start and reach
/// every function without changing any data.
pub(crate) fn probe_routes() -> [(&'static str, String); 5] {
    let order = "01J0000000000000000000000A";
    [
        ("POST", "/users/user-1/orders".to_owned()),
        ("GET", "/users/user-1/orders".to_owned()),
        ("GET", format!("/users/user-1/orders/{order}")),
        ("POST", format!("/users/user-1/orders/{order}/payment")),
        ("POST", format!("/users/user-1/orders/{order}/cancel")),
    ]
}

fn warm_up(base_url: &str) -> Result<()> {
    for (method, path) in probe_routes() {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let status = http::request(
                Reach::Loopback,
                method,
                &format!("{base_url}{path}"),
                &[],
                &[],
                Duration::from_secs(30),
            )
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

/// Builds each function the way `cargo lambda watch --profile local` runs it (`--bin <name>`
/// from the workspace root), so that watch finds the binaries fresh and starts them at once.
pub(crate) fn build_functions() -> Result<()> {
    for function in FUNCTIONS {
        run(Command::new("cargo")
            .args([
                "build",
                "--manifest-path",
                "Cargo.toml",
                "--profile",
                paths::FUNCTION_PROFILE,
                "--bin",
                function,
            ])
            .current_dir(paths::root()))?;
    }
    Ok(())
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

pub fn up(args: &UpArgs) -> Result<()> {
    let state = start(args)?;
    print_welcome(&state)?;
    if args.detach {
        return Ok(());
    }
    eprintln!("Press Ctrl-C to stop the stack.");
    wait_for_ctrl_c()?;
    eprintln!("Stopping ...");
    stop(&state);
    Ok(())
}

/// Starts the whole stack on the ports in `args` and returns its state (also written to the
/// port's state file). The caller stops it with `stop`.
pub(crate) fn start(args: &UpArgs) -> Result<StackState> {
    if let Some(state) = read_state_at(args.port) {
        bail!(
            "the local stack is already running at {} (stop it with `cargo xtask down`)",
            state.base_url
        );
    }
    let installed = install::for_stack()?;
    eprintln!("Building the functions (profile local) ...");
    build_functions()?;
    crate::gateway::ensure()?;

    eprintln!(
        "Starting DynamoDB Local on 127.0.0.1:{} ...",
        args.dynamodb_port
    );
    std::fs::create_dir_all(log_dir_for(args.port))?;
    if TcpStream::connect(("127.0.0.1", args.dynamodb_port)).is_ok() {
        bail!("port {} is taken; pass --dynamodb-port", args.dynamodb_port);
    }
    let dynamodb = testkit::DynamoDbLocal::start(
        &installed.dynamodb_dir,
        args.dynamodb_port,
        None,
        Some(&log_dir_for(args.port).join("dynamodb.log")),
        false,
    )?;
    let dynamodb_endpoint = dynamodb.endpoint();
    let dynamodb_pid = dynamodb.pid();
    std::mem::forget(dynamodb);

    let summary = data::reset_and_seed(&dynamodb_endpoint, TABLE_NAME, &args.seed)?;
    eprintln!(
        "Seeded {} users ({} KRW each) and {} products.",
        summary.users, args.seed.balance, summary.products
    );

    eprintln!(
        "Starting the functions on 127.0.0.1:{} (local gateway: {} instance(s) x {} concurrent invocations per function, queue {}) ...",
        args.port, args.concurrency, args.max_concurrency, args.queue_depth
    );
    let log_dir = log_dir_for(args.port);
    std::fs::create_dir_all(&log_dir)?;
    let function_log = log_dir.join("functions.log");
    let _ = std::fs::remove_file(&function_log);
    let env = function_env(
        &dynamodb_endpoint,
        TABLE_NAME,
        &installed.jwt_secret,
        args.fault_injection_rate,
    );
    let watch_pgid = start_functions(args.port, args.serving(), &env, &function_log)?;
    let base_url = format!("http://127.0.0.1:{}", args.port);
    let state = StackState {
        dynamodb_pid,
        watch_pgid,
        dynamodb_endpoint,
        base_url: base_url.clone(),
        table: TABLE_NAME.to_owned(),
        port: args.port,
        concurrency: args.concurrency,
        max_concurrency: args.max_concurrency,
        queue_depth: args.queue_depth,
        function_log,
        jwt_secret: installed.jwt_secret.clone(),
    };
    std::fs::write(
        state_path_for(args.port),
        serde_json::to_string_pretty(&state)?,
    )?;
    let started =
        wait_for_port(args.port, Duration::from_secs(120)).and_then(|()| warm_up(&base_url));
    if let Err(error) = started {
        stop(&state);
        return Err(error.context(format!(
            "the functions did not come up; see {}",
            state.function_log.display()
        )));
    }
    Ok(state)
}

fn wait_for_ctrl_c() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    Ok(())
}

fn print_welcome(state: &StackState) -> Result<()> {
    let token = data::sign(&state.jwt_secret, "user-1")?;
    println!("The order service is up at {}", state.base_url);
    println!("  logs:     {}", state.function_log.display());
    println!("  token:    TOKEN=$(cargo xtask token user-1)");
    println!(
        "  try:      curl -s -H \"Authorization: Bearer {token}\" {}/users/user-1/orders",
        state.base_url
    );
    Ok(())
}

/// Stops the stack: its functions, then DynamoDB Local (waiting for it to exit, so that its
/// port is free again), and forgets its state file.
pub(crate) fn stop(state: &StackState) {
    process::signal(state.dynamodb_pid, Signal::SIGTERM);
    stop_functions(state.watch_pgid);
    process::wait_gone(state.dynamodb_pid, Duration::from_secs(10));
    let _ = std::fs::remove_file(state_path_for(state.port));
}

pub fn down() -> Result<()> {
    match read_state() {
        Some(state) => {
            stop(&state);
            println!("Stopped the local stack.");
        }
        None => println!("The local stack is not running."),
    }
    Ok(())
}
