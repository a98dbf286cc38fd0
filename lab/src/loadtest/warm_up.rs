//! What runs before a measured window: the warm-up (of the whole path through k6 before a load
//! or soak run, of DynamoDB Local through store journeys before a stress or spike run) and the
//! probe of the store's own limit, so that a run's figures can be stated against it.

use anyhow::Result;
use serde_json::Value;

use super::k6_command::{run_k6, K6Run};
use super::{Args, Scenario};
use crate::state::StackState;

/// The longest warm-up of DynamoDB Local's JVM before a measured window: its first seconds
/// under load run interpreted code, slow enough to queue every request behind them (p95
/// 0.8-1.5 s over the first 15-25 s of a cold run).
pub(super) const WARM_UP_SECONDS: u64 = 90;
/// The shortest warm-up, and the window whose throughput tells when the JVM has settled.
const WARM_UP_MIN_SECONDS: u64 = 30;
const WARM_UP_WINDOW_SECONDS: u64 = 5;
/// Concurrency of the warm-up journeys.
const WARM_UP_CONCURRENCY: u32 = 8;
/// The closed-loop concurrencies and seconds of the store-limit probe before a stress run.
pub(super) const STORE_LIMIT_LEVELS: [u32; 2] = [16, 32];
pub(super) const STORE_LIMIT_SECONDS: u64 = 15;

/// What ran before the measured window, for the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preamble {
    pub warm_up: Option<String>,
    /// The store's own limit measured in this run: API requests/s (DynamoDB operations of the
    /// same journeys issued straight through the store crate).
    pub store_limit: Option<f64>,
}

/// Stress and spike warm DynamoDB Local with store journeys from this process (beside the
/// store-limit probe, which needs the same optimised client).
pub(super) fn warms_up(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Stress | Scenario::Spike)
}

/// Load and soak (and so the demo) warm the whole path they measure: the gateway, the
/// functions and DynamoDB Local, with the run's own journeys at its own rate, until steady.
pub(super) fn warms_whole_path(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Load | Scenario::Soak)
}

/// One window of the whole-path warm-up: long enough for a p95 of about 2,000 requests at
/// 200 req/s, short enough to stop soon after the path has settled.
const PATH_WARM_UP_WINDOW: &str = "10s";
pub(super) const PATH_WARM_UP_WINDOW_SECONDS: u64 = 10;
/// The path is steady once this many windows in a row had no failures, a p95 under the run's
/// gate, and p95s within `PATH_WARM_UP_SPREAD` of each other (the largest at most that much
/// above the smallest): not one window that dipped, but a level held for 30 s. (At 1.25 a busy
/// machine's windows of 9.4-13.7 ms, all far under the gate, kept a warm-up going for its
/// full 3 minutes.) A level above
/// the gate is not steady yet: a cold DynamoDB Local holds 55-80 ms for a minute before its
/// compiled code takes over and p95 falls to 9-10 ms (measured, 2026-12-06).
const PATH_WARM_UP_STEADY_WINDOWS: usize = 3;
const PATH_WARM_UP_SPREAD: f64 = 1.5;
/// The longest whole-path warm-up; a path that has not settled by then is measured anyway,
/// and the report says so.
pub(super) const PATH_WARM_UP_MAX_WINDOWS: usize = 18;
/// The k6 scenarios' p95 gate when `P95_MS` does not set another (k6/lib/config.js).
const DEFAULT_P95_GATE_MS: f64 = 25.0;

/// One warm-up window's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WarmUpWindow {
    pub p95_ms: f64,
    pub requests_per_second: f64,
    pub failed: f64,
}

/// Whether the last windows show a path steady under `gate_ms` (see
/// `PATH_WARM_UP_STEADY_WINDOWS`).
pub(crate) fn steady(windows: &[WarmUpWindow], gate_ms: f64) -> bool {
    if windows.len() < PATH_WARM_UP_STEADY_WINDOWS {
        return false;
    }
    let last = &windows[windows.len() - PATH_WARM_UP_STEADY_WINDOWS..];
    let lowest = last
        .iter()
        .map(|window| window.p95_ms)
        .fold(f64::INFINITY, f64::min);
    let highest = last.iter().map(|window| window.p95_ms).fold(0.0, f64::max);
    last.iter().all(|window| window.failed == 0.0)
        && highest < gate_ms
        && highest <= PATH_WARM_UP_SPREAD * lowest
}

/// The run's p95 gate in ms: its `P95_MS` (`--env P95_MS=...`), else k6's default.
fn p95_gate_ms(args: &Args) -> f64 {
    args.extra_env
        .iter()
        .find(|(name, _)| name == "P95_MS")
        .and_then(|(_, value)| value.parse::<f64>().ok())
        .unwrap_or(DEFAULT_P95_GATE_MS)
}

pub(super) fn measures_store_limit(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Stress | Scenario::Spike)
}

/// Warms the path up (the whole of it through k6 before a load or soak run, DynamoDB Local
/// with store journeys before a stress or spike run) and, before a stress or spike run,
/// measures the store's own limit, so that the run's figures can be stated against it.
pub(super) fn preamble(run: &K6Run, state: &StackState) -> Result<Preamble> {
    let scenario = run.args.scenario;
    let mut preamble = Preamble::default();
    if warms_whole_path(scenario) {
        preamble.warm_up = Some(warm_up_whole_path(run)?);
    }
    if warms_up(scenario) {
        eprintln!(
            "Warming DynamoDB Local up (keyed store journeys in {WARM_UP_WINDOW_SECONDS} s windows until throughput stops climbing) ..."
        );
        // A cold JVM interprets, then compiles what runs often: throughput climbs for a while.
        // Warm until a window is no more than 5 % faster than the one before (at least 30 s,
        // at most 90 s): throughput has stopped climbing.
        // Keyed, as k6's journeys are, so the claim and answer writes are compiled too.
        let mut windows: Vec<f64> = Vec::new();
        loop {
            let (ops, _) = crate::journeys::raw_level(
                state,
                &state.dynamodb_endpoint,
                WARM_UP_CONCURRENCY,
                WARM_UP_WINDOW_SECONDS,
                true,
            )?;
            windows.push(ops);
            let elapsed = windows.len() as u64 * WARM_UP_WINDOW_SECONDS;
            let settled = windows.len() >= 2 && {
                let (last, before) = (windows[windows.len() - 1], windows[windows.len() - 2]);
                last <= 1.05 * before.max(1.0)
            };
            if (settled && elapsed >= WARM_UP_MIN_SECONDS) || elapsed >= WARM_UP_SECONDS {
                break;
            }
        }
        let rates: Vec<String> = windows.iter().map(|ops| format!("{ops:.0}")).collect();
        preamble.warm_up = Some(format!(
            "DynamoDB Local was warmed before the measured window: create -> pay -> get journeys with Idempotency-Keys \
             straight through the store crate at concurrency {WARM_UP_CONCURRENCY}, in {WARM_UP_WINDOW_SECONDS} s windows until one was no more than 5 % faster than the one before \
             ({} s; operations/s per window: {}); those orders are in the audit.",
            windows.len() as u64 * WARM_UP_WINDOW_SECONDS,
            rates.join(", ")
        ));
    }
    if measures_store_limit(scenario) {
        let mut best: f64 = 0.0;
        for concurrency in STORE_LIMIT_LEVELS {
            // Keyed, as the k6 journeys are: the limit counts the same DynamoDB work.
            let (ops, _) = crate::journeys::raw_level(
                state,
                &state.dynamodb_endpoint,
                concurrency,
                STORE_LIMIT_SECONDS,
                true,
            )?;
            eprintln!("Store limit probe c={concurrency}: {ops:.0} operations/s");
            best = best.max(ops);
        }
        preamble.store_limit = Some(best);
    }
    Ok(preamble)
}

/// Runs the scenario's own journeys at its own rate through the gateway in 10 s windows
/// (separate k6 runs whose figures stay out of the measured run) until the path is steady.
/// Returns the report's note on it.
fn warm_up_whole_path(run: &K6Run) -> Result<String> {
    let rate = run.args.rate.unwrap_or(200);
    let gate_ms = p95_gate_ms(run.args);
    eprintln!(
        "Warming the whole path up (gateway, functions, DynamoDB Local) with the run's journeys at {rate} req/s, \
         in {PATH_WARM_UP_WINDOW} windows until {PATH_WARM_UP_STEADY_WINDOWS} in a row agree under the p95 gate of {gate_ms} ms ..."
    );
    let mut windows: Vec<WarmUpWindow> = Vec::new();
    while windows.len() < PATH_WARM_UP_MAX_WINDOWS && !steady(&windows, gate_ms) {
        let dir = run
            .report_dir
            .join("warm-up")
            .join(format!("window-{}", windows.len() + 1));
        std::fs::create_dir_all(&dir)?;
        let window_args = Args {
            scenario: Scenario::Load,
            rate: Some(rate),
            duration: Some(PATH_WARM_UP_WINDOW.to_owned()),
            ..run.args.clone()
        };
        // Its thresholds may fail (that is what a cold path does): only its figures count.
        run_k6(&K6Run {
            args: &window_args,
            report_dir: &dir,
            announce: false,
            ..*run
        })?;
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
        let figure = |metric: &str, field: &str| {
            crate::k6::summary_value(&summary, metric, field).unwrap_or(0.0)
        };
        let window = WarmUpWindow {
            p95_ms: figure("http_req_duration", "p(95)"),
            requests_per_second: figure("http_reqs", "rate"),
            failed: figure("http_req_failed", "passes"),
        };
        eprintln!(
            "  warm-up window {}: {:.0} req/s, p95 {:.1} ms, {} failed",
            windows.len() + 1,
            window.requests_per_second,
            window.p95_ms,
            window.failed
        );
        windows.push(window);
    }
    let settled = steady(&windows, gate_ms);
    let p95s: Vec<String> = windows
        .iter()
        .map(|window| format!("{:.1}", window.p95_ms))
        .collect();
    Ok(format!(
        "The whole path (gateway, functions, DynamoDB Local) was warmed before the measured window with this run's \
         journeys at {rate} req/s, in {PATH_WARM_UP_WINDOW_SECONDS} s windows until {PATH_WARM_UP_STEADY_WINDOWS} in a row had no failures and p95s \
         under the gate ({gate_ms} ms) within {:.0} % of each other: {} after {} s (p95 ms per window: {}); those requests \
         are not in the figures below, their orders are in the audit.",
        (PATH_WARM_UP_SPREAD - 1.0) * 100.0,
        if settled { "steady" } else { "NOT steady (measured anyway)" },
        windows.len() as u64 * PATH_WARM_UP_WINDOW_SECONDS,
        p95s.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::RemoteArgs;

    fn windows(p95s: &[f64]) -> Vec<WarmUpWindow> {
        p95s.iter()
            .map(|p95_ms| WarmUpWindow {
                p95_ms: *p95_ms,
                requests_per_second: 200.0,
                failed: 0.0,
            })
            .collect()
    }

    #[test]
    fn the_path_is_steady_after_three_agreeing_windows_under_the_gate() {
        // GIVEN the windows of a cold start measured on 2026-12-06
        let cold = windows(&[778.0, 115.4, 58.4, 77.0, 68.2, 56.4, 10.1, 8.8, 8.7]);
        // THEN it is steady only once the last three agree under the gate
        assert!(steady(&cold, 25.0));
        assert!(!steady(&cold[..8], 25.0), "two windows are not a level");
        // A plateau above the gate is not steady: the JVM had not compiled its hot code yet.
        assert!(!steady(&windows(&[62.0, 58.0, 56.0]), 25.0));
        // One window that dipped does not make a level, nor does a p95 still falling fast.
        assert!(!steady(&windows(&[30.0, 12.0, 18.0]), 25.0));
        assert!(!steady(&windows(&[20.0, 12.0, 9.0]), 25.0));
        // A busy machine's noise under the gate is a level (measured on 2026-12-06).
        assert!(steady(&windows(&[9.8, 13.7, 13.1]), 25.0));
        let mut failing = windows(&[9.0, 9.5, 9.2]);
        assert!(steady(&failing, 25.0));
        failing[1].failed = 1.0;
        assert!(
            !steady(&failing, 25.0),
            "a window with failures is not steady"
        );
    }

    #[test]
    fn the_gate_is_the_runs_own() {
        let mut args = Args {
            scenario: Scenario::Load,
            rate: Some(200),
            duration: Some("60s".to_owned()),
            base_url: None,
            remote: RemoteArgs::default(),
            extra_env: Vec::new(),
            keep_stack: false,
            seed: None,
            profile: None,
        };
        assert_eq!(p95_gate_ms(&args), 25.0);
        args.extra_env.push(("P95_MS".to_owned(), "40".to_owned()));
        assert_eq!(p95_gate_ms(&args), 40.0);
    }
}
