//! The local stack: DynamoDB Local, the table and its seed, and the five functions served by
//! the local gateway (`local-gateway`: cargo-lambda's `watch` server with our patch, see
//! `gateway.rs`) on 127.0.0.1 with the routes of the workspace router table. The pids are kept
//! in `.local/stack.json`, so `down` (or Ctrl-C in the foreground) stops exactly what `up`
//! started.
//!
//! Starting is all or nothing: every port the stack needs is checked before anything is
//! installed, built or started (a port held by another process is refused with what holds it
//! and how to stop it), and a start that fails half-way stops what it had started. One more
//! process in the stack is one more entry in [`ports_needed`] and one more [`Starting::push`].

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::data::{self, SeedArgs};
use crate::http::{self, Reach};
use crate::install::{self, run};
use crate::paths;
use crate::process::{self, Signal};
use crate::state::{
    log_dir_for, read_state, read_state_at, state_path_for, Serving, StackState,
    DEFAULT_MAX_CONCURRENCY, DEFAULT_PORT, DEFAULT_QUEUE_DEPTH, TABLE_NAME,
};

pub(crate) use order_service::app::FUNCTIONS;

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
    pub store: StoreArgs,
    #[command(flatten)]
    pub(crate) seed: SeedArgs,
}

/// What the functions reach as their DynamoDB.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// `dynamodb-faithful` in front of DynamoDB Local: transaction conflicts, partition
    /// throughput limits and throttling, consumed capacity, as production DynamoDB.
    #[default]
    Faithful,
    /// DynamoDB Local itself: no conflict, no throttling, ever.
    Direct,
}

/// How the store behaves (`dynamodb-faithful`'s settings; ARCHITECTURE.md, "Production's
/// failures, locally").
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct StoreArgs {
    /// `faithful` (production's behaviour, the default) or `direct` (DynamoDB Local alone).
    #[arg(long = "store", value_enum, default_value_t = StoreMode::Faithful)]
    pub mode: StoreMode,
    /// Write units one partition key value serves per second (production: 1,000).
    #[arg(long, default_value_t = 1_000.0)]
    pub partition_wcu: f64,
    /// Read units one partition key value serves per second (production: 3,000).
    #[arg(long, default_value_t = 3_000.0)]
    pub partition_rcu: f64,
    /// Extra milliseconds a transaction holds its items (wider conflict windows).
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
}

impl Default for StoreArgs {
    fn default() -> Self {
        Self {
            mode: StoreMode::Faithful,
            partition_wcu: 1_000.0,
            partition_rcu: 3_000.0,
            hold_ms: 0,
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
            store: StoreArgs::default(),
            seed,
        }
    }

    /// The port `dynamodb-faithful` listens on: the one after DynamoDB Local's.
    pub(crate) fn faithful_port(&self) -> u16 {
        self.dynamodb_port + 1
    }

    pub(crate) fn serving(&self) -> Serving {
        Serving {
            instances: self.concurrency,
            max_concurrency: self.max_concurrency,
            queue_depth: self.queue_depth,
        }
    }
}

/// Waits until `pid` (or a process it started) listens on `port`. Fails at once when `pid`
/// has exited (a port it could not bind, a crash) or another process holds the port.
fn wait_for_listener(port: u16, pid: u32, what: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !process::alive(pid) {
            bail!("{what} (pid {pid}) exited before it listened on 127.0.0.1:{port}");
        }
        if let Some(holder) = port_holder(port) {
            let ours =
                process::Table::read(&[]).is_ok_and(|table| table.descends_from(holder.pid, pid));
            if !ours {
                bail!(
                    "127.0.0.1:{port} was taken by {} while {what} started",
                    holder.describe()
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The process listening on a TCP port of this machine.
#[derive(Debug, Clone)]
pub(crate) struct PortHolder {
    pub pid: u32,
    pub name: String,
    /// The folder it runs in (another clone's root, for another stack's process).
    pub folder: Option<PathBuf>,
}

impl PortHolder {
    /// The clone the process belongs to, if it runs in one: its folder, or for DynamoDB Local
    /// (which runs in `<clone>/.local/dynamodb/...`) the folder above `.local`.
    fn clone_folder(&self) -> Option<PathBuf> {
        let folder = self.folder.as_ref()?;
        let local = folder
            .ancestors()
            .find(|ancestor| ancestor.file_name().is_some_and(|name| name == ".local"));
        Some(local.and_then(Path::parent).unwrap_or(folder).to_path_buf())
    }

    fn how_to_stop(&self) -> String {
        match self.clone_folder() {
            Some(clone) if clone != paths::root() => format!(
                "if it is another clone's stack, stop it there (`cargo xtask down` in {}); otherwise `kill {}`",
                clone.display(),
                self.pid
            ),
            _ => format!(
                "if it is a stack of this clone, `cargo xtask down` stops it; otherwise `kill {}`",
                self.pid
            ),
        }
    }

    fn describe(&self) -> String {
        match &self.folder {
            Some(folder) => format!(
                "{} (pid {}, running in {})",
                self.name,
                self.pid,
                folder.display()
            ),
            None => format!("{} (pid {})", self.name, self.pid),
        }
    }
}

/// Who listens on `port` (on any address), if this user can see it.
pub(crate) fn port_holder(port: u16) -> Option<PortHolder> {
    let listeners = listeners::get_all().ok()?;
    let listener = listeners.into_iter().find(|listener| {
        listener.protocol == listeners::Protocol::TCP
            && listener.state == listeners::SocketState::Listen
            && listener.socket.port() == port
    })?;
    let pid = listener.process.pid;
    Some(PortHolder {
        pid,
        name: listener.process.name,
        folder: std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
    })
}

/// Whether a process listens on `port`: binding it on the loopback address fails then, also
/// for a listener on every address (DynamoDB Local's).
fn port_taken(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// The ports a stack started with `args` listens on, and what listens on each.
pub(crate) fn ports_needed(args: &UpArgs) -> Vec<(u16, &'static str, &'static str)> {
    let mut needed = vec![
        (args.dynamodb_port, "DynamoDB Local", "--dynamodb-port"),
        (args.port, "the gateway", "--port"),
    ];
    if args.store.mode == StoreMode::Faithful {
        needed.push((
            args.faithful_port(),
            "dynamodb-faithful (DynamoDB Local's port + 1)",
            "--dynamodb-port",
        ));
    }
    needed
}

/// Refuses when any port in `needed` is taken, naming what holds each and how to stop it.
fn refuse_taken_ports(needed: &[(u16, &str, &str)]) -> Result<()> {
    let taken: Vec<String> = needed
        .iter()
        .filter(|(port, _, _)| port_taken(*port))
        .map(|(port, what, flag)| {
            let holder = match port_holder(*port) {
                Some(holder) => format!("held by {}: {}", holder.describe(), holder.how_to_stop()),
                None => "held by a process this user cannot see".to_owned(),
            };
            format!(
                "  port {port} (for {what}) is {holder}; or start this stack elsewhere with {flag}"
            )
        })
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    bail!(
        "the local stack cannot start: ports it needs are taken\n{}",
        taken.join("\n")
    )
}

/// What `start` has started so far. Dropped before [`Starting::done`] (an error on the way),
/// it stops them again, newest first, and removes the state file: a failed start leaves no
/// half-started stack behind.
#[derive(Default)]
struct Starting {
    started: Vec<Started>,
    state_file: Option<PathBuf>,
}

enum Started {
    Process(u32),
    /// A process group of its own and everything it started (the gateway and the functions).
    Group(u32),
}

impl Starting {
    fn push(&mut self, started: Started) {
        self.started.push(started);
    }

    /// The stack is up: nothing to undo.
    fn done(mut self) {
        self.started.clear();
        self.state_file = None;
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if !self.started.is_empty() {
            eprintln!("Stopping what this start had started ...");
        }
        for started in self.started.drain(..).rev() {
            match started {
                Started::Process(pid) => {
                    process::signal(pid, Signal::SIGTERM);
                    if !process::wait_gone(pid, Duration::from_secs(10)) {
                        process::signal(pid, Signal::SIGKILL);
                        process::wait_gone(pid, Duration::from_secs(5));
                    }
                }
                Started::Group(pgid) => stop_functions(pgid),
            }
        }
        if let Some(file) = self.state_file.take() {
            let _ = std::fs::remove_file(file);
        }
    }
}

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
fn start_faithful(
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
/// port's state file). The caller stops it with `stop`. On any failure nothing it started is
/// left running.
pub(crate) fn start(args: &UpArgs) -> Result<StackState> {
    if let Some(state) = read_state_at(args.port) {
        bail!(
            "the local stack is already running at {} (stop it with `cargo xtask down`)",
            state.base_url
        );
    }
    let needed = ports_needed(args);
    // Before the minutes of installing and building, and again before anything starts.
    refuse_taken_ports(&needed)?;
    let installed = install::for_stack()?;
    eprintln!("Building the functions (profile local) ...");
    build_functions()?;
    crate::gateway::ensure()?;
    refuse_taken_ports(&needed)?;

    let mut starting = Starting::default();
    eprintln!(
        "Starting DynamoDB Local on 127.0.0.1:{} ...",
        args.dynamodb_port
    );
    let log_dir = log_dir_for(args.port);
    std::fs::create_dir_all(&log_dir)?;
    let dynamodb = testkit::DynamoDbLocal::start(
        &installed.dynamodb_dir,
        args.dynamodb_port,
        None,
        Some(&log_dir.join("dynamodb.log")),
        false,
    )?;
    let dynamodb_endpoint = dynamodb.endpoint();
    let dynamodb_pid = dynamodb.pid();
    // The stack outlives this process: `stop` ends DynamoDB Local by its pid.
    std::mem::forget(dynamodb);
    starting.push(Started::Process(dynamodb_pid));
    wait_for_listener(
        args.dynamodb_port,
        dynamodb_pid,
        "DynamoDB Local",
        Duration::from_secs(10),
    )?;

    let summary = data::reset_and_seed(&dynamodb_endpoint, TABLE_NAME, &args.seed)?;
    eprintln!(
        "Seeded {} users ({} KRW each) and {} products.",
        summary.users, args.seed.balance, summary.products
    );
    let function_log = log_dir.join("functions.log");
    let _ = std::fs::remove_file(&function_log);
    let (store_endpoint, faithful_pid) = match args.store.mode {
        StoreMode::Direct => {
            eprintln!("The functions reach DynamoDB Local directly (--store direct).");
            (dynamodb_endpoint.clone(), None)
        }
        StoreMode::Faithful => {
            let port = args.faithful_port();
            eprintln!(
                "Starting dynamodb-faithful on 127.0.0.1:{port} ({} WCU/s and {} RCU/s per partition, hold +{} ms): the functions meet conflicts and throttling as on DynamoDB ...",
                args.store.partition_wcu, args.store.partition_rcu, args.store.hold_ms
            );
            let pid = start_faithful(
                port,
                &dynamodb_endpoint,
                &args.store,
                &log_dir,
                &function_log,
            )?;
            starting.push(Started::Process(pid));
            wait_for_listener(port, pid, "dynamodb-faithful", Duration::from_secs(10))?;
            (format!("http://127.0.0.1:{port}"), Some(pid))
        }
    };

    eprintln!(
        "Starting the functions on 127.0.0.1:{} (local gateway: {} instance(s) x {} concurrent invocations per function, queue {}) ...",
        args.port, args.concurrency, args.max_concurrency, args.queue_depth
    );
    let env = function_env(
        &store_endpoint,
        TABLE_NAME,
        &installed.jwt_secret,
        args.fault_injection_rate,
    );
    let watch_pgid = start_functions(args.port, args.serving(), &env, &function_log)?;
    starting.push(Started::Group(watch_pgid));
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
        store_endpoint: Some(store_endpoint),
        faithful_pid,
    };
    let state_file = state_path_for(args.port);
    std::fs::write(&state_file, serde_json::to_string_pretty(&state)?)?;
    starting.state_file = Some(state_file);
    wait_for_listener(
        args.port,
        watch_pgid,
        "the gateway",
        Duration::from_secs(120),
    )
    .and_then(|()| warm_up(&base_url))
    .with_context(|| {
        format!(
            "the functions did not come up; see {}",
            state.function_log.display()
        )
    })?;
    starting.done();
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
    let token = crate::token::sign(&state.jwt_secret, "user-1")?;
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
    stop_functions(state.watch_pgid);
    // dynamodb-faithful writes its summary (faithful.log, faithful-summary.json) on SIGTERM.
    if let Some(pid) = state.faithful_pid {
        process::signal(pid, Signal::SIGTERM);
        process::wait_gone(pid, Duration::from_secs(5));
    }
    process::signal(state.dynamodb_pid, Signal::SIGTERM);
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

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn a_taken_port_is_refused_with_what_holds_it_and_how_to_stop_it() {
        // GIVEN a port this test process listens on (on every address, as DynamoDB Local does)
        let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let free = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        // WHEN a stack that needs it and a free one checks its ports
        let needed = [
            (free_port, "DynamoDB Local", "--dynamodb-port"),
            (port, "the gateway", "--port"),
        ];
        let error = refuse_taken_ports(&needed).unwrap_err().to_string();
        // THEN only the taken one is named, with its holder (us) and the ways out
        assert!(
            error.contains(&format!("port {port} (for the gateway)")),
            "{error}"
        );
        assert!(!error.contains(&format!("port {free_port} ")), "{error}");
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        assert!(
            error.contains(&format!("kill {}", std::process::id())),
            "{error}"
        );
        assert!(error.contains("--port"), "{error}");
        let holder = port_holder(port).unwrap();
        assert_eq!(holder.pid, std::process::id());
        drop(listener);
        assert!(refuse_taken_ports(&needed).is_ok());
    }

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

    #[test]
    fn a_holder_in_another_clone_is_sent_there() {
        let holder = |folder: &str| PortHolder {
            pid: 4242,
            name: "java".to_owned(),
            folder: Some(PathBuf::from(folder)),
        };
        let dynamodb = holder("/tmp/fresh-1/.local/dynamodb/package/dist");
        assert_eq!(dynamodb.clone_folder(), Some(PathBuf::from("/tmp/fresh-1")));
        assert!(dynamodb
            .how_to_stop()
            .contains("`cargo xtask down` in /tmp/fresh-1"));
        assert!(dynamodb.how_to_stop().contains("`kill 4242`"));
        let gateway = holder("/tmp/fresh-2");
        assert_eq!(gateway.clone_folder(), Some(PathBuf::from("/tmp/fresh-2")));
        let here = holder(&paths::root().join(".local/dynamodb").display().to_string());
        assert!(here.how_to_stop().contains("a stack of this clone"));
    }

    #[test]
    fn a_start_that_fails_half_way_stops_what_it_started() {
        // GIVEN a start that has started a process and a process group with a child
        let state_file =
            std::env::temp_dir().join(format!("stack-test-{}.json", std::process::id()));
        std::fs::write(&state_file, "{}").unwrap();
        let process = Command::new("sleep").arg("30").spawn().unwrap();
        let group = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let (pid, pgid) = (process.id(), group.id());
        let mut starting = Starting::default();
        starting.push(Started::Process(pid));
        starting.push(Started::Group(pgid));
        starting.state_file = Some(state_file.clone());
        // WHEN it fails (is dropped before it is done)
        drop(starting);
        // THEN nothing of it runs and its state file is gone
        assert!(process::wait_gone(pid, Duration::from_secs(5)));
        assert!(process::wait_gone(pgid, Duration::from_secs(5)));
        assert!(!state_file.exists());
        // Reap them, so they do not linger as zombies of the test process.
        for mut child in [process, group] {
            let _ = child.wait();
        }
    }

    #[test]
    fn a_start_that_is_done_leaves_its_processes_running() {
        let mut process = Command::new("sleep").arg("30").spawn().unwrap();
        let mut starting = Starting::default();
        starting.push(Started::Process(process.id()));
        starting.done();
        assert!(process::alive(process.id()));
        process.kill().unwrap();
        process.wait().unwrap();
    }
}
