//! `cargo xtask loadtest <scenario>`: seeds the local stack for the run's size, runs a k6
//! scenario with the web dashboard exported, samples CPU and RSS of DynamoDB Local and the
//! function processes, audits the table, and writes `reports/<time>-<scenario>/` with
//! `summary.json`, `report.html` and `report.md`. `cargo xtask demo` is the main job.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::data::{self, SeedArgs};
use crate::resources::{ResourceSampler, ResourceSummary};
use crate::stack::{self, UpArgs};
use crate::state::{self, StackState};
use crate::target::{is_loopback_url, users_with_tokens, RemoteArgs};
use crate::{clock, paths, report};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Smoke,
    Load,
    Soak,
    Stress,
    Spike,
    FlashSale,
    /// Closed-loop VUs at a fixed concurrency (used by `cargo xtask bench`).
    Bench,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Smoke => "smoke",
            Scenario::Load => "load",
            Scenario::Soak => "soak",
            Scenario::Stress => "stress",
            Scenario::Spike => "spike",
            Scenario::FlashSale => "flash-sale",
            Scenario::Bench => "bench",
        }
    }

    fn default_duration(self) -> &'static str {
        match self {
            Scenario::Smoke => "20s",
            Scenario::Load => "10m",
            Scenario::Soak => "1h",
            _ => "",
        }
    }
}

/// Which defaults k6 runs with (k6/lib/config.js, `PROFILE`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The local stack: 200 req/s, p95 < 25 ms, no retries.
    Local,
    /// A deployed stage: half its `ApiThrottleRate` (50 req/s when unknown), p95 < 500 ms, two
    /// retries of a throttled or refused request.
    Stage,
}

/// The share of a stage's throttle (`ApiThrottleRate`) that a run offers: API Gateway's token
/// bucket refuses what arrives faster than the rate once the burst is spent, and k6's arrivals
/// are not perfectly even, so a run at the full rate would be throttled by its own jitter.
const STAGE_THROTTLE_SHARE: f64 = 0.5;
/// The template's default `ApiThrottleRate`, for a stage whose parameters are not known.
const DEFAULT_STAGE_THROTTLE: f64 = 100.0;

impl Profile {
    /// The stage profile for a run away from this machine's stack: a deployed stack, or any
    /// URL that is not on this machine.
    fn for_run(args: &Args, base_url: &str) -> Self {
        match args.profile {
            Some(profile) => profile,
            None if args.remote.stack.is_some() || !is_loopback_url(base_url) => Profile::Stage,
            None => Profile::Local,
        }
    }
}

/// The k6 variables of a profile. The stage profile sets `PROFILE=stage` (k6's stage defaults:
/// p95 < 500 ms, two retries) and, unless `--rate` says otherwise, the rate of the scenarios
/// that hold one: half the stage's throttle (smoke keeps its 20 req/s when that is lower).
fn profile_env(
    profile: Profile,
    scenario: Scenario,
    rate_given: bool,
    throttle: Option<f64>,
) -> Vec<(String, String)> {
    if profile == Profile::Local {
        return Vec::new();
    }
    let mut env = vec![("PROFILE".to_owned(), "stage".to_owned())];
    let rate = (throttle.unwrap_or(DEFAULT_STAGE_THROTTLE) * STAGE_THROTTLE_SHARE)
        .floor()
        .max(1.0);
    let rate_variable = match scenario {
        Scenario::Load | Scenario::Soak => Some("RATE"),
        Scenario::Smoke if rate < 20.0 => Some("RATE"),
        Scenario::Spike => Some("BASE_RATE"),
        _ => None,
    };
    if let (Some(variable), false) = (rate_variable, rate_given) {
        env.push((variable.to_owned(), format!("{rate:.0}")));
    }
    env
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,
    /// Requests per second (load, soak, smoke) or the spike's baseline rate.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Run length, e.g. 60s, 10m (load, soak, smoke).
    #[arg(long)]
    pub duration: Option<String>,
    /// Run against this URL instead of the local stack (no seeding, no audit, no sampling;
    /// add --stack for those; with --stack it replaces the stack's ApiUrl, e.g. LocalStack's
    /// local address for the API).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Where a run away from the local stack goes, and with which tokens.
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// k6's defaults: `stage` (the default with --stack or a URL off this machine) runs at half
    /// the stack's ApiThrottleRate with p95 < 500 ms; `local` keeps the local stack's figures.
    #[arg(long, value_enum)]
    pub(crate) profile: Option<Profile>,
    /// Extra k6 variables, e.g. --env MAX_RATE=800.
    #[arg(long = "env", value_parser = parse_pair)]
    pub extra_env: Vec<(String, String)>,
    /// Leave a stack that this command started running afterwards.
    #[arg(long)]
    pub keep_stack: bool,
    /// Seed exactly this instead of sizing the seed from the run.
    #[arg(skip)]
    pub(crate) seed: Option<SeedArgs>,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text}"))
}

/// Parses k6 durations like `90s`, `10m`, `1h`, `1m30s`, `500ms` (humantime's grammar, of which
/// k6's is a subset); a bare number is seconds. `None` for anything else, or zero.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text).ok()?,
    };
    (!parsed.is_zero()).then_some(parsed)
}

/// The longest warm-up of DynamoDB Local's JVM before a measured window: its first seconds
/// under load run interpreted code, slow enough to queue every request behind them (p95
/// 0.8-1.5 s over the first 15-25 s of a cold run).
const WARM_UP_SECONDS: u64 = 90;
/// The shortest warm-up, and the window whose throughput tells when the JVM has settled.
const WARM_UP_MIN_SECONDS: u64 = 30;
const WARM_UP_WINDOW_SECONDS: u64 = 5;
/// Concurrency of the warm-up journeys.
const WARM_UP_CONCURRENCY: u32 = 8;
/// The closed-loop concurrencies and seconds of the store-limit probe before a stress run.
const STORE_LIMIT_LEVELS: [u32; 2] = [16, 32];
const STORE_LIMIT_SECONDS: u64 = 15;
/// An upper bound on the store operations per second of the raw journeys, for sizing the seed.
const RAW_OPS_PER_SECOND_BOUND: f64 = 1_500.0;

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
fn warms_up(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Stress | Scenario::Spike)
}

/// Load and soak (and so the demo) warm the whole path they measure: the gateway, the
/// functions and DynamoDB Local, with the run's own journeys at its own rate, until steady.
fn warms_whole_path(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Load | Scenario::Soak)
}

/// One window of the whole-path warm-up: long enough for a p95 of about 2,000 requests at
/// 200 req/s, short enough to stop soon after the path has settled.
const PATH_WARM_UP_WINDOW: &str = "10s";
const PATH_WARM_UP_WINDOW_SECONDS: u64 = 10;
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
const PATH_WARM_UP_MAX_WINDOWS: usize = 18;
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

fn measures_store_limit(scenario: Scenario) -> bool {
    matches!(scenario, Scenario::Stress | Scenario::Spike)
}

/// Warms the path up (the whole of it through k6 before a load or soak run, DynamoDB Local
/// with store journeys before a stress or spike run) and, before a stress or spike run,
/// measures the store's own limit, so that the run's figures can be stated against it.
fn preamble(run: &K6Run, state: &StackState) -> Result<Preamble> {
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
            summary
                .pointer(&format!("/metrics/{metric}/values/{field}"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
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

/// The store operations the preamble issues at most, for sizing the seed.
fn preamble_requests(args: &Args) -> f64 {
    let mut seconds = 0;
    if warms_up(args.scenario) {
        seconds += WARM_UP_SECONDS;
    }
    if measures_store_limit(args.scenario) {
        seconds += STORE_LIMIT_SECONDS * STORE_LIMIT_LEVELS.len() as u64;
    }
    let path = if warms_whole_path(args.scenario) {
        let longest = PATH_WARM_UP_MAX_WINDOWS as f64 * PATH_WARM_UP_WINDOW_SECONDS as f64;
        longest * f64::from(args.rate.unwrap_or(200))
    } else {
        0.0
    };
    seconds as f64 * RAW_OPS_PER_SECOND_BOUND + path
}

/// How many requests a run may issue at most, for sizing the seed.
fn planned_requests(args: &Args) -> f64 {
    preamble_requests(args) + planned_k6_requests(args)
}

/// How many requests the k6 run may issue at most.
fn planned_k6_requests(args: &Args) -> f64 {
    let env = |key: &str, default: f64| {
        args.extra_env
            .iter()
            .find(|(name, _)| name == key)
            .and_then(|(_, value)| value.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let seconds = |text: &str| parse_duration(text).map_or(0.0, |duration| duration.as_secs_f64());
    match args.scenario {
        Scenario::Stress => {
            let (start, step, max) = (
                env("START_RATE", 100.0),
                env("STEP", 100.0),
                env("MAX_RATE", 1_500.0),
            );
            let step_seconds = args
                .extra_env
                .iter()
                .find(|(name, _)| name == "STEP_DURATION")
                .map_or(30.0, |(_, value)| seconds(value));
            let mut rate = start;
            let mut total = 0.0;
            while rate <= max {
                total += rate * step_seconds;
                rate += step;
            }
            total
        }
        Scenario::Spike => {
            // The baseline runs throughout (30 s + 40 s of surge + 60 s); the surge's closed-loop
            // users can go no faster than the service, bounded here by the store's limit.
            let base = f64::from(args.rate.unwrap_or(100));
            base * 130.0 + RAW_OPS_PER_SECOND_BOUND * 40.0
        }
        Scenario::FlashSale | Scenario::Bench => 0.0,
        _ => {
            let rate = f64::from(args.rate.unwrap_or(200));
            let duration = args
                .duration
                .clone()
                .unwrap_or_else(|| args.scenario.default_duration().to_owned());
            rate * seconds(&duration)
        }
    }
}

/// The seed a run needs: with 3.1 requests per journey, 1.5 order lines of one unit each,
/// and prices up to 50,000 KRW, every user and product gets twice its expected share so that
/// no run fails for lack of balance or stock.
pub(crate) fn seed_for(requests: f64) -> SeedArgs {
    let defaults = SeedArgs {
        users: 1_000,
        products: 100,
        balance: 1_000_000,
        stock: 1_000,
        flash_stock: 50,
    };
    let journeys = requests / 3.1;
    let units = journeys * 1.5;
    let stock = (2.0 * units / f64::from(defaults.products)).ceil() as i64;
    let balance = (2.0 * units * 50_000.0 / f64::from(defaults.users)).ceil() as i64;
    SeedArgs {
        stock: stock.max(defaults.stock),
        balance: balance.max(defaults.balance),
        ..defaults
    }
}

/// The outcome of one scenario run.
pub(crate) struct RunOutcome {
    pub report_dir: PathBuf,
    pub k6_passed: bool,
    pub audit_clean: Option<bool>,
    pub summary: Value,
    /// CPU and RSS of the stack's processes over the run (local runs only).
    pub resources: Option<ResourceSummary>,
}

pub fn run(args: &Args) -> Result<()> {
    if !run_with_verdict(args)? {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs a scenario, prints its verdict and where the report is, and says whether it passed.
pub(crate) fn run_with_verdict(args: &Args) -> Result<bool> {
    let outcome = run_scenario(args)?;
    Ok(print_verdict(
        &outcome,
        args.scenario,
        "PASSED (every threshold held, audit clean)",
    ))
}

/// Prints a run's verdict, the thresholds that failed and where its report is; returns
/// whether it passed. Stress and spike push past capacity on purpose: their thresholds fail
/// once the service refuses, and their verdict is the report's knee, refusals and recovery.
fn print_verdict(outcome: &RunOutcome, scenario: Scenario, passed_text: &str) -> bool {
    let failed = report::failed_thresholds(&outcome.summary);
    let audit_failed = outcome.audit_clean == Some(false);
    let judged_by_thresholds = !matches!(scenario, Scenario::Stress | Scenario::Spike);
    let passed = !audit_failed && (outcome.k6_passed || !judged_by_thresholds);
    let verdict = match (passed, judged_by_thresholds) {
        (true, true) => passed_text,
        (true, false) => "DONE (audit clean; read the report for the knee, refusals and recovery)",
        (false, _) => "FAILED",
    };
    println!("VERDICT: {verdict}");
    if judged_by_thresholds || audit_failed {
        for line in &failed {
            println!("  - threshold {line}");
        }
    }
    if audit_failed {
        println!("  - the audit found violations (see the Audit section)");
    }
    println!(
        "  report: {}\n  charts: {}",
        outcome.report_dir.join("report.md").display(),
        outcome.report_dir.join("report.html").display()
    );
    passed
}

/// Starts the default stack if it is not running; returns it and whether we started it.
pub(crate) fn ensure_stack(seed: &SeedArgs) -> Result<(StackState, bool)> {
    if let Some(state) = state::read_state() {
        return Ok((state, false));
    }
    let state = stack::start(&UpArgs::local_default(seed.clone()))?;
    Ok((state, true))
}

pub(crate) fn run_scenario(args: &Args) -> Result<RunOutcome> {
    let report_dir =
        paths::reports().join(format!("{}-{}", clock::utc_stamp(), args.scenario.name()));
    std::fs::create_dir_all(&report_dir)?;
    let seed = args
        .seed
        .clone()
        .unwrap_or_else(|| seed_for(planned_requests(args)));

    let local = !args.remote.is_remote_run(args.base_url.as_deref());
    let deployed = match &args.remote.stack {
        Some(stack) => Some(
            crate::target::TargetArgs {
                stack: Some(stack.clone()),
                endpoint: args.remote.endpoint.clone(),
                table: None,
            }
            .resolve()?,
        ),
        None => None,
    };
    let (state, started) = if local {
        let (state, started) = ensure_stack(&seed)?;
        if !started {
            eprintln!("Re-seeding the running stack for this run ...");
            data::reset_and_seed(&state.dynamodb_endpoint, &state.table, &seed)?;
        }
        (Some(state), started)
    } else {
        (None, false)
    };
    let base_url = match (&args.base_url, &state, &deployed) {
        (Some(url), _, _) => url.clone(),
        (None, Some(state), _) => state.base_url.clone(),
        (None, None, Some(target)) => target
            .api_url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{} has no ApiUrl output", target.describe()))?,
        (None, None, None) => bail!("no base URL"),
    };
    if !local && !is_loopback_url(&base_url) && !args.remote.allow_remote {
        bail!(
            "{base_url} is not on this machine: pass --allow-remote to load-test it (it sends \
             real traffic, and with --stack seeds and audits its table)"
        );
    }
    let tokens = match (&state, &args.remote) {
        (Some(state), _) => Tokens::Secret(state.jwt_secret.clone()),
        (
            None,
            RemoteArgs {
                tokens_file: Some(file),
                ..
            },
        ) => Tokens::File(file.clone()),
        (
            None,
            RemoteArgs {
                jwt_secret_file: Some(file),
                ..
            },
        ) => Tokens::Secret(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim()
                .to_owned(),
        ),
        (None, _) => Tokens::Secret(crate::token::jwt_secret()?),
    };
    if let Some(target) = &deployed {
        eprintln!("Seeding {} ...", target.describe());
        data::seed_target(target, &seed, args.remote.wipe)?;
    }

    let profile = Profile::for_run(args, &base_url);
    let profile_env = profile_env(
        profile,
        args.scenario,
        args.rate.is_some(),
        deployed
            .as_ref()
            .and_then(|target| target.api_throttle_rate),
    );
    if profile == Profile::Stage {
        let variables: Vec<String> = profile_env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        eprintln!(
            "Stage profile ({}; k6/lib/config.js has its defaults, --env overrides them) ...",
            variables.join(" ")
        );
    }
    let run = K6Run {
        args,
        base_url: &base_url,
        tokens: &tokens,
        seed: &seed,
        report_dir: &report_dir,
        announce: true,
        profile_env: &profile_env,
    };
    let preamble = match &state {
        Some(state) => Some(preamble(&run, state)?),
        None => None,
    };
    // The measured window starts after the warm-up: the functions' log is read from here on,
    // and dynamodb-faithful counts from here.
    let run_started =
        order_service::domain::Timestamp::from_datetime(time::OffsetDateTime::now_utc())
            .to_string();
    let run_started_ms = crate::monitor::now_ms();
    let faithful = state.as_ref().and_then(crate::faithful::Faithful::of);
    if let Some(faithful) = &faithful {
        faithful.reset()?;
    }
    let sampler = state
        .as_ref()
        .map(|state| ResourceSampler::start(state, Duration::from_secs(2)));
    let result = run_k6(&run);
    let resources: Option<ResourceSummary> = sampler.map(ResourceSampler::finish);
    let k6_passed = result?;

    let audit = match (&state, &deployed) {
        (Some(state), _) => Some(data::audit(&state.dynamodb_endpoint, &state.table)?),
        (None, Some(target)) => Some(data::audit_target(target)?),
        (None, None) => None,
    };
    let flash_check = match (&state, args.scenario) {
        (None, Scenario::FlashSale) if deployed.is_some() => deployed
            .as_ref()
            .map(|target| flash_sale_check(target, &seed))
            .transpose()?,
        (Some(state), Scenario::FlashSale) => Some(flash_sale_check(
            &crate::target::Target::of_local_stack(state),
            &seed,
        )?),
        _ => None,
    };
    if let Some(audit) = &audit {
        std::fs::write(
            report_dir.join("audit.json"),
            serde_json::to_string_pretty(audit)?,
        )?;
    }
    let summary_path = report_dir.join("summary.json");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(&summary_path)
            .with_context(|| format!("k6 wrote no {}", summary_path.display()))?,
    )?;
    let latency_drift = match (&state, args.scenario) {
        (Some(state), Scenario::Soak | Scenario::Load) => {
            std::fs::read_to_string(&state.function_log)
                .ok()
                .and_then(|log| report::latency_drift(&log, &run_started))
        }
        _ => None,
    };
    let store = faithful
        .as_ref()
        .map(|faithful| faithful.summary())
        .transpose()?;
    if let Some(store) = &store {
        std::fs::write(
            report_dir.join("faithful.json"),
            serde_json::to_string_pretty(store)?,
        )?;
    }
    let refusals = state.as_ref().map(|state| {
        report::refusals_since(
            &std::fs::read_to_string(&state.function_log).unwrap_or_default(),
            run_started_ms,
        )
    });
    let markdown = report::render(&report::ReportInput {
        scenario: args.scenario.name(),
        base_url: &base_url,
        summary: &summary,
        seed: (local || deployed.is_some()).then_some(&seed),
        resources: resources.as_ref(),
        audit: audit.as_ref(),
        flash_check: flash_check.as_deref(),
        latency_drift,
        k6_passed,
        warm_up: preamble
            .as_ref()
            .and_then(|preamble| preamble.warm_up.as_deref()),
        store_limit: preamble.as_ref().and_then(|preamble| preamble.store_limit),
        refusals: refusals.as_ref(),
        store: store.as_ref(),
    });
    std::fs::write(report_dir.join("report.md"), markdown)?;
    if started && !args.keep_stack {
        if let Some(state) = &state {
            stack::stop(state);
        }
    }
    let flash_ok = flash_check
        .as_deref()
        .is_none_or(|text| text.starts_with("exact"));
    Ok(RunOutcome {
        report_dir,
        k6_passed: k6_passed && flash_ok,
        audit_clean: audit.map(|audit| audit.is_clean()),
        summary,
        resources,
    })
}

/// After a flash sale: exactly the seeded stock was sold (no oversell, no undersell).
fn flash_sale_check(target: &crate::target::Target, seed: &SeedArgs) -> Result<String> {
    let product = order_service::domain::ProductId::parse("product-flash")
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let (stock, sold) = crate::client::runtime()?.block_on(async {
        let store = target.store().await?;
        let stock = store.product_stock(&product).await;
        let orders = store.all_orders().await;
        Ok::<_, anyhow::Error>((stock, orders))
    })?;
    let stock = stock.map_err(crate::client::store_failure)?.unwrap_or(-1);
    let sold: u64 = sold
        .map_err(crate::client::store_failure)?
        .iter()
        .filter(|order| order.status.holds_stock())
        .flat_map(|order| order.items.iter())
        .filter(|line| line.product_id == product)
        .map(|line| u64::from(line.quantity.get()))
        .sum();
    let expected = seed.flash_stock as u64;
    let verdict = if sold == expected && stock == 0 {
        "exact"
    } else {
        "WRONG"
    };
    Ok(format!(
        "{verdict}: {sold} units of product-flash held by orders, {stock} left, {expected} seeded"
    ))
}

/// How k6 authenticates: HS256 tokens it mints with a secret, or tokens issued elsewhere.
enum Tokens {
    Secret(String),
    File(PathBuf),
}

/// One k6 run: the scenario's arguments, where it goes, with which tokens and seed, and
/// where its report goes.
#[derive(Clone, Copy)]
struct K6Run<'a> {
    args: &'a Args,
    base_url: &'a str,
    tokens: &'a Tokens,
    seed: &'a SeedArgs,
    report_dir: &'a Path,
    /// Whether to say that it runs and how far it is (the warm-up's windows report
    /// themselves).
    announce: bool,
    /// The profile's k6 variables (a stage's rate and thresholds; none locally).
    profile_env: &'a [(String, String)],
}

/// How often a long k6 run says how far it is.
const K6_HEARTBEAT: Duration = Duration::from_secs(15);

/// Runs k6; true when every threshold held (k6 exits 99 when one did not).
fn run_k6(run: &K6Run) -> Result<bool> {
    let K6Run {
        args,
        base_url,
        tokens,
        seed,
        report_dir,
        announce,
        profile_env,
    } = *run;
    let script = paths::root()
        .join("k6")
        .join(format!("{}.js", args.scenario.name()));
    let log = std::fs::File::create(report_dir.join("k6.log"))?;
    let mut command = Command::new(crate::install::k6());
    command
        .arg("run")
        .arg("--no-usage-report")
        .arg(&script)
        .current_dir(paths::root())
        .env("K6_NO_USAGE_REPORT", "true")
        .env("K6_WEB_DASHBOARD", "true")
        .env("K6_WEB_DASHBOARD_PORT", "-1")
        .env("K6_WEB_DASHBOARD_EXPORT", report_dir.join("report.html"))
        .env("BASE_URL", base_url)
        .env("REPORT_DIR", report_dir)
        .envs(seed.k6_env())
        .envs(profile_env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    match tokens {
        Tokens::Secret(secret) => {
            command.env("AUTH_SECRET", secret);
        }
        Tokens::File(file) => {
            // k6 picks users among user-1..user-USERS: only those the file has tokens for.
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let users = users_with_tokens(&text)
                .with_context(|| format!("{} holds no usable tokens", file.display()))?;
            // k6's open() resolves a relative path against the script's folder, not ours.
            let file = std::fs::canonicalize(file)?;
            command
                .env("AUTH_TOKEN_MODE", "file")
                .env("TOKENS_FILE", &file)
                .env("USERS", users.min(seed.users).to_string());
        }
    }
    if let Some(rate) = args.rate {
        let name = if args.scenario == Scenario::Spike {
            "BASE_RATE"
        } else {
            "RATE"
        };
        command.env(name, rate.to_string());
    }
    if let Some(duration) = &args.duration {
        command.env("DURATION", duration);
    }
    if args.scenario == Scenario::FlashSale {
        // 200 buyers at once are more than create-order admits (in flight + queue): the rest
        // are throttled with 429 + Retry-After and, like real clients, try again with the same
        // Idempotency-Key until the sale has answered every buyer.
        command.env("RETRIES", "10");
    }
    for (key, value) in &args.extra_env {
        command.env(key, value);
    }
    let planned = args
        .duration
        .as_deref()
        .and_then(parse_duration)
        .map_or(String::new(), |duration| {
            format!(" of {}", humantime::format_duration(duration))
        });
    if announce {
        eprintln!(
            "Running k6 {} against {base_url} (output: {}) ...",
            args.scenario.name(),
            report_dir.join("k6.log").display()
        );
    }
    let mut child = command
        .spawn()
        .context("cannot run k6 (run `cargo xtask install`)")?;
    let started = std::time::Instant::now();
    let mut next_heartbeat = K6_HEARTBEAT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if announce && started.elapsed() >= next_heartbeat {
            eprintln!(
                "  k6 {}: {} s{planned} ...",
                args.scenario.name(),
                next_heartbeat.as_secs()
            );
            next_heartbeat += K6_HEARTBEAT;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    match status.code() {
        Some(0) => Ok(true),
        Some(99) => Ok(false),
        _ => bail!(
            "k6 failed with {status}; see {}",
            report_dir.join("k6.log").display()
        ),
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Requests per second of the closing load run.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Length of the closing load run.
    #[arg(long, default_value = "60s")]
    pub duration: String,
}

/// The main job: the local stack on DynamoDB Local, a short k6 `load` run, its report. A run
/// that misses a threshold or the audit prints the verdict, what failed and where the report
/// is, and exits with status 1 (no error trace: the report is the explanation).
pub fn demo(args: &DemoArgs) -> Result<()> {
    let outcome = run_scenario(&Args {
        scenario: Scenario::Load,
        rate: Some(args.rate),
        duration: Some(args.duration.clone()),
        base_url: None,
        remote: RemoteArgs::default(),
        profile: None,
        extra_env: Vec::new(),
        keep_stack: false,
        seed: None,
    })?;
    let report = std::fs::read_to_string(outcome.report_dir.join("report.md"))?;
    println!("{report}");
    let passed_text = format!(
        "PASSED ({} req/s for {}, every threshold held, audit clean)",
        args.rate, args.duration
    );
    if !print_verdict(&outcome, Scenario::Load, &passed_text) {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_k6() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
    }

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

    #[test]
    fn a_stage_run_offers_half_its_throttle_and_local_runs_are_untouched() {
        let env = |profile, scenario, rate_given, throttle| -> Vec<(String, String)> {
            profile_env(profile, scenario, rate_given, throttle)
        };
        let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        assert!(env(Profile::Local, Scenario::Load, false, Some(100.0)).is_empty());
        assert_eq!(
            env(Profile::Stage, Scenario::Load, false, Some(100.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "50")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Soak, false, Some(1_000.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "500")])
        );
        // Unknown throttle: the template's default, 100 req/s.
        assert_eq!(
            env(Profile::Stage, Scenario::Spike, false, None),
            pairs(&[("PROFILE", "stage"), ("BASE_RATE", "50")])
        );
        // --rate wins; smoke keeps its 20 req/s unless the throttle is below 40.
        assert_eq!(
            env(Profile::Stage, Scenario::Load, true, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Smoke, false, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Smoke, false, Some(10.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "5")])
        );
        // Stress finds the knee by design: its steps stay as asked.
        assert_eq!(
            env(Profile::Stage, Scenario::Stress, false, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
    }

    #[test]
    fn the_seed_grows_with_the_run() {
        let small = seed_for(20.0 * 20.0);
        assert_eq!((small.balance, small.stock), (1_000_000, 1_000));
        let soak = seed_for(200.0 * 3_600.0);
        assert!(soak.stock >= 2 * 232_000 * 3 / 2 / 100);
        assert!(soak.balance > 1_000_000);
    }
}
