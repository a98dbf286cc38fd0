//! `cargo xtask loadtest <scenario>`: seeds the local stack for the run's size, runs a k6
//! scenario with the web dashboard exported, samples CPU and RSS of DynamoDB Local and the
//! function processes, audits the table, and writes `reports/<time>-<scenario>/` with
//! `summary.json`, `report.html` and `report.md`. `cargo xtask demo` is the main job.

mod flash_check;
mod k6_command;
mod profile;
pub(crate) mod report;
mod sizing;
mod warm_up;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::audit;
use crate::resources::{ResourceSampler, ResourceSummary};
use crate::seed;
use crate::seed_plan::SeedArgs;
use crate::stack::{self, UpArgs};
use crate::state::{self, StackState};
use crate::target::{is_loopback_url, RemoteArgs};
use crate::{clock, paths};

use flash_check::flash_sale_check;
use k6_command::{run_k6, K6Run, Tokens};
use profile::{profile_env, Profile};
use sizing::planned_requests;
pub(crate) use sizing::seed_for;
use warm_up::preamble;

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
            seed::reset_and_seed(&state.dynamodb_endpoint, &state.table, &seed)?;
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
        seed::seed_target(target, &seed, args.remote.wipe)?;
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
    let run_started_ms = clock::now_ms();
    let run_started = clock::format_ms(run_started_ms);
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
        (Some(state), _) => Some(audit::audit(&state.dynamodb_endpoint, &state.table)?),
        (None, Some(target)) => Some(audit::audit_target(target)?),
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
}
