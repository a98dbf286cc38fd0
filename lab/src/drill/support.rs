//! Plumbing of the drills: Ctrl-C handling, the function instances in the process table, HTTP
//! calls through the lab's client, and k6 runs in the background.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::http::Reach;
use crate::process::{self, Signal};
use crate::{paths, stack};

// ------------------------------------------------------------------------------------------
// Ctrl-C
// ------------------------------------------------------------------------------------------

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Turns Ctrl-C into a flag the drill checks between steps, so that it still restores the
/// fault (SIGCONT, delay 0, rollback) and stops what it started.
pub(super) fn install_interrupt_handler() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("second Ctrl-C: exiting without cleaning up");
                    std::process::exit(130);
                }
                eprintln!("Ctrl-C: restoring the fault and stopping the drill (Ctrl-C again to quit at once)");
            }
        });
    });
}

pub(super) fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Processes
// ------------------------------------------------------------------------------------------

/// A running function instance (a `target/local/<function>` process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Instance {
    pub pid: u32,
    pub function: String,
}

/// The function instances whose parent is `parent` (cargo lambda watch, or this process for
/// the replacements a drill starts).
pub(super) fn instances_of(parent: u32) -> Vec<Instance> {
    let Ok(table) = process::Table::read(&[]) else {
        return Vec::new();
    };
    table
        .iter()
        .filter(|process| process.parent == Some(parent))
        .filter_map(|process| {
            // The kernel's name of the process is the binary's: the function's, whatever
            // profile built it (target/local/<function> for the stack).
            let function = stack::FUNCTIONS
                .iter()
                .find(|function| process.name == **function)?;
            Some(Instance {
                pid: process.pid,
                function: (*function).to_owned(),
            })
        })
        .collect()
}

pub(super) fn count_by_function(instances: &[Instance]) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = stack::FUNCTIONS
        .iter()
        .map(|function| ((*function).to_owned(), 0))
        .collect();
    for instance in instances {
        *counts.entry(instance.function.clone()).or_default() += 1;
    }
    counts
}

// ------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub(super) struct HttpResult {
    /// 0 when no answer arrived (timeout, refused).
    pub status: u16,
    pub seconds: f64,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timed_out: bool,
}

impl HttpResult {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// One HTTP call to the local stack through the lab's client, whose timeout is a real
/// client-side one (the call is abandoned, as a client with that timeout would).
pub(super) fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
    idempotency_key: Option<&str>,
    timeout: Duration,
) -> HttpResult {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("authorization".to_owned(), format!("Bearer {token}")));
    }
    if let Some(key) = idempotency_key {
        headers.push(("idempotency-key".to_owned(), key.to_owned()));
    }
    if body.is_some() {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    let started = Instant::now();
    let answer = crate::http::request(
        Reach::Loopback,
        method,
        url,
        &headers,
        body.unwrap_or_default().as_bytes(),
        timeout,
    );
    let seconds = started.elapsed().as_secs_f64();
    match answer {
        Ok(response) => HttpResult {
            status: response.status,
            seconds,
            headers: response.headers,
            body: String::from_utf8_lossy(&response.body).into_owned(),
            timed_out: false,
        },
        Err(error) => HttpResult {
            seconds,
            timed_out: crate::http::timed_out(&error),
            ..HttpResult::default()
        },
    }
}

// ------------------------------------------------------------------------------------------
// k6
// ------------------------------------------------------------------------------------------

/// A k6 scenario running in the background, its stdout (ledger lines, summary) in a file.
#[derive(Debug)]
pub(super) struct K6Run {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub report_dir: PathBuf,
    pub exit_code: Option<i32>,
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
}

impl K6Run {
    /// Starts `k6 run` on `script` (relative to the workspace root) with `env`.
    pub(super) fn spawn(
        name: &str,
        script: &str,
        env: &[(String, String)],
        report_dir: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(report_dir)?;
        let stdout = report_dir.join("k6-stdout.txt");
        let stderr = report_dir.join("k6-stderr.txt");
        let mut command = Command::new(crate::install::k6());
        command
            .args([
                "run",
                "-q",
                "--no-usage-report",
                "--log-output=stdout",
                "--log-format=raw",
            ])
            .arg(script)
            .current_dir(paths::root())
            .env("K6_NO_USAGE_REPORT", "true")
            .env("REPORT_DIR", report_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            // Its own process group: a Ctrl-C on the drill must not kill k6 before the drill
            // has restored the fault; the drill stops it.
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .context("cannot start k6 (run `cargo xtask install`)")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            report_dir: report_dir.to_owned(),
            exit_code: None,
            started_ms: crate::monitor::now_ms(),
            stopped_ms: None,
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn running(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit_code = status.code();
                if self.stopped_ms.is_none() {
                    self.stopped_ms = Some(crate::monitor::now_ms());
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Waits for k6 to end by itself, up to `timeout`.
    pub(super) fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        !self.running()
    }

    /// Stops k6 like Ctrl-C does (it still writes its summary), then hard after `timeout`.
    pub(super) fn stop(&mut self, timeout: Duration) {
        if !self.running() {
            return;
        }
        self.stopped_ms = Some(crate::monitor::now_ms());
        process::signal(self.pid(), Signal::SIGINT);
        if !self.wait(timeout) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub(super) fn summary(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.report_dir.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The `LEDGER {json}` lines printed so far.
    pub(super) fn ledger(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("LEDGER "))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }
}

impl Drop for K6Run {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `summary.metrics[metric].values[field]`.
pub(super) fn metric(summary: &Value, metric: &str, field: &str) -> Option<f64> {
    summary
        .get("metrics")?
        .get(metric)?
        .get("values")?
        .get(field)?
        .as_f64()
}

/// `unexpected_errors{code:X}` counts above zero.
pub(super) fn unexpected_by_code(summary: &Value) -> BTreeMap<String, u64> {
    let mut codes = BTreeMap::new();
    if let Some(metrics) = summary.get("metrics").and_then(Value::as_object) {
        for (key, value) in metrics {
            if let Some(code) = key
                .strip_prefix("unexpected_errors{code:")
                .and_then(|rest| rest.strip_suffix('}'))
            {
                let count = value
                    .get("values")
                    .and_then(|values| values.get("count"))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0) as u64;
                if count > 0 {
                    codes.insert(code.to_owned(), count);
                }
            }
        }
    }
    codes
}
