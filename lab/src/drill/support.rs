//! Plumbing of the drills: Ctrl-C handling, the function instances in the process table, HTTP
//! calls through the lab's client, and k6 runs in the background.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use order_service::app::FUNCTIONS;
use serde_json::Value;

use crate::http::{HttpResponse, Request};
use crate::process;

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
            let function = FUNCTIONS
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
    let mut counts: BTreeMap<String, usize> = FUNCTIONS
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

/// One HTTP call to the local stack through the lab's client, whose timeout is a real
/// client-side one (the call is abandoned, as a client with that timeout would).
pub(super) fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
    idempotency_key: Option<&str>,
    timeout: Duration,
) -> HttpResponse {
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
    Request::new(method, url, timeout)
        .headers(&headers)
        .body(body.unwrap_or_default().as_bytes())
        .attempt()
}

// ------------------------------------------------------------------------------------------
// k6
// ------------------------------------------------------------------------------------------

pub(crate) use crate::k6::K6Run;

/// `summary.metrics[metric].values[field]`.
pub(super) use crate::k6::summary_value as metric;

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
