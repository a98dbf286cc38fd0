//! `cargo xtask drill store-outage`: DynamoDB Local frozen with SIGSTOP for the fault window,
//! then resumed with SIGCONT. Expected: only 503 STORE_UNAVAILABLE (with Retry-After) while the
//! store hangs, the breakers fail fast, and nothing waits past the function timeout.

use std::time::Duration;

use anyhow::{bail, Result};
use order_service::domain::Order;

use crate::monitor;
use crate::process::{self, Signal};

use super::observe::Probe;
use super::runner::{Description, Drill, Scenario};

pub(super) struct StoreOutage;

impl Scenario for StoreOutage {
    fn inject(&mut self, drill: &mut Drill) -> Result<()> {
        let pid = drill.state.dynamodb_pid;
        if !process::signal(pid, Signal::SIGSTOP) {
            bail!("cannot SIGSTOP DynamoDB Local (pid {pid})");
        }
        drill.java_stopped = true;
        drill.inject(format!(
            "DynamoDB Local (java, pid {pid}) frozen with SIGSTOP"
        ));
        drill.observe_for(Duration::from_secs(drill.options.fault_seconds), "outage")?;
        if !process::signal(pid, Signal::SIGCONT) {
            bail!("cannot SIGCONT DynamoDB Local (pid {pid})");
        }
        drill.java_stopped = false;
        drill.mitigate(format!(
            "DynamoDB Local resumed with SIGCONT after {} s",
            drill.options.fault_seconds
        ));
        Ok(())
    }

    fn expected_alarms(&self) -> &'static [&'static str] {
        &["api-5xx-rate"]
    }

    fn verify(&self, drill: &mut Drill, _orders: &[Order]) {
        let unavailable = drill.findings.fault_window.store_unavailable;
        let fast_failed = drill.findings.fault_window.fast_store_unavailable;
        drill.check_only_5xx(
            "only 503 STORE_UNAVAILABLE during the outage (any 500 fails)",
            &["503 STORE_UNAVAILABLE"],
            unavailable > 0,
            format!(
                "{unavailable} x 503 STORE_UNAVAILABLE ({fast_failed} fast-failed by the breaker in < {} ms)",
                monitor::FAST_FAIL_MS
            ),
        );
        retry_after_check(drill);
        drill.hang_checks();
    }

    fn describe(&self, drill: &Drill) -> Description {
        let window = &drill.findings.fault_window;
        Description {
            injects: format!("DynamoDB Local frozen (SIGSTOP) for {} s, then resumed (SIGCONT)", drill.options.fault_seconds),
            root_cause: "Known by construction: the store stopped answering. TCP connections stay open, so every store call \
                 waits for the SDK attempt timeout (1 s, 3 attempts, 3 s per operation) and ends as STORE_UNAVAILABLE; \
                 each instance's circuit breaker opens after 5 consecutive failures and answers 503 with Retry-After at \
                 once for 2 s, then lets one call probe the store."
                .to_owned(),
            trigger: format!("`cargo xtask drill store-outage`: `kill -STOP <java pid>` at T0, `kill -CONT` {} s later.", drill.options.fault_seconds),
            resolution: format!(
                "SIGCONT; the breakers close on their first successful call. {} x 503 STORE_UNAVAILABLE in the fault window, \
                 {} of them fast-failed by the breaker.",
                window.store_unavailable, window.fast_store_unavailable
            ),
        }
    }
}

fn retry_after_check(drill: &mut Drill) {
    let unavailable: Vec<&Probe> = drill
        .probes
        .iter()
        .filter(|probe| probe.result.status == 503)
        .collect();
    let with_header = unavailable
        .iter()
        .filter(|probe| probe.result.header("retry-after").is_some())
        .count();
    drill.check(
        "503s carry Retry-After (canary)",
        !unavailable.is_empty() && with_header == unavailable.len(),
        format!(
            "{with_header} of {} canary 503s had Retry-After",
            unavailable.len()
        ),
    );
}
