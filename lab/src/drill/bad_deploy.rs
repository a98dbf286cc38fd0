//! `cargo xtask drill bad-deploy`: the functions restart as a release that fails a fraction of
//! requests, and roll back on the first of the canary's rollback alarms (a function's own
//! `function-5xx-rate`, the API-wide `api-5xx-rate`), as CodeDeploy does with a
//! DeploymentPreference's alarms. Expected: the failures are exactly the injected ones, and the
//! rollback removes them.

use std::time::Duration;

use anyhow::Result;
use order_service::domain::Order;

use crate::clock::{format_ms, now_ms};

use super::runner::{Description, Drill, Scenario};
use super::support;

pub(super) struct BadDeploy;

/// The alarms in every function's DeploymentPreference that see a release answering 5xx
/// (template.yaml; its own `lambda-errors` alarm counts crashes only).
const ROLLBACK_ALARMS: [&str; 2] = ["function-5xx-rate", "api-5xx-rate"];

impl Scenario for BadDeploy {
    fn inject(&mut self, drill: &mut Drill) -> Result<()> {
        let rate = drill.options.fault_rate;
        let mut env = drill.env.clone();
        for (key, value) in &mut env {
            if key == "FAULT_INJECTION_RATE" {
                *value = rate.to_string();
            }
        }
        let injected = drill.inject(format!(
            "\"deploy\": the functions restart with FAULT_INJECTION_RATE={rate}"
        ));
        drill.restart_functions(env, "after the deploy")?;
        drill.timeline(
            now_ms(),
            "bad release serving (functions answer again)",
            "drill",
        );
        // The rollback is automatic: on the alarm, like a CodeDeploy canary alarm.
        let deadline = injected + drill.options.recovery_timeout_seconds as i64 * 1_000;
        let mut next_progress = now_ms() + 5_000;
        let alert = loop {
            support::check_interrupt()?;
            let first = drill.observer()?.with(|observed| {
                ROLLBACK_ALARMS
                    .iter()
                    .filter_map(|alarm| observed.alert_of(alarm, injected))
                    .min_by_key(|alert| alert.at_ms)
                    .cloned()
            });
            if let Some(alert) = first {
                break Some(alert);
            }
            if now_ms() > deadline {
                break None;
            }
            if now_ms() >= next_progress {
                drill.progress("bad-deploy");
                next_progress += 5_000;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        match &alert {
            Some(alert) => println!("  rollback triggered by {}", alert.line()),
            None => {
                drill.note("no rollback alarm within the recovery timeout: rolling back anyway")
            }
        }
        let rollback_started = now_ms();
        drill.timeline(
            rollback_started,
            "rollback started: restart with FAULT_INJECTION_RATE=0",
            "drill",
        );
        let mut env = drill.env.clone();
        for (key, value) in &mut env {
            if key == "FAULT_INJECTION_RATE" {
                *value = "0".to_owned();
            }
        }
        drill.restart_functions(env, "after the rollback")?;
        drill.mitigate(format!(
            "rollback done in {:.1} s (functions restarted with FAULT_INJECTION_RATE=0)",
            (now_ms() - rollback_started) as f64 / 1_000.0
        ));
        Ok(())
    }

    fn expected_alarms(&self) -> &'static [&'static str] {
        &ROLLBACK_ALARMS
    }

    fn verify(&self, drill: &mut Drill, _orders: &[Order]) {
        let window = drill.findings.fault_window.clone();
        let answered_500 = window
            .by_status
            .iter()
            .filter(|(key, _)| key.starts_with("500"))
            .map(|(_, count)| *count)
            .sum::<u64>();
        drill.check(
            "the failures are the injected ones (500 INTERNAL_ERROR, fault=true)",
            answered_500 == window.faults && window.faults > 0,
            format!(
                "{} faults injected, {answered_500} answers 500 in the fault window, {} requests in all ({:.1} % failed)",
                window.faults,
                window.requests,
                if window.requests > 0 { 100.0 * answered_500 as f64 / window.requests as f64 } else { 0.0 }
            ),
        );
        let after = match (drill.findings.mitigated, drill.observer()) {
            (Some(mitigated), Ok(observer)) => {
                let until = drill.findings.load_stopped.unwrap_or_else(now_ms) + 1_000;
                observer.with(|observed| observed.detector.window(mitigated, until).faults)
            }
            _ => 0,
        };
        drill.check(
            "the rollback removes the fault",
            after == 0,
            format!("{after} injected faults after the rollback"),
        );
        if let (Some(alert), Some(mitigated)) =
            (drill.findings.detected.clone(), drill.findings.mitigated)
        {
            drill.note(format!(
                "rollback path: ALERT at {} -> rollback done at {} ({:.1} s); the restarts refuse connections for a moment, \
                 which k6 counts as TRANSPORT errors (a local artefact: an alias shift on AWS has no gap)",
                format_ms(alert.at_ms),
                format_ms(mitigated),
                (mitigated - alert.at_ms) as f64 / 1_000.0
            ));
        }
    }

    fn describe(&self, drill: &Drill) -> Description {
        Description {
            injects: format!("a release failing {} % of requests (FAULT_INJECTION_RATE={})", drill.options.fault_rate * 100.0, drill.options.fault_rate),
            root_cause: "Known by construction: the new version answers a fraction of requests 500 INTERNAL_ERROR before doing \
                 any store work (the drill's stand-in for a bad release)."
                .to_owned(),
            trigger: "`cargo xtask drill bad-deploy`: the functions were restarted with FAULT_INJECTION_RATE > 0 (\"deploy\")."
                .to_owned(),
            resolution: "Automatic rollback on the first canary rollback alarm (function-5xx-rate or api-5xx-rate): restart with \
                 FAULT_INJECTION_RATE=0 (README R1/R2 on AWS)."
                .to_owned(),
        }
    }
}
