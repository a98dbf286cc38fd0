//! `cargo xtask drill <name>`: a fault drill under load on a stack of its own.
//!
//! Every drill: starts the stack (`--port`, `--dynamodb-port`), runs k6 `load.js` with the
//! ledger on, follows the function log with the monitor's detector in-process (ALERT/RESOLVED
//! with the thresholds of `ops/alarms.json`), sends a canary request every second, injects its
//! fault after a baseline, restores it, waits until the request log is clean for a window and
//! the alarms are OK, stops the load, then compares k6's acknowledged writes with the table,
//! runs the audit, writes `reports/<time>-drill-<name>/incident.md` from the post-mortem
//! template, appends a line to `reports/incidents.jsonl`, stops the stack, and exits non-zero
//! when an expectation broke. What each drill expects is in runbooks/drills.md.
//!
//! Each drill is one module behind the `Scenario` trait: `store_outage`, `store_slowdown`,
//! `function_crash`, `bad_deploy`, `hot_product`, `hot_partition`. What they share is the runner
//! (`runner.rs`: the trait, the stack, the load, the detector, recovery, the numbers, cleanup)
//! and the checks every drill makes after the load (`checks.rs`).

mod bad_deploy;
mod checks;
mod function_crash;
mod hot_partition;
mod hot_product;
mod incident_report;
mod observe;
mod runner;
mod store_outage;
mod store_slowdown;
mod support;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::monitor::{AlarmEvent, Bucket};

use runner::Scenario;
use verify::LedgerCheck;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: DrillCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub(crate) enum DrillCommand {
    /// Freeze DynamoDB Local (SIGSTOP) for the fault window, then SIGCONT.
    StoreOutage(Options),
    /// Slow every answer of the store (dynamodb-faithful's late answers).
    StoreSlowdown(Options),
    /// kill -9 function instances mid-load, a few times.
    FunctionCrash(Options),
    /// "Deploy" functions that fail a fraction of requests; roll back on the alarm.
    BadDeploy(Options),
    /// A flash sale (80 buyers, 50 units) on top of the load.
    HotProduct(Options),
    /// One product bought faster than its partition writes (throttling, conflicts).
    HotPartition(Options),
    /// Every drill, one after the other (a game day).
    All(Options),
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Options {
    /// k6 load in HTTP requests per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The port of the drill's own stack (not the development stack's 9000).
    #[arg(long, default_value_t = 9300)]
    pub port: u16,
    /// The port of the drill's DynamoDB Local (its dynamodb-faithful listens on this + 1).
    #[arg(long, default_value_t = 8300)]
    pub dynamodb_port: u16,
    /// Load before the fault is injected.
    #[arg(long, default_value_t = 20)]
    pub baseline_seconds: u64,
    /// How long the fault lasts (store-outage, store-slowdown).
    #[arg(long, default_value_t = 30)]
    pub fault_seconds: u64,
    /// store-slowdown: the delay added to every store answer.
    #[arg(long, default_value_t = 1_500)]
    pub delay_ms: u64,
    /// bad-deploy: FAULT_INJECTION_RATE of the bad release.
    #[arg(long, default_value_t = 0.2)]
    pub fault_rate: f64,
    /// function-crash: rounds of kills (two instances each, 10 s apart).
    #[arg(long, default_value_t = 3)]
    pub kill_rounds: u32,
    /// k6's VU cap for the drills' background load (see K6_MAX_VUS).
    #[arg(long, default_value_t = K6_MAX_VUS)]
    pub max_vus: u32,
    /// hot-product: buyers in the flash sale (one VU and one user each, all at once). The
    /// load's VUs are capped so that buyers plus load VUs stay under 100 (see FLASH_BUYERS).
    #[arg(long, default_value_t = FLASH_BUYERS)]
    pub flash_buyers: u32,
    /// hot-partition: write units per second one partition serves for the whole drill (a
    /// scale model of production's 1,000).
    #[arg(long, default_value_t = 40.0)]
    pub hot_wcu: f64,
    /// hot-partition: buyers per second on the hot product (each retries 3 times).
    #[arg(long, default_value_t = 40.0)]
    pub hot_rate: f64,
    /// hot-partition: the background load in requests per second, instead of `--rate`. The
    /// burst's buyers and their retries come on top, and on a 2-core machine load and burst
    /// together at 200 req/s pass DynamoDB Local's own limit: the drill would then measure the
    /// machine's store timing out, not one partition throttling.
    #[arg(long, default_value_t = 100)]
    pub hot_load_rate: u32,
    /// hot-partition: the shards the hot product is resharded to once the throttle alarm
    /// fires (the mitigation; 1: no reshard, the burst runs its course).
    #[arg(long, default_value_t = 8)]
    pub hot_shards: u32,
    /// How long to wait for recovery (clean window and alarms OK) after the fault is removed.
    #[arg(long, default_value_t = 120)]
    pub recovery_timeout_seconds: u64,
    /// Leave the stack running at the end (stop it with `kill -s TERM -- -<watchPgid>` and
    /// `kill <dynamodbPid>` from .local/stack-<port>.json).
    #[arg(long)]
    pub keep_stack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    StoreOutage,
    StoreSlowdown,
    FunctionCrash,
    BadDeploy,
    HotProduct,
    HotPartition,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::StoreOutage,
        Kind::StoreSlowdown,
        Kind::FunctionCrash,
        Kind::BadDeploy,
        Kind::HotProduct,
        Kind::HotPartition,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::StoreOutage => "store-outage",
            Kind::StoreSlowdown => "store-slowdown",
            Kind::FunctionCrash => "function-crash",
            Kind::BadDeploy => "bad-deploy",
            Kind::HotProduct => "hot-product",
            Kind::HotPartition => "hot-partition",
        }
    }

    /// The drill's steps (its module, behind `Scenario`).
    fn scenario(self) -> Box<dyn Scenario> {
        match self {
            Kind::StoreOutage => Box::new(store_outage::StoreOutage),
            Kind::StoreSlowdown => Box::new(store_slowdown::StoreSlowdown::default()),
            Kind::FunctionCrash => Box::new(function_crash::FunctionCrash::default()),
            Kind::BadDeploy => Box::new(bad_deploy::BadDeploy),
            Kind::HotProduct => Box::new(hot_product::HotProduct),
            Kind::HotPartition => Box::new(hot_partition::HotPartition::default()),
        }
    }
}

/// Users and products the load leaves alone, for the drill's own requests.
const LOAD_USERS: u32 = 990;
const LOAD_PRODUCTS: u32 = 99;
const CANARY_USER: &str = "user-999";
const PROBE_USER: &str = "user-1000";
const PROBE_PRODUCT: &str = "product-100";
/// hot-partition's product: the load leaves it alone, so its stock moves by the burst only.
const HOT_PRODUCT: &str = PROBE_PRODUCT;
const FLASH_PRODUCT: &str = "product-flash";
const FLASH_STOCK: i64 = 50;
/// Not k6's default of 200: the drill's findings (MTTR of the sale, what was sold) are compared
/// across runs since the first drills, which had to stay under the unpatched cargo lambda
/// watch's 100 waiting requests per function (ops/upstream/cargo-lambda.md).
const FLASH_BUYERS: u32 = 80;
const SEED_BALANCE: i64 = 100_000_000;
const SEED_STOCK: i64 = 100_000;
/// A window of the request log that must be clean to call the service recovered.
const RECOVERY_WINDOW_MS: i64 = 10_000;
/// The load thresholds' p95 (k6 `P95_MS` default) for hot-product.
const LOAD_P95_MS: f64 = 25.0;
/// Lambda's timeout: no request may take longer.
const FUNCTION_TIMEOUT_MS: f64 = 10_000.0;
/// k6's VU cap for the drills' load. While the store hangs, every VU waits on a request; the
/// cap bounds the client side so that MTTD and MTTR stay comparable across drills since the
/// first ones, which had to stay under the unpatched cargo lambda watch's deadlock at 100
/// waiting requests per function (ops/upstream/cargo-lambda.md). Iterations k6 cannot start
/// are its `dropped_iterations`.
const K6_MAX_VUS: u32 = 90;
/// k6's client timeout. Longer than the 10 s the drills judge, so that a slow answer is
/// measured (k6's max duration) rather than abandoned, and abandoned requests do not pile up
/// in the gateway's queue behind the ones still waiting.
const K6_HTTP_TIMEOUT: &str = "30s";
/// With the load running, this long without a single request line means the local gateway
/// stopped dispatching.
const GATEWAY_SILENCE_MS: i64 = 20_000;

pub fn run(args: &Args) -> Result<()> {
    support::install_interrupt_handler();
    let (kinds, options) = match &args.command {
        DrillCommand::StoreOutage(options) => (vec![Kind::StoreOutage], options),
        DrillCommand::StoreSlowdown(options) => (vec![Kind::StoreSlowdown], options),
        DrillCommand::FunctionCrash(options) => (vec![Kind::FunctionCrash], options),
        DrillCommand::BadDeploy(options) => (vec![Kind::BadDeploy], options),
        DrillCommand::HotProduct(options) => (vec![Kind::HotProduct], options),
        DrillCommand::HotPartition(options) => (vec![Kind::HotPartition], options),
        DrillCommand::All(options) => (Kind::ALL.to_vec(), options),
    };
    let mut failed = Vec::new();
    for kind in kinds {
        support::check_interrupt()?;
        match runner::run_one(kind, options) {
            Ok(true) => {}
            Ok(false) => failed.push(kind.name().to_owned()),
            Err(error) => {
                eprintln!("drill {} could not run: {error:#}", kind.name());
                failed.push(format!("{} (error)", kind.name()));
            }
        }
    }
    if !failed.is_empty() {
        bail!("drill expectations broke: {}", failed.join(", "));
    }
    Ok(())
}

/// The units of `product` the orders hold (ordered, less refunded, while CREATED or PAID).
fn units_held(orders: &[order_service::domain::Order], product: &str) -> i64 {
    orders
        .iter()
        .flat_map(|order| order.holdings().units)
        .filter(|(id, _)| id.as_str() == product)
        .map(|(_, units)| i64::from(units))
        .sum()
}

/// One expectation of the drill.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// A miss caused by the local platform, not by the service: reported, but it does not fail
    /// the drill.
    pub advisory: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TimelineEntry {
    pub at_ms: i64,
    pub event: String,
    pub source: String,
}

/// Everything a drill measured, for the report and the incident line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Findings {
    pub drill: String,
    pub rate: u32,
    pub dir: PathBuf,
    pub started: i64,
    pub load_started: Option<i64>,
    pub injected: Option<i64>,
    pub first_failure: Option<i64>,
    pub detected: Option<AlarmEvent>,
    pub mitigated: Option<i64>,
    pub recovered: Option<i64>,
    pub resolved: Option<i64>,
    pub load_stopped: Option<i64>,
    pub timeline: Vec<TimelineEntry>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub events: Vec<AlarmEvent>,
    pub fault_window: Bucket,
    pub whole_run: Bucket,
    pub baseline: Bucket,
    pub k6: Option<Value>,
    pub ledger: LedgerCheck,
    pub audit: Option<order_service::store::AuditReport>,
    pub audit_error: Option<String>,
    pub injects: String,
    pub root_cause: String,
    pub trigger: String,
    pub resolution: String,
}

impl Findings {
    pub(crate) fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.passed || check.advisory)
    }

    pub(crate) fn audit_clean(&self) -> bool {
        self.audit.as_ref().is_some_and(|audit| audit.is_clean())
    }

    pub(crate) fn mttd_ms(&self) -> Option<i64> {
        Some(self.detected.as_ref()?.at_ms - self.injected?)
    }

    pub(crate) fn mttr_ms(&self) -> Option<i64> {
        Some(self.recovered? - self.injected?)
    }

    /// Failed requests by status over the whole load: answers >= 500 from the function log,
    /// plus requests that got no answer at all (k6 TRANSPORT: timeouts, refused connections).
    pub(crate) fn failed_by_status(&self) -> BTreeMap<String, u64> {
        let mut failed = BTreeMap::new();
        for (key, count) in &self.whole_run.by_status {
            let status = key.split_whitespace().next().unwrap_or("");
            if status.parse::<u16>().is_ok_and(|status| status >= 500) {
                *failed.entry(status.to_owned()).or_default() += count;
            }
        }
        if let Some(summary) = &self.k6 {
            let transport = support::unexpected_by_code(summary)
                .get("TRANSPORT")
                .copied()
                .unwrap_or(0);
            if transport > 0 {
                failed.insert("transport".to_owned(), transport);
            }
        }
        failed
    }
}
