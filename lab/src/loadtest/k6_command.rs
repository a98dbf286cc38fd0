//! The k6 command of one run in the foreground: the scenario's script, its variables (base URL,
//! seed, profile, rate, duration, tokens), its output and web-dashboard export in the report
//! folder, and a heartbeat while it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{parse_duration, Args, Scenario};
use crate::paths;
use crate::seed_plan::SeedArgs;
use crate::target::users_with_tokens;

/// How k6 authenticates: HS256 tokens it mints with a secret, or tokens issued elsewhere.
pub(super) enum Tokens {
    Secret(String),
    File(PathBuf),
}

/// One k6 run: the scenario's arguments, where it goes, with which tokens and seed, and
/// where its report goes.
#[derive(Clone, Copy)]
pub(super) struct K6Run<'a> {
    pub(super) args: &'a Args,
    pub(super) base_url: &'a str,
    pub(super) tokens: &'a Tokens,
    pub(super) seed: &'a SeedArgs,
    pub(super) report_dir: &'a Path,
    /// Whether to say that it runs and how far it is (the warm-up's windows report
    /// themselves).
    pub(super) announce: bool,
    /// The profile's k6 variables (a stage's rate and thresholds; none locally).
    pub(super) profile_env: &'a [(String, String)],
}

/// How often a long k6 run says how far it is.
const K6_HEARTBEAT: Duration = Duration::from_secs(15);

/// Runs k6; true when every threshold held (k6 exits 99 when one did not).
pub(super) fn run_k6(run: &K6Run) -> Result<bool> {
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
