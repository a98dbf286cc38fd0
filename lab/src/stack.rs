//! The local stack: DynamoDB Local, the table and its seed, and the five functions served by
//! the local gateway (`local-gateway`: cargo-lambda's `watch` server with our patch, see
//! `gateway.rs`) on 127.0.0.1 with the routes of the workspace router table. The pids are kept
//! in `.local/stack.json`, so `down` (or Ctrl-C in the foreground) stops exactly what `up`
//! started.
//!
//! Starting is all or nothing: every port the stack needs is checked before anything is
//! installed, built or started (a port held by another process is refused with what holds it
//! and how to stop it), and a start that fails half-way stops what it had started. One more
//! process in the stack is one more entry in [`ports::ports_needed`] and one more
//! [`Starting::push`].
//!
//! `ports` checks the ports and waits for listeners; `functions` builds, configures, starts and
//! stops the functions, the gateway in front of them and the store proxy behind them.

mod functions;
mod ports;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::install;
use crate::process::{self, Signal};
use crate::seed;
use crate::seed_plan::SeedArgs;
use crate::state::{
    log_dir_for, read_state, read_state_at, state_path_for, Serving, StackState,
    DEFAULT_MAX_CONCURRENCY, DEFAULT_PORT, DEFAULT_QUEUE_DEPTH, TABLE_NAME,
};

pub(crate) use functions::{
    build_functions, function_env, probe_routes, start_functions, stop_functions,
};
use functions::{start_faithful, warm_up};
use ports::{ports_needed, refuse_taken_ports, wait_for_listener};

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

    let summary = seed::reset_and_seed(&dynamodb_endpoint, TABLE_NAME, &args.seed)?;
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
    use std::process::Command;

    use super::*;

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
