//! `cargo xtask drill function-crash`: kill -9 of function instances mid-load, two per round,
//! a few rounds 10 s apart; the drill replaces each dead instance as Lambda would. Expected: at
//! most one failed request per killed instance, and the instances back to full strength.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use order_service::domain::Order;
use serde_json::{json, Value};

use crate::clock::{format_ms, now_ms};
use crate::monitor;
use crate::paths;
use crate::process::{self, Signal};

use super::runner::{Description, Drill, Scenario};
use super::support::{self, instances_of};
use super::K6_HTTP_TIMEOUT;

/// The kills of the drill: when, which function, which pid.
#[derive(Debug, Default)]
pub(super) struct FunctionCrash {
    kills: Vec<(i64, String, u32)>,
}

impl Scenario for FunctionCrash {
    fn prepare(&mut self, drill: &mut Drill) -> Result<()> {
        let counts = support::count_by_function(&instances_of(drill.state.watch_pgid));
        drill.note(format!("instances before the crashes: {counts:?}"));
        Ok(())
    }

    fn inject(&mut self, drill: &mut Drill) -> Result<()> {
        let pairs = [
            ["create-order", "pay-order"],
            ["pay-order", "get-order"],
            ["get-order", "create-order"],
        ];
        let mut watch_replaced = 0;
        let mut drill_replaced = 0;
        let rounds = drill.options.kill_rounds.max(1);
        let spacing = Duration::from_secs(10);
        drill.inject(format!(
            "kill -9 of function instances: {rounds} rounds of 2 instances, 10 s apart"
        ));
        for round in 0..rounds {
            let round_started = now_ms();
            let before: BTreeSet<u32> = instances_of(drill.state.watch_pgid)
                .iter()
                .map(|instance| instance.pid)
                .collect();
            let mut killed = Vec::new();
            for function in pairs[round as usize % pairs.len()] {
                let candidates: Vec<support::Instance> = live_instances(drill)
                    .into_iter()
                    .filter(|instance| instance.function == function)
                    .collect();
                if candidates.len() < 2 {
                    drill.note(format!(
                        "round {}: only {} {function} instance(s) left, not killing the last",
                        round + 1,
                        candidates.len()
                    ));
                    continue;
                }
                let victim = candidates[fastrand::usize(..candidates.len())].clone();
                process::signal(victim.pid, Signal::SIGKILL);
                let at = now_ms();
                crash_line(drill, at, function, victim.pid)?;
                drill.timeline(
                    at,
                    format!("kill -9 {function} instance pid {}", victim.pid),
                    "drill",
                );
                self.kills.push((at, function.to_owned(), victim.pid));
                killed.push(victim);
            }
            // Give cargo lambda watch two seconds to replace them by itself.
            drill.observe_for(Duration::from_secs(2), "crash")?;
            for victim in killed {
                let respawned = instances_of(drill.state.watch_pgid)
                    .into_iter()
                    .any(|instance| {
                        instance.function == victim.function && !before.contains(&instance.pid)
                    });
                if respawned {
                    watch_replaced += 1;
                    continue;
                }
                let Some(template) = live_instances(drill)
                    .into_iter()
                    .find(|instance| instance.function == victim.function)
                else {
                    drill.note(format!(
                        "no live {} instance to copy the environment from",
                        victim.function
                    ));
                    continue;
                };
                drill_replaced += 1;
                let pid = replace_instance(drill, &victim.function, template.pid, drill_replaced)?;
                drill.timeline(
                    now_ms(),
                    format!("replacement {} instance started, pid {pid} (emulating Lambda; cargo lambda watch did not)", victim.function),
                    "drill",
                );
            }
            drill.progress("crash");
            if round + 1 < rounds {
                let next = round_started + spacing.as_millis() as i64;
                drill.observe_for(
                    Duration::from_millis((next - now_ms()).max(0) as u64),
                    "crash",
                )?;
            }
        }
        drill.observe_for(Duration::from_secs(1), "crash")?;
        let counts = support::count_by_function(&live_instances(drill));
        drill.mitigate(format!(
            "every killed instance replaced; instances per function now {counts:?}"
        ));
        drill.note(format!(
            "cargo lambda watch replaced {watch_replaced} of {} killed instances by itself; the drill replaced {drill_replaced} \
             (it copies a live instance's environment, as Lambda would start a new execution environment)",
            self.kills.len()
        ));
        Ok(())
    }

    fn expected_alarms(&self) -> &'static [&'static str] {
        &["lambda-errors"]
    }

    fn verify(&self, drill: &mut Drill, _orders: &[Order]) {
        let kills = self.kills.len() as u64;
        let summary = drill.findings.k6.clone().unwrap_or(Value::Null);
        let k6_failed =
            support::metric(&summary, "http_req_failed", "passes").unwrap_or(0.0) as u64;
        let by_code = support::unexpected_by_code(&summary);
        let log_5xx = drill.findings.whole_run.server_errors;
        drill.check(
            "in-flight failures at most one per killed instance",
            k6_failed + log_5xx <= kills,
            format!(
                "{kills} instances killed; k6 saw {k6_failed} failed requests {by_code:?}; the function log has {log_5xx} answers >= 500"
            ),
        );
        if by_code.get("TRANSPORT").copied().unwrap_or(0) > 0 {
            drill.note(format!(
                "an invocation cut off by a kill never gets an answer from cargo lambda watch: the client waits \
                 until its own timeout ({K6_HTTP_TIMEOUT} for k6), where API Gateway would answer 502 at once"
            ));
        }
        let counts = support::count_by_function(&live_instances(drill));
        let full = counts
            .values()
            .all(|count| *count >= drill.state.concurrency as usize);
        drill.check(
            "instances are back to full strength",
            full,
            format!(
                "instances per function after the drill: {counts:?} (concurrency {})",
                drill.state.concurrency
            ),
        );
    }

    fn describe(&self, drill: &Drill) -> Description {
        Description {
            injects: format!("kill -9 of {} function instances in {} rounds", self.kills.len(), drill.options.kill_rounds),
            root_cause: "Known by construction: execution environments die (SIGKILL) in the middle of the load. A request an \
                 instance was handling is cut off: its transaction committed entirely or not at all."
                .to_owned(),
            trigger: "`cargo xtask drill function-crash`: `kill -9` of `target/local/<function>` children of cargo lambda \
                 watch, two per round, 10 s apart."
                .to_owned(),
            resolution: "Each dead instance was replaced by a new one with the same environment (the drill emulates Lambda: cargo \
                 lambda watch does not restart killed instances)."
                .to_owned(),
        }
    }
}

/// Writes the platform's line for a dead instance into the function log (Lambda writes
/// `Runtime exited with error: signal: killed` into the function's log stream).
fn crash_line(drill: &Drill, at_ms: i64, function: &str, pid: u32) -> Result<()> {
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&drill.state.function_log)?;
    let line = json!({
        "timestamp": format_ms(at_ms),
        "level": "ERROR",
        "message": monitor::CRASH_MESSAGE,
        "function": function,
        "pid": pid,
        "signal": "SIGKILL",
        "source": "drill",
    });
    // One write(2) of the whole line, so the instances' own lines cannot interleave with it.
    log.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

/// Starts one more instance of `function` with the environment of a live one: what
/// Lambda does when an execution environment dies (cargo lambda watch does not).
fn replace_instance(
    drill: &mut Drill,
    function: &str,
    template_pid: u32,
    number: usize,
) -> Result<u32> {
    let mut env = process::environment_of(template_pid)?;
    for (key, value) in &mut env {
        if key == "AWS_LAMBDA_INSTANCE_ID" {
            *value = format!("drill-replacement-{number}");
        }
    }
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&drill.state.function_log)?;
    let child = Command::new(paths::function_binary(function))
        .env_clear()
        .envs(env)
        .current_dir(paths::root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start a replacement {function}"))?;
    let pid = child.id();
    drill.replacements.push(child);
    Ok(pid)
}

fn live_instances(drill: &Drill) -> Vec<support::Instance> {
    let mut all = instances_of(drill.state.watch_pgid);
    all.extend(instances_of(std::process::id()));
    all
}
