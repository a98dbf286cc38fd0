//! The running local stack's state file (`.local/stack.json`, `stack-<port>.json` for a stack
//! on another port): where DynamoDB Local, the store proxy and the gateway listen, their pids,
//! the table and the development key. `stack` writes it when the stack is up and removes it when
//! it stops; every command that reaches the local stack reads it here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::paths;
use crate::process;

/// The local stack's table.
pub(crate) const TABLE_NAME: &str = "orders-local";

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
    /// What the functions reach: `dynamodb-faithful`'s endpoint, or DynamoDB Local's with
    /// `--store direct` (seeding and the audit always go to DynamoDB Local itself).
    #[serde(default)]
    pub store_endpoint: Option<String>,
    /// `dynamodb-faithful`'s pid, when it runs.
    #[serde(default)]
    pub faithful_pid: Option<u32>,
}

impl StackState {
    /// The endpoint the functions use.
    pub(crate) fn functions_store(&self) -> &str {
        self.store_endpoint
            .as_deref()
            .unwrap_or(&self.dynamodb_endpoint)
    }

    /// `dynamodb-faithful`'s endpoint, when the stack runs it.
    pub(crate) fn faithful_endpoint(&self) -> Option<&str> {
        self.faithful_pid.and(self.store_endpoint.as_deref())
    }
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

/// The state file of the stack on `port`: the default port's is `.local/stack.json`, so
/// that `down`, `seed` and `audit` find it without flags; other ports (drills) get their own.
pub(crate) fn state_path_for(port: u16) -> PathBuf {
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
