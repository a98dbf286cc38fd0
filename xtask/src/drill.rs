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

mod observe;
mod report;
mod support;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::data::{self, SeedArgs};
use crate::monitor::{
    self, format_ms, now_ms, percentile, AlarmDef, AlarmEvent, Bucket, EventKind,
};
use crate::stack::{self, StackState, UpArgs};
use crate::{paths, proxy};

use observe::{Canary, Observer, Probe};
use support::{http, instances_of, K6Run};
use verify::{check_ledger, LedgerCheck, LedgerEntry};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub command: DrillCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DrillCommand {
    /// Freeze DynamoDB Local (SIGSTOP) for the fault window, then SIGCONT.
    StoreOutage(Options),
    /// Put a delaying proxy between the functions and DynamoDB Local and slow every answer.
    StoreSlowdown(Options),
    /// kill -9 function instances mid-load, a few times.
    FunctionCrash(Options),
    /// "Deploy" functions that fail a fraction of requests; roll back on the alarm.
    BadDeploy(Options),
    /// A flash sale (80 buyers, 50 units) on top of the load.
    HotProduct(Options),
    /// Every drill, one after the other (a game day).
    All(Options),
    /// Run the delaying TCP proxy alone; change its delays at run time on stdin:
    /// `1500` (answers), `request 200`, `connect 100`.
    Proxy(ProxyArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// k6 load in HTTP requests per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The port of the drill's own stack (not the development stack's 9000).
    #[arg(long, default_value_t = 9300)]
    pub port: u16,
    /// The port of the drill's DynamoDB Local (the slowdown proxy listens on this + 1).
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
    /// How long to wait for recovery (clean window and alarms OK) after the fault is removed.
    #[arg(long, default_value_t = 120)]
    pub recovery_timeout_seconds: u64,
    /// Leave the stack running at the end (stop it with `kill -s TERM -- -<watchPgid>` and
    /// `kill <dynamodbPid>` from .local/stack-<port>.json).
    #[arg(long)]
    pub keep_stack: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:8301")]
    pub listen: String,
    /// Where it forwards to.
    #[arg(long, default_value = "127.0.0.1:8300")]
    pub upstream: String,
    /// The initial delay of answers, in ms.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    StoreOutage,
    StoreSlowdown,
    FunctionCrash,
    BadDeploy,
    HotProduct,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::StoreOutage,
        Kind::StoreSlowdown,
        Kind::FunctionCrash,
        Kind::BadDeploy,
        Kind::HotProduct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::StoreOutage => "store-outage",
            Kind::StoreSlowdown => "store-slowdown",
            Kind::FunctionCrash => "function-crash",
            Kind::BadDeploy => "bad-deploy",
            Kind::HotProduct => "hot-product",
        }
    }

    /// The alarm the drill must raise (`None`: it must raise none of the error alarms).
    /// The alarms of which at least one must fire (empty: none of the error alarms may fire).
    /// store-slowdown accepts any of four: the breaker turns slow calls into fast 503s, which
    /// pull the p95 of all requests back under 300 ms within seconds, so api-latency-p95 (which
    /// runbooks/drills.md expects) fires only in some runs.
    pub fn expected_alarms(self) -> &'static [&'static str] {
        match self {
            Kind::StoreOutage | Kind::BadDeploy => &["api-5xx-rate"],
            Kind::StoreSlowdown => &[
                "api-latency-p95",
                "api-latency-p99",
                "api-5xx-rate",
                "dynamodb-system-errors",
            ],
            Kind::FunctionCrash => &["lambda-errors"],
            Kind::HotProduct => &[],
        }
    }
}

/// Users and products the load leaves alone, for the drill's own requests.
const LOAD_USERS: u32 = 990;
const LOAD_PRODUCTS: u32 = 99;
const CANARY_USER: &str = "user-999";
const PROBE_USER: &str = "user-1000";
const PROBE_PRODUCT: &str = "product-100";
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
        DrillCommand::Proxy(proxy_args) => return run_proxy(proxy_args),
        DrillCommand::StoreOutage(options) => (vec![Kind::StoreOutage], options),
        DrillCommand::StoreSlowdown(options) => (vec![Kind::StoreSlowdown], options),
        DrillCommand::FunctionCrash(options) => (vec![Kind::FunctionCrash], options),
        DrillCommand::BadDeploy(options) => (vec![Kind::BadDeploy], options),
        DrillCommand::HotProduct(options) => (vec![Kind::HotProduct], options),
        DrillCommand::All(options) => (Kind::ALL.to_vec(), options),
    };
    let mut failed = Vec::new();
    for kind in kinds {
        support::check_interrupt()?;
        match run_one(kind, options) {
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

fn run_proxy(args: &ProxyArgs) -> Result<()> {
    let runtime = data::runtime()?;
    let handle = runtime.block_on(proxy::start(&args.listen, &args.upstream))?;
    handle.set_response_delay(Duration::from_millis(args.delay_ms));
    println!(
        "proxy {} -> {} (answer delay {} ms). Change the delays on stdin: `<ms>` (answers), \
         `request <ms>`, `connect <ms>`; Ctrl-D stops.",
        handle.listen, handle.upstream, args.delay_ms
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (which, value) = match words.as_slice() {
            [ms] => ("answer", ms.parse::<u64>()),
            [which, ms] => (*which, ms.parse::<u64>()),
            _ => ("", "x".parse::<u64>()),
        };
        match (which, value.clone()) {
            ("answer" | "response", Ok(ms)) => handle.set_response_delay(Duration::from_millis(ms)),
            ("request", Ok(ms)) => handle.set_request_delay(Duration::from_millis(ms)),
            ("connect", Ok(ms)) => handle.set_connect_delay(Duration::from_millis(ms)),
            _ => {
                println!("`<ms>`, `request <ms>` or `connect <ms>`, please");
                line.clear();
                continue;
            }
        }
        println!("{which} delay now {} ms", value.unwrap_or(0));
        line.clear();
    }
    handle.stop();
    Ok(())
}

/// One expectation of the drill.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// A miss caused by the local platform, not by the service: reported, but it does not fail
    /// the drill.
    pub advisory: bool,
}

#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub at_ms: i64,
    pub event: String,
    pub source: String,
}

/// Everything a drill measured, for the report and the incident line.
#[derive(Debug, Clone, Default)]
pub struct Findings {
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
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.passed || check.advisory)
    }

    pub fn audit_clean(&self) -> bool {
        self.audit.as_ref().is_some_and(|audit| audit.is_clean())
    }

    pub fn mttd_ms(&self) -> Option<i64> {
        Some(self.detected.as_ref()?.at_ms - self.injected?)
    }

    pub fn mttr_ms(&self) -> Option<i64> {
        Some(self.recovered? - self.injected?)
    }

    /// Failed requests by status over the whole load: answers >= 500 from the function log,
    /// plus requests that got no answer at all (k6 TRANSPORT: timeouts, refused connections).
    pub fn failed_by_status(&self) -> BTreeMap<String, u64> {
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

/// A running drill: the stack, the load, the detector, and everything to undo.
struct Drill {
    kind: Kind,
    options: Options,
    state: StackState,
    alarms: Vec<AlarmDef>,
    findings: Findings,
    env: Vec<(String, String)>,
    observer: Option<Observer>,
    canary: Option<Canary>,
    load: Option<K6Run>,
    flash: Option<K6Run>,
    replacements: Vec<Child>,
    java_stopped: bool,
    proxy: Option<proxy::ProxyHandle>,
    runtime: tokio::runtime::Runtime,
    probes: Vec<Probe>,
    slowdown: Slowdown,
    kills: Vec<(i64, String, u32)>,
    p95_limit_ms: f64,
}

/// The exactly-once probes of store-slowdown: creates with an Idempotency-Key that the client
/// abandons (0.8 s timeout) while the store is slow, retried with the same key afterwards.
#[derive(Debug, Clone, Default)]
struct Slowdown {
    stock_before: Option<i64>,
    probes: Vec<ExactlyOnceProbe>,
}

#[derive(Debug, Clone, Default)]
struct ExactlyOnceProbe {
    /// What was slow when it was sent.
    phase: String,
    key: String,
    /// The order id the key maps to (IdempotencyKey::order_id).
    order_id: String,
    first: Option<support::HttpResult>,
    /// Whether the order existed before the retry (the abandoned attempt was applied).
    applied_before_retry: Option<bool>,
    retry: Option<support::HttpResult>,
}

/// The order id a create with `key` gets for `user` (the service derives it the same way).
fn order_id_for(user: &str, key: &str) -> Result<String> {
    let user =
        order_service::domain::UserId::parse(user).map_err(|error| anyhow::anyhow!("{error}"))?;
    let key = order_service::domain::IdempotencyKey::parse(key)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(key.order_id(&user).to_string())
}

fn stamp(ms: i64) -> String {
    format_ms(ms)
        .replace(['-', ':'], "")
        .chars()
        .take(15)
        .collect::<String>()
        + "Z"
}

fn relative(path: &std::path::Path) -> String {
    path.strip_prefix(paths::root())
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn run_one(kind: Kind, options: &Options) -> Result<bool> {
    let started = now_ms();
    let alarms = monitor::load_alarms(&monitor::alarms_path())?;
    let p95_limit_ms = alarms
        .iter()
        .find(|alarm| alarm.name == "api-latency-p95")
        .map_or(300.0, |alarm| alarm.threshold);
    let dir = paths::reports().join(format!("{}-drill-{}", stamp(started), kind.name()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "== drill {} at {}: stack on 127.0.0.1:{}, load {} req/s, report {}",
        kind.name(),
        format_ms(started),
        options.port,
        options.rate,
        relative(&dir)
    );
    println!("   detector: {}", monitor::scale_note());
    let state = stack::start(&UpArgs {
        port: options.port,
        dynamodb_port: options.dynamodb_port,
        concurrency: 4,
        max_concurrency: stack::DEFAULT_MAX_CONCURRENCY,
        queue_depth: stack::DEFAULT_QUEUE_DEPTH,
        detach: true,
        fault_injection_rate: 0.0,
        seed: SeedArgs {
            users: 1_000,
            products: 100,
            balance: SEED_BALANCE,
            stock: SEED_STOCK,
            flash_stock: FLASH_STOCK,
        },
    })?;
    let env = stack::function_env(
        &state.dynamodb_endpoint,
        &state.table,
        &state.jwt_secret,
        0.0,
    );
    let mut drill = Drill {
        kind,
        options: options.clone(),
        alarms,
        findings: Findings {
            drill: kind.name().to_owned(),
            rate: options.rate,
            dir: dir.clone(),
            started,
            ..Findings::default()
        },
        env,
        observer: None,
        canary: None,
        load: None,
        flash: None,
        replacements: Vec::new(),
        java_stopped: false,
        proxy: None,
        runtime: data::runtime()?,
        probes: Vec::new(),
        slowdown: Slowdown::default(),
        kills: Vec::new(),
        p95_limit_ms,
        state,
    };
    let executed = drill.execute();
    drill.cleanup();
    if let Err(error) = &executed {
        drill
            .findings
            .notes
            .push(format!("The drill stopped early: {error:#}"));
        drill.findings.checks.push(Check {
            name: "the drill ran to the end".to_owned(),
            passed: false,
            detail: format!("{error:#}"),
            advisory: false,
        });
    }
    let findings = &drill.findings;
    if findings.injected.is_some() {
        let template =
            std::fs::read_to_string(paths::root().join("runbooks/postmortem-template.md"))
                .context("cannot read runbooks/postmortem-template.md")?;
        let incident = dir.join("incident.md");
        std::fs::write(&incident, report::render_incident(findings, &template))?;
        crate::incidents::append(&report::incident_record(findings, &relative(&incident)))?;
        report::print_summary(findings, &relative(&incident));
    } else {
        executed?;
    }
    Ok(findings.passed())
}

impl Drill {
    fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    fn observer(&self) -> Result<&Observer> {
        self.observer
            .as_ref()
            .context("the detector is not running")
    }

    fn timeline(&mut self, at_ms: i64, event: impl Into<String>, source: &str) {
        let event = event.into();
        println!("  {}  {event}", monitor::format_clock(at_ms));
        self.findings.timeline.push(TimelineEntry {
            at_ms,
            event,
            source: source.to_owned(),
        });
    }

    fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("  note: {note}");
        self.findings.notes.push(note);
    }

    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.push_check(name, passed, detail.into(), false);
    }

    /// A check whose failure is explained by the local platform (see `Check::advisory`).
    fn advisory(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.push_check(name, passed, detail.into(), true);
    }

    fn push_check(&mut self, name: &str, passed: bool, detail: String, advisory: bool) {
        let mark = match (passed, advisory) {
            (true, _) => "ok",
            (false, false) => "FAIL",
            (false, true) => "WARN (local platform)",
        };
        println!("  [{mark}] {name}: {detail}");
        self.findings.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
            advisory,
        });
    }

    fn token(&self, user: &str) -> Result<String> {
        data::sign(&self.state.jwt_secret, user)
    }

    // --------------------------------------------------------------------------------------
    // The run
    // --------------------------------------------------------------------------------------

    fn execute(&mut self) -> Result<()> {
        self.prepare()?;
        self.observer = Some(Observer::start(
            &self.state.function_log,
            self.alarms.clone(),
        ));
        self.canary = Some(Canary::start(
            format!("{}/users/{CANARY_USER}/orders?limit=1", self.base_url()),
            self.token(CANARY_USER)?,
            Duration::from_secs(30),
        ));
        self.start_load()?;
        self.observe_for(
            Duration::from_secs(self.options.baseline_seconds),
            "baseline",
        )?;
        let baseline_end = now_ms();
        match self.kind {
            Kind::StoreOutage => self.store_outage()?,
            Kind::StoreSlowdown => self.store_slowdown()?,
            Kind::FunctionCrash => self.function_crash()?,
            Kind::BadDeploy => self.bad_deploy()?,
            Kind::HotProduct => self.hot_product()?,
        }
        self.wait_recovery()?;
        if self.kind == Kind::StoreSlowdown {
            self.ambiguous_write_episode()?;
            self.slowdown_retry()?;
        }
        self.stop_load();
        if let Some(observer) = self.observer.as_mut() {
            std::thread::sleep(Duration::from_millis(1_500));
            observer.finish();
        }
        if let Some(canary) = self.canary.as_mut() {
            self.probes = canary.finish();
        }
        self.collect(baseline_end)?;
        self.verify()?;
        Ok(())
    }

    /// Drill-specific setup before the load.
    fn prepare(&mut self) -> Result<()> {
        match self.kind {
            Kind::StoreSlowdown => {
                let listen = format!("127.0.0.1:{}", self.options.dynamodb_port + 1);
                let upstream = format!("127.0.0.1:{}", self.options.dynamodb_port);
                let handle = self.runtime.block_on(proxy::start(&listen, &upstream))?;
                let mut env = self.env.clone();
                for (key, value) in &mut env {
                    if key == "AWS_ENDPOINT_URL_DYNAMODB" {
                        *value = handle.endpoint();
                    }
                }
                println!(
                    "  the functions now reach DynamoDB Local through the delaying proxy {}",
                    handle.endpoint()
                );
                self.proxy = Some(handle);
                self.restart_functions(env, "through the proxy")?;
                let store = self.runtime.block_on(data::store_for(
                    &self.state.dynamodb_endpoint,
                    &self.state.table,
                ));
                let product = order_service::domain::ProductId::parse(PROBE_PRODUCT)
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                self.slowdown.stock_before = self
                    .runtime
                    .block_on(store.product_stock(&product))
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                for (phase, tag) in [
                    ("every store answer late", "all"),
                    (
                        "after recovery, only write answers late for a few seconds",
                        "writes",
                    ),
                ] {
                    let key = format!("drill-slowdown-{}-{tag}", self.findings.started);
                    let order_id = order_id_for(PROBE_USER, &key)?;
                    self.slowdown.probes.push(ExactlyOnceProbe {
                        phase: phase.to_owned(),
                        key,
                        order_id,
                        ..ExactlyOnceProbe::default()
                    });
                }
            }
            Kind::FunctionCrash => {
                let counts = support::count_by_function(&instances_of(self.state.watch_pgid));
                self.note(format!("instances before the crashes: {counts:?}"));
            }
            _ => {}
        }
        Ok(())
    }

    fn load_env(&self) -> Vec<(String, String)> {
        [
            ("BASE_URL", self.base_url()),
            ("AUTH_SECRET", self.state.jwt_secret.clone()),
            ("RATE", self.options.rate.to_string()),
            ("DURATION", "10m".to_owned()),
            ("LEDGER", "1".to_owned()),
            ("USERS", LOAD_USERS.to_string()),
            ("PRODUCTS", LOAD_PRODUCTS.to_string()),
            ("BALANCE", SEED_BALANCE.to_string()),
            ("STOCK", SEED_STOCK.to_string()),
            ("HTTP_TIMEOUT", K6_HTTP_TIMEOUT.to_owned()),
            ("MAX_VUS", self.load_max_vus().to_string()),
            ("RETRIES", "0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// The load's VU cap: for hot-product, buyers + load VUs stay under 100 (see FLASH_BUYERS).
    fn load_max_vus(&self) -> u32 {
        if self.kind == Kind::HotProduct {
            self.options
                .max_vus
                .min(99_u32.saturating_sub(self.options.flash_buyers).max(5))
        } else {
            self.options.max_vus
        }
    }

    fn start_load(&mut self) -> Result<()> {
        let load = K6Run::spawn("load", "k6/load.js", &self.load_env(), &self.findings.dir)?;
        let at = load.started_ms;
        self.load = Some(load);
        self.findings.load_started = Some(at);
        self.timeline(
            at,
            format!(
                "load started: k6 load.js at {} req/s with LEDGER=1",
                self.options.rate
            ),
            "drill",
        );
        Ok(())
    }

    fn stop_load(&mut self) {
        if let Some(load) = self.load.as_mut() {
            load.stop(Duration::from_secs(60));
            let at = load.stopped_ms.unwrap_or_else(now_ms);
            self.findings.load_stopped = Some(at);
            self.timeline(
                at,
                "load stopped (k6 SIGINT; it writes summary.json)",
                "drill",
            );
        }
    }

    fn progress(&self, phase: &str) {
        let now = now_ms();
        let since = now - self.findings.load_started.unwrap_or(now);
        let Ok(observer) = self.observer() else {
            return;
        };
        let (window, alarms) = observer.with(|observed| {
            (
                observed.detector.window(now - 5_000, now),
                observed.in_alarm(),
            )
        });
        let seconds = 5.0;
        println!(
            "  T+{:>4}s {:<10} {:>6.1} req/s  p95 {:>8} ms  5xx {:>4}  503 {:>4} (fast {:>3})  crashes {}  ALARM: {}",
            since / 1_000,
            phase,
            window.requests as f64 / seconds,
            percentile(&window.latencies, 95.0).map_or("-".to_owned(), |p95| format!("{p95:.1}")),
            window.server_errors,
            window.store_unavailable,
            window.fast_store_unavailable,
            window.crashes,
            if alarms.is_empty() { "none".to_owned() } else { alarms.join(", ") }
        );
    }

    /// Sleeps `duration`, printing progress every 5 s.
    fn observe_for(&mut self, duration: Duration, phase: &str) -> Result<()> {
        let deadline = now_ms() + duration.as_millis() as i64;
        let mut next_progress = now_ms() + 5_000;
        while now_ms() < deadline {
            support::check_interrupt()?;
            let step = (deadline - now_ms()).clamp(0, 250) as u64;
            std::thread::sleep(Duration::from_millis(step));
            if now_ms() >= next_progress {
                self.progress(phase);
                next_progress += 5_000;
            }
            if let Some(load) = self.load.as_mut() {
                if !load.running() {
                    bail!(
                        "k6 {} stopped early (exit {:?}); see {}",
                        load.name,
                        load.exit_code,
                        load.stderr.display()
                    );
                }
            }
        }
        Ok(())
    }

    fn inject(&mut self, what: String) -> i64 {
        let at = now_ms();
        self.findings.injected = Some(at);
        self.timeline(at, format!("T0 fault injected: {what}"), "drill");
        at
    }

    fn mitigate(&mut self, what: String) -> i64 {
        let at = now_ms();
        self.findings.mitigated = Some(at);
        self.timeline(at, format!("MITIGATED: {what}"), "drill");
        at
    }

    /// Waits for the first clean window of the request log after mitigation, then for every
    /// alarm to be OK again.
    fn wait_recovery(&mut self) -> Result<()> {
        let from = self.findings.mitigated.unwrap_or_else(now_ms);
        let deadline = now_ms() + self.options.recovery_timeout_seconds as i64 * 1_000;
        let mut next_progress = now_ms() + 5_000;
        loop {
            support::check_interrupt()?;
            let now = now_ms();
            let limit = self.p95_limit_ms;
            let (clean, in_alarm, latest) = self.observer()?.with(|observed| {
                (
                    observed.detector.first_clean_window(
                        from,
                        RECOVERY_WINDOW_MS,
                        limit,
                        now - monitor::GRACE_MS,
                    ),
                    observed.in_alarm(),
                    observed.detector.latest_ms.unwrap_or(from),
                )
            });
            if self.findings.recovered.is_none()
                && now - from > GATEWAY_SILENCE_MS
                && now - latest > GATEWAY_SILENCE_MS
            {
                self.note(format!(
                    "the local gateway served no request for {} s although the load was running: the gateway \
                     stopped dispatching (a wedged cargo lambda watch: see ops/upstream/cargo-lambda.md); not \
                     waiting any longer",
                    (now - latest) / 1_000
                ));
                break;
            }
            if self.findings.recovered.is_none() {
                if let Some(at) = clean {
                    // The window starts on a whole second; recovery cannot precede mitigation.
                    let at = at.max(from);
                    self.findings.recovered = Some(at);
                    self.timeline(
                        at,
                        format!(
                            "RECOVERED: the first clean {} s of the request log starts (no 5xx, no crash, p95 <= {} ms)",
                            RECOVERY_WINDOW_MS / 1_000,
                            limit
                        ),
                        "function log",
                    );
                }
            }
            if self.findings.recovered.is_some() && in_alarm.is_empty() {
                break;
            }
            if now > deadline {
                let what = if self.findings.recovered.is_none() {
                    "no clean window"
                } else {
                    "alarms still in ALARM"
                };
                self.note(format!(
                    "gave up waiting for recovery after {} s: {what} ({})",
                    self.options.recovery_timeout_seconds,
                    in_alarm.join(", ")
                ));
                break;
            }
            if now >= next_progress {
                self.progress("recovery");
                next_progress += 5_000;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // Functions: restart, replace
    // --------------------------------------------------------------------------------------

    /// Stops cargo lambda watch and its instances, and starts it again with `env`.
    fn restart_functions(&mut self, env: Vec<(String, String)>, why: &str) -> Result<()> {
        let old_instances = instances_of(self.state.watch_pgid);
        // Not stack::stop_functions: its `kill -TERM -<pgid>` is unsafe (see signal_group).
        support::signal_group(self.state.watch_pgid, "TERM");
        if !support::wait_gone(self.state.watch_pgid, Duration::from_secs(15)) {
            support::signal_group(self.state.watch_pgid, "KILL");
            support::wait_gone(self.state.watch_pgid, Duration::from_secs(5));
        }
        for instance in old_instances {
            if !support::wait_gone(instance.pid, Duration::from_secs(5)) {
                support::signal(instance.pid, "KILL");
            }
        }
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.state.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let pgid = stack::start_functions(
            self.state.port,
            self.state.serving(),
            &env,
            &self.state.function_log,
        )?;
        self.state.watch_pgid = pgid;
        stack::save_state(&self.state)?;
        self.env = env;
        self.wait_ready(Duration::from_secs(120))
            .with_context(|| format!("the functions did not come back {why}"))?;
        Ok(())
    }

    /// Every route answers something (any status: an injected fault may answer 500).
    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = now_ms() + timeout.as_millis() as i64;
        for (method, path) in stack::probe_routes() {
            loop {
                let answer = http(
                    method,
                    &format!("{}{path}", self.base_url()),
                    None,
                    None,
                    None,
                    Duration::from_secs(5),
                );
                if answer.status != 0 {
                    break;
                }
                if now_ms() > deadline {
                    bail!("{method} {path} did not answer within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Writes the platform's line for a dead instance into the function log (Lambda writes
    /// `Runtime exited with error: signal: killed` into the function's log stream).
    fn crash_line(&self, at_ms: i64, function: &str, pid: u32) -> Result<()> {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.state.function_log)?;
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
        &mut self,
        function: &str,
        template_pid: u32,
        number: usize,
    ) -> Result<u32> {
        let mut env = support::environment_of(template_pid)?;
        for (key, value) in &mut env {
            if key == "AWS_LAMBDA_INSTANCE_ID" {
                *value = format!("drill-replacement-{number}");
            }
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.state.function_log)?;
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
        self.replacements.push(child);
        Ok(pid)
    }

    fn live_instances(&self) -> Vec<support::Instance> {
        let mut all = instances_of(self.state.watch_pgid);
        all.extend(instances_of(std::process::id()));
        all
    }

    // --------------------------------------------------------------------------------------
    // The drills
    // --------------------------------------------------------------------------------------

    fn store_outage(&mut self) -> Result<()> {
        let pid = self.state.dynamodb_pid;
        if !support::signal(pid, "STOP") {
            bail!("cannot SIGSTOP DynamoDB Local (pid {pid})");
        }
        self.java_stopped = true;
        self.inject(format!(
            "DynamoDB Local (java, pid {pid}) frozen with SIGSTOP"
        ));
        self.observe_for(Duration::from_secs(self.options.fault_seconds), "outage")?;
        if !support::signal(pid, "CONT") {
            bail!("cannot SIGCONT DynamoDB Local (pid {pid})");
        }
        self.java_stopped = false;
        self.mitigate(format!(
            "DynamoDB Local resumed with SIGCONT after {} s",
            self.options.fault_seconds
        ));
        Ok(())
    }

    fn store_slowdown(&mut self) -> Result<()> {
        let delay = Duration::from_millis(self.options.delay_ms);
        let proxy = self.proxy.clone().context("the proxy is not running")?;
        proxy.set_writes_only(false);
        proxy.set_response_delay(delay);
        let injected = self.inject(format!(
            "every DynamoDB answer delayed by {} ms (proxy {})",
            self.options.delay_ms,
            proxy.endpoint()
        ));
        let window_ms = self.options.fault_seconds as i64 * 1_000;
        self.observe_for(Duration::from_secs(5), "slowdown")?;
        self.abandoned_create(0)?;
        let remaining = (injected + window_ms - now_ms()).max(0) as u64;
        self.observe_for(Duration::from_millis(remaining), "slowdown")?;
        proxy.set_response_delay(Duration::ZERO);
        self.mitigate(format!(
            "proxy delay back to 0 after {} s",
            self.options.fault_seconds
        ));
        Ok(())
    }

    /// After recovery, the ambiguous write on its own: for a few seconds only the answers to
    /// TransactWriteItems are late, so a create's write commits while its client (0.8 s) and
    /// the SDK's attempts (1 s) have given up. Short enough that no breaker opens (5 failures
    /// of 3 s each), so the probe reaches the store.
    fn ambiguous_write_episode(&mut self) -> Result<()> {
        let proxy = self.proxy.clone().context("the proxy is not running")?;
        let Some(order_id) = self
            .slowdown
            .probes
            .get(1)
            .map(|probe| probe.order_id.clone())
        else {
            return Ok(());
        };
        proxy.set_writes_only(true);
        proxy.set_response_delay(Duration::from_millis(self.options.delay_ms));
        let started = now_ms();
        self.timeline(
            started,
            format!(
                "exactly-once episode: only the answers to TransactWriteItems are {} ms late",
                self.options.delay_ms
            ),
            "drill",
        );
        self.abandoned_create(1)?;
        // Keep the writes slow until the abandoned create has been processed (it may wait in
        // the gateway's queue first), at most 10 s.
        let url = format!("{}/users/{PROBE_USER}/orders/{order_id}", self.base_url());
        let token = self.token(PROBE_USER)?;
        while now_ms() - started < 10_000 {
            let got = http(
                "GET",
                &url,
                Some(&token),
                None,
                None,
                Duration::from_secs(2),
            );
            if got.status == 200 {
                self.timeline(
                    now_ms(),
                    format!("the abandoned create's order {order_id} is in the table"),
                    "drill (curl)",
                );
                std::thread::sleep(Duration::from_millis(3_500));
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        proxy.set_response_delay(Duration::ZERO);
        proxy.set_writes_only(false);
        self.timeline(
            now_ms(),
            "exactly-once episode over: proxy delay 0",
            "drill",
        );
        self.observe_for(Duration::from_secs(2), "recovery")?;
        Ok(())
    }

    fn probe_body() -> String {
        json!({"items": [{"productId": PROBE_PRODUCT, "quantity": 1}]}).to_string()
    }

    /// Sends probe `index`'s create with its key and a 0.8 s client timeout.
    fn abandoned_create(&mut self, index: usize) -> Result<()> {
        let url = format!("{}/users/{PROBE_USER}/orders", self.base_url());
        let token = self.token(PROBE_USER)?;
        let Some(key) = self
            .slowdown
            .probes
            .get(index)
            .map(|probe| probe.key.clone())
        else {
            return Ok(());
        };
        // A fast 503 is the open breaker: nothing was attempted, so the client retries (with
        // the same key) until an attempt reaches the store and is abandoned after 0.8 s.
        let mut first = support::HttpResult::default();
        for _ in 0..5 {
            first = http(
                "POST",
                &url,
                Some(&token),
                Some(&Self::probe_body()),
                Some(&key),
                Duration::from_millis(800),
            );
            if first.timed_out || first.seconds >= 0.5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        self.timeline(
            now_ms(),
            format!(
                "exactly-once probe: POST {PROBE_USER} 1 x {PROBE_PRODUCT}, Idempotency-Key {key}, 0.8 s client timeout -> {}",
                if first.timed_out { "client timeout".to_owned() } else { format!("HTTP {}", first.status) }
            ),
            "drill (curl)",
        );
        if let Some(probe) = self.slowdown.probes.get_mut(index) {
            probe.first = Some(first);
        }
        Ok(())
    }

    /// After the slowdown: was each abandoned create applied? Then retry it with its key.
    fn slowdown_retry(&mut self) -> Result<()> {
        let before: BTreeSet<String> = self
            .orders_of(PROBE_USER)?
            .iter()
            .map(|order| order.order_id.to_string())
            .collect();
        let url = format!("{}/users/{PROBE_USER}/orders", self.base_url());
        let token = self.token(PROBE_USER)?;
        for index in 0..self.slowdown.probes.len() {
            let (key, order_id) = {
                let probe = &self.slowdown.probes[index];
                (probe.key.clone(), probe.order_id.clone())
            };
            let mut retry = support::HttpResult::default();
            for _ in 0..10 {
                retry = http(
                    "POST",
                    &url,
                    Some(&token),
                    Some(&Self::probe_body()),
                    Some(&key),
                    Duration::from_secs(10),
                );
                // 503: the store is still recovering; 409 REQUEST_IN_PROGRESS: the abandoned
                // request still holds its key. Both say "retry"; anything else is the answer.
                let in_flight = retry.status == 409 && retry.body.contains("REQUEST_IN_PROGRESS");
                if retry.status != 503 && retry.status != 0 && !in_flight {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            let applied = before.contains(&order_id);
            self.timeline(
                now_ms(),
                format!(
                    "exactly-once probe {key} retried with the same key -> HTTP {}{}; the abandoned attempt had {}been applied",
                    retry.status,
                    if retry.header("idempotent-replayed").is_some() { " (Idempotent-Replayed)" } else { "" },
                    if applied { "" } else { "not " }
                ),
                "drill (curl)",
            );
            let probe = &mut self.slowdown.probes[index];
            probe.applied_before_retry = Some(applied);
            probe.retry = Some(retry);
        }
        Ok(())
    }

    fn function_crash(&mut self) -> Result<()> {
        let pairs = [
            ["create-order", "pay-order"],
            ["pay-order", "get-order"],
            ["get-order", "create-order"],
        ];
        let mut watch_replaced = 0;
        let mut drill_replaced = 0;
        let rounds = self.options.kill_rounds.max(1);
        let spacing = Duration::from_secs(10);
        self.inject(format!(
            "kill -9 of function instances: {rounds} rounds of 2 instances, 10 s apart"
        ));
        for round in 0..rounds {
            let round_started = now_ms();
            let before: BTreeSet<u32> = instances_of(self.state.watch_pgid)
                .iter()
                .map(|instance| instance.pid)
                .collect();
            let mut killed = Vec::new();
            for function in pairs[round as usize % pairs.len()] {
                let candidates: Vec<support::Instance> = self
                    .live_instances()
                    .into_iter()
                    .filter(|instance| instance.function == function)
                    .collect();
                if candidates.len() < 2 {
                    self.note(format!(
                        "round {}: only {} {function} instance(s) left, not killing the last",
                        round + 1,
                        candidates.len()
                    ));
                    continue;
                }
                let victim = candidates[fastrand::usize(..candidates.len())].clone();
                support::signal(victim.pid, "KILL");
                let at = now_ms();
                self.crash_line(at, function, victim.pid)?;
                self.timeline(
                    at,
                    format!("kill -9 {function} instance pid {}", victim.pid),
                    "drill",
                );
                self.kills.push((at, function.to_owned(), victim.pid));
                killed.push(victim);
            }
            // Give cargo lambda watch two seconds to replace them by itself.
            self.observe_for(Duration::from_secs(2), "crash")?;
            for victim in killed {
                let respawned = instances_of(self.state.watch_pgid)
                    .into_iter()
                    .any(|instance| {
                        instance.function == victim.function && !before.contains(&instance.pid)
                    });
                if respawned {
                    watch_replaced += 1;
                    continue;
                }
                let Some(template) = self
                    .live_instances()
                    .into_iter()
                    .find(|instance| instance.function == victim.function)
                else {
                    self.note(format!(
                        "no live {} instance to copy the environment from",
                        victim.function
                    ));
                    continue;
                };
                drill_replaced += 1;
                let pid = self.replace_instance(&victim.function, template.pid, drill_replaced)?;
                self.timeline(
                    now_ms(),
                    format!("replacement {} instance started, pid {pid} (emulating Lambda; cargo lambda watch did not)", victim.function),
                    "drill",
                );
            }
            self.progress("crash");
            if round + 1 < rounds {
                let next = round_started + spacing.as_millis() as i64;
                self.observe_for(
                    Duration::from_millis((next - now_ms()).max(0) as u64),
                    "crash",
                )?;
            }
        }
        self.observe_for(Duration::from_secs(1), "crash")?;
        let counts = support::count_by_function(&self.live_instances());
        self.mitigate(format!(
            "every killed instance replaced; instances per function now {counts:?}"
        ));
        self.note(format!(
            "cargo lambda watch replaced {watch_replaced} of {} killed instances by itself; the drill replaced {drill_replaced} \
             (it copies a live instance's environment, as Lambda would start a new execution environment)",
            self.kills.len()
        ));
        Ok(())
    }

    fn bad_deploy(&mut self) -> Result<()> {
        let rate = self.options.fault_rate;
        let mut env = self.env.clone();
        for (key, value) in &mut env {
            if key == "FAULT_INJECTION_RATE" {
                *value = rate.to_string();
            }
        }
        let injected = self.inject(format!(
            "\"deploy\": the functions restart with FAULT_INJECTION_RATE={rate}"
        ));
        self.restart_functions(env, "after the deploy")?;
        self.timeline(
            now_ms(),
            "bad release serving (functions answer again)",
            "drill",
        );
        // The rollback is automatic: on the alarm, like a CodeDeploy canary alarm.
        let deadline = injected + self.options.recovery_timeout_seconds as i64 * 1_000;
        let mut next_progress = now_ms() + 5_000;
        let alert = loop {
            support::check_interrupt()?;
            if let Some(alert) = self
                .observer()?
                .with(|observed| observed.alert_of("api-5xx-rate", injected).cloned())
            {
                break Some(alert);
            }
            if now_ms() > deadline {
                break None;
            }
            if now_ms() >= next_progress {
                self.progress("bad-deploy");
                next_progress += 5_000;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        match &alert {
            Some(alert) => println!("  rollback triggered by {}", alert.line()),
            None => {
                self.note("no api-5xx-rate alert within the recovery timeout: rolling back anyway")
            }
        }
        let rollback_started = now_ms();
        self.timeline(
            rollback_started,
            "rollback started: restart with FAULT_INJECTION_RATE=0",
            "drill",
        );
        let mut env = self.env.clone();
        for (key, value) in &mut env {
            if key == "FAULT_INJECTION_RATE" {
                *value = "0".to_owned();
            }
        }
        self.restart_functions(env, "after the rollback")?;
        self.mitigate(format!(
            "rollback done in {:.1} s (functions restarted with FAULT_INJECTION_RATE=0)",
            (now_ms() - rollback_started) as f64 / 1_000.0
        ));
        Ok(())
    }

    fn hot_product(&mut self) -> Result<()> {
        let env: Vec<(String, String)> = [
            ("BASE_URL", self.base_url()),
            ("AUTH_SECRET", self.state.jwt_secret.clone()),
            ("VUS", self.options.flash_buyers.to_string()),
            ("FLASH_STOCK", FLASH_STOCK.to_string()),
            ("FLASH_PRODUCT", FLASH_PRODUCT.to_owned()),
            ("LEDGER", "1".to_owned()),
            ("FLASH_VERIFY", "1".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let flash_dir = self.findings.dir.join("flash-sale");
        self.flash = Some(K6Run::spawn(
            "flash-sale",
            "k6/flash-sale.js",
            &env,
            &flash_dir,
        )?);
        self.inject(format!(
            "flash sale: {} buyers (k6 flash-sale.js) race for {FLASH_STOCK} units of {FLASH_PRODUCT} on top of the load",
            self.options.flash_buyers
        ));
        let started = now_ms();
        let deadline = started + 180_000;
        let mut next_progress = started + 5_000;
        while self.flash.as_mut().is_some_and(K6Run::running) {
            let now = now_ms();
            let latest = self
                .observer()?
                .with(|observed| observed.detector.latest_ms.unwrap_or(started));
            let silent = now - started > GATEWAY_SILENCE_MS && now - latest > GATEWAY_SILENCE_MS;
            if now > deadline || silent {
                self.note(if silent {
                    format!(
                        "the local gateway served no request for {} s during the flash sale: the gateway \
                         stopped dispatching with {} buyers at once (a wedged cargo lambda watch: see \
                         ops/upstream/cargo-lambda.md); stopping the sale",
                        (now - latest) / 1_000,
                        self.options.flash_buyers
                    )
                } else {
                    "the flash sale did not finish within 3 min; stopping it".to_owned()
                });
                if let Some(flash) = self.flash.as_mut() {
                    flash.stop(Duration::from_secs(30));
                }
                break;
            }
            if now >= next_progress {
                self.progress("flash-sale");
                next_progress += 5_000;
            }
            support::check_interrupt()?;
            std::thread::sleep(Duration::from_millis(250));
        }
        self.mitigate("the flash sale is over (k6 flash-sale.js exited)".to_owned());
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // After the load: numbers and verdicts
    // --------------------------------------------------------------------------------------

    fn orders_of(&self, user: &str) -> Result<Vec<order_service::domain::Order>> {
        let store = self.runtime.block_on(data::store_for(
            &self.state.dynamodb_endpoint,
            &self.state.table,
        ));
        let orders = self
            .runtime
            .block_on(store.all_orders())
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(orders
            .into_iter()
            .filter(|order| order.user_id.as_str() == user)
            .collect())
    }

    fn collect(&mut self, baseline_end: i64) -> Result<()> {
        let observer = self.observer()?;
        let injected = self.findings.injected.unwrap_or(baseline_end);
        let load_started = self.findings.load_started.unwrap_or(self.findings.started);
        let load_stopped = self.findings.load_stopped.unwrap_or_else(now_ms);
        let fault_end = self
            .findings
            .recovered
            .or(self.findings.mitigated)
            .unwrap_or(load_stopped);
        let (events, first_failure, fault_window, whole_run, baseline) =
            observer.with(|observed| {
                (
                    observed.events.clone(),
                    observed.detector.first_failure_after(injected),
                    observed
                        .detector
                        .window(injected, fault_end.max(injected + 1_000)),
                    observed.detector.window(load_started, load_stopped + 1_000),
                    observed.detector.window(load_started, baseline_end),
                )
            });
        self.findings.first_failure = first_failure.filter(|at| *at <= fault_end + 5_000);
        if let Some(at) = self.findings.first_failure {
            self.findings.timeline.push(TimelineEntry {
                at_ms: at,
                event: "first failed request (answer >= 500 or crash) after T0".to_owned(),
                source: "function log".to_owned(),
            });
        }
        self.findings.detected = events
            .iter()
            .find(|event| event.kind == EventKind::Alert && event.at_ms >= injected)
            .cloned();
        for event in events.iter().filter(|event| event.at_ms >= load_started) {
            let text = match event.kind {
                EventKind::Alert => format!(
                    "ALERT {} (value {})",
                    event.alarm,
                    monitor::format_value(event.value)
                ),
                EventKind::Resolved => format!("RESOLVED {}", event.alarm),
            };
            self.findings.timeline.push(TimelineEntry {
                at_ms: event.at_ms,
                event: text,
                source: "detector".to_owned(),
            });
        }
        self.findings.resolved = events
            .iter()
            .filter(|event| event.kind == EventKind::Resolved && event.at_ms >= injected)
            .map(|event| event.at_ms)
            .max()
            .filter(|_| {
                events
                    .iter()
                    .any(|event| event.kind == EventKind::Alert && event.at_ms >= injected)
            });
        self.findings.events = events;
        self.findings.fault_window = fault_window;
        self.findings.whole_run = whole_run;
        self.findings.baseline = baseline;
        self.findings.k6 = self.load.as_ref().and_then(K6Run::summary);
        self.findings.timeline.sort_by_key(|entry| entry.at_ms);
        Ok(())
    }

    fn verify(&mut self) -> Result<()> {
        // The ledger against the table.
        let mut ledger: Vec<LedgerEntry> = Vec::new();
        for run in self.load.iter().chain(self.flash.iter()) {
            ledger.extend(run.ledger().iter().filter_map(LedgerEntry::from_json));
        }
        let store = self.runtime.block_on(data::store_for(
            &self.state.dynamodb_endpoint,
            &self.state.table,
        ));
        let orders = self
            .runtime
            .block_on(store.all_orders())
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let check = check_ledger(&ledger, &orders);
        self.check(
            "zero acknowledged writes lost",
            check.lost.is_empty() && check.entries > 0,
            format!(
                "{} acknowledged writes in k6's ledger ({} creates, {} pays, {} cancels), {} orders in the table, {} lost{}",
                check.entries,
                check.creates,
                check.pays,
                check.cancels,
                orders.len(),
                check.lost_count(),
                check.lost.first().map(|first| format!(", e.g. {first}")).unwrap_or_default()
            ),
        );
        self.findings.ledger = check;
        match data::audit(&self.state.dynamodb_endpoint, &self.state.table) {
            Ok(audit) => {
                let clean = audit.is_clean();
                self.check(
                    "the audit is clean",
                    clean,
                    if clean {
                        format!(
                            "{} orders {:?}; money and stock exactly conserved",
                            audit.orders, audit.orders_by_status
                        )
                    } else {
                        format!(
                            "{} violation(s): {}",
                            audit.violations.len(),
                            audit.violations.join("; ")
                        )
                    },
                );
                self.findings.audit = Some(audit);
            }
            Err(error) => {
                self.check(
                    "the audit is clean",
                    false,
                    format!("the audit could not run: {error:#}"),
                );
                self.findings.audit_error = Some(format!("{error:#}"));
            }
        }
        match self.findings.recovered {
            Some(recovered) => {
                let after =
                    (recovered - self.findings.mitigated.unwrap_or(recovered)) as f64 / 1_000.0;
                self.check(
                    "the service recovers without a human",
                    true,
                    format!(
                        "clean request log from {} ({after:.1} s after mitigation)",
                        format_ms(recovered)
                    ),
                );
            }
            None => self.check(
                "the service recovers without a human",
                false,
                "no clean window before the timeout",
            ),
        }
        let k6_ran = self
            .findings
            .k6
            .as_ref()
            .and_then(|summary| support::metric(summary, "http_reqs", "count"))
            .unwrap_or(0.0);
        if k6_ran <= 0.0 {
            self.note(
                "k6 wrote no summary.json with requests: the k6 numbers of this report are missing",
            );
        }
        self.expected_alarm();
        match self.kind {
            Kind::StoreOutage => self.verify_store_outage(),
            Kind::StoreSlowdown => self.verify_store_slowdown(&orders),
            Kind::FunctionCrash => self.verify_function_crash(),
            Kind::BadDeploy => self.verify_bad_deploy(),
            Kind::HotProduct => self.verify_hot_product(&orders),
        }
        self.describe();
        Ok(())
    }

    fn expected_alarm(&mut self) {
        let injected = self.findings.injected.unwrap_or(0);
        let expected = self.kind.expected_alarms();
        match expected {
            [] => {
                let noisy: Vec<String> = self
                    .findings
                    .events
                    .iter()
                    .filter(|event| {
                        event.kind == EventKind::Alert
                            && event.at_ms >= injected
                            && matches!(event.alarm.as_str(), "api-5xx-rate" | "lambda-errors")
                    })
                    .map(AlarmEvent::line)
                    .collect();
                self.check(
                    "api-5xx-rate and lambda-errors stay quiet",
                    noisy.is_empty(),
                    if noisy.is_empty() {
                        "no error alarm".to_owned()
                    } else {
                        noisy.join("; ")
                    },
                );
            }
            alarms => {
                let fired: Vec<String> = self
                    .findings
                    .events
                    .iter()
                    .filter(|event| {
                        event.kind == EventKind::Alert
                            && event.at_ms >= injected
                            && alarms.contains(&event.alarm.as_str())
                    })
                    .map(|alert| {
                        format!(
                            "{} after {:.1} s",
                            alert.alarm,
                            (alert.at_ms - injected) as f64 / 1_000.0
                        )
                    })
                    .collect();
                let name = format!("ALERT {} fires", alarms.join(" or "));
                let missing: Vec<&str> = alarms
                    .iter()
                    .filter(|alarm| !fired.iter().any(|line| line.starts_with(**alarm)))
                    .copied()
                    .collect();
                self.check(
                    &name,
                    !fired.is_empty(),
                    if fired.is_empty() {
                        "none fired".to_owned()
                    } else if missing.is_empty() {
                        fired.join(", ")
                    } else {
                        format!("{}; did not fire: {}", fired.join(", "), missing.join(", "))
                    },
                );
            }
        }
    }

    /// 5xx answers in `bucket` other than `allowed` ("503 STORE_UNAVAILABLE").
    fn other_5xx(bucket: &Bucket, allowed: &[&str]) -> Vec<String> {
        bucket
            .by_status
            .iter()
            .filter(|(key, _)| key.starts_with('5') && !allowed.contains(&key.as_str()))
            .map(|(key, count)| format!("{count} x {key}"))
            .collect()
    }

    fn hang_checks(&mut self) {
        let max_latency = self.findings.whole_run.max_latency_ms;
        self.check(
            "no request runs past the 10 s function timeout",
            max_latency < FUNCTION_TIMEOUT_MS,
            format!("longest request in the function log {:.0} ms", max_latency),
        );
        let transport = self
            .findings
            .k6
            .as_ref()
            .map(|summary| {
                support::unexpected_by_code(summary)
                    .get("TRANSPORT")
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let k6_max = self
            .findings
            .k6
            .as_ref()
            .and_then(|summary| support::metric(summary, "http_req_duration", "max"))
            .unwrap_or(0.0);
        let slowest_probe = self
            .probes
            .iter()
            .map(|probe| probe.result.seconds)
            .fold(0.0, f64::max);
        let hung_probes = self
            .probes
            .iter()
            .filter(|probe| probe.result.status == 0)
            .count();
        let slow_probes = self
            .probes
            .iter()
            .filter(|probe| probe.result.seconds >= 10.0)
            .count();
        let passed = transport == 0
            && hung_probes == 0
            && slowest_probe < 10.0
            && k6_max < FUNCTION_TIMEOUT_MS;
        let detail = format!(
            "k6: slowest answer {:.0} ms, {transport} requests without an answer within {K6_HTTP_TIMEOUT}; \
             canary: slowest {:.2} s, {slow_probes} of {} took >= 10 s, {hung_probes} without an answer{}",
            k6_max,
            slowest_probe,
            self.probes.len(),
            if passed {
                String::new()
            } else {
                format!(
                    ". The functions never ran longer than {:.0} ms, so about {:.1} s of the slowest wait was \
                     spent queued in cargo lambda watch: 4 instances per function, each held up to 3 s per call \
                     until its breaker opened (5 failures in a row). Lambda would run more environments instead \
                     of queueing",
                    max_latency,
                    (k6_max.max(slowest_probe * 1_000.0) - max_latency) / 1_000.0
                )
            }
        );
        if max_latency < FUNCTION_TIMEOUT_MS {
            self.advisory(
                "no client waits 10 s or more (gateway view)",
                passed,
                detail,
            );
        } else {
            self.check(
                "no client waits 10 s or more (gateway view)",
                passed,
                detail,
            );
        }
    }

    fn verify_store_outage(&mut self) {
        let others = Self::other_5xx(&self.findings.whole_run, &["503 STORE_UNAVAILABLE"]);
        let unavailable = self.findings.fault_window.store_unavailable;
        self.check(
            "only 503 STORE_UNAVAILABLE during the outage (any 500 fails)",
            others.is_empty() && unavailable > 0,
            format!(
                "{unavailable} x 503 STORE_UNAVAILABLE ({} fast-failed by the breaker in < {} ms){}",
                self.findings.fault_window.fast_store_unavailable,
                monitor::FAST_FAIL_MS,
                if others.is_empty() { String::new() } else { format!("; other 5xx: {}", others.join(", ")) }
            ),
        );
        self.retry_after_check();
        self.hang_checks();
    }

    fn retry_after_check(&mut self) {
        let unavailable: Vec<&Probe> = self
            .probes
            .iter()
            .filter(|probe| probe.result.status == 503)
            .collect();
        let with_header = unavailable
            .iter()
            .filter(|probe| probe.result.header("retry-after").is_some())
            .count();
        self.check(
            "503s carry Retry-After (canary)",
            !unavailable.is_empty() && with_header == unavailable.len(),
            format!(
                "{with_header} of {} canary 503s had Retry-After",
                unavailable.len()
            ),
        );
    }

    fn verify_store_slowdown(&mut self, orders: &[order_service::domain::Order]) {
        let others = Self::other_5xx(&self.findings.whole_run, &["503 STORE_UNAVAILABLE"]);
        let window = self.findings.fault_window.clone();
        self.check(
            "slow store calls end as 503 STORE_UNAVAILABLE, never 500/502",
            others.is_empty(),
            format!(
                "{} x 503 STORE_UNAVAILABLE in the fault window{}",
                window.store_unavailable,
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; other 5xx: {}", others.join(", "))
                }
            ),
        );
        let p99 = percentile(&window.latencies, 99.0).unwrap_or(0.0);
        self.check(
            "timeouts are bounded by the store budget",
            window.max_latency_ms < FUNCTION_TIMEOUT_MS,
            format!(
                "max {:.0} ms, p99 {:.0} ms in the fault window (budget: 1 s per attempt, 3 s per store call; Lambda timeout 10 s)",
                window.max_latency_ms, p99
            ),
        );
        self.check(
            "the circuit breaker fails fast",
            window.fast_store_unavailable > 0,
            format!(
                "{} of {} 503s answered in < {} ms (breaker open)",
                window.fast_store_unavailable,
                window.store_unavailable,
                monitor::FAST_FAIL_MS
            ),
        );
        // Exactly once: one order per key, the stock moved once per key.
        let slowdown = self.slowdown.clone();
        let mine: Vec<String> = orders
            .iter()
            .filter(|order| order.user_id.as_str() == PROBE_USER)
            .map(|order| order.order_id.to_string())
            .collect();
        let stock_after = order_service::domain::ProductId::parse(PROBE_PRODUCT)
            .ok()
            .and_then(|product| {
                let store = self.runtime.block_on(data::store_for(
                    &self.state.dynamodb_endpoint,
                    &self.state.table,
                ));
                self.runtime
                    .block_on(store.product_stock(&product))
                    .ok()
                    .flatten()
            });
        let moved = match (slowdown.stock_before, stock_after) {
            (Some(before), Some(after)) => before - after,
            _ => -1,
        };
        let mut all_once =
            moved == slowdown.probes.len() as i64 && mine.len() == slowdown.probes.len();
        let mut parts = Vec::new();
        for probe in &slowdown.probes {
            let first = match &probe.first {
                Some(first) if first.timed_out => "client gave up after 0.8 s".to_owned(),
                Some(first) => format!(
                    "first attempt answered {} in {:.2} s",
                    first.status, first.seconds
                ),
                None => "not sent".to_owned(),
            };
            let retry_status = probe.retry.as_ref().map_or(0, |retry| retry.status);
            let retry_id = probe
                .retry
                .as_ref()
                .and_then(support::HttpResult::json)
                .and_then(|body| {
                    body.get("orderId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            let replayed = probe
                .retry
                .as_ref()
                .is_some_and(|retry| retry.header("idempotent-replayed").is_some());
            let copies = mine.iter().filter(|id| **id == probe.order_id).count();
            let once = matches!(retry_status, 200 | 201)
                && retry_id.as_deref() == Some(probe.order_id.as_str())
                && copies == 1
                && probe
                    .first
                    .as_ref()
                    .is_some_and(|first| first.timed_out || first.status >= 500)
                && (replayed == (probe.applied_before_retry == Some(true)));
            all_once &= once;
            parts.push(format!(
                "[{}] {first}; applied before the retry: {}; retry {retry_status}{} -> {copies} order {}",
                probe.phase,
                match probe.applied_before_retry {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                },
                if replayed { " Idempotent-Replayed" } else { "" },
                probe.order_id
            ));
        }
        self.check(
            "exactly once: creates abandoned by the client during the slowdown, retried with their keys",
            all_once,
            format!(
                "{}; {PROBE_USER} has {} order(s); {PROBE_PRODUCT} stock {:?} -> {:?} (moved {moved} for {} keys)",
                parts.join("; "),
                mine.len(),
                slowdown.stock_before,
                stock_after,
                slowdown.probes.len()
            ),
        );
        self.hang_checks();
    }

    fn verify_function_crash(&mut self) {
        let kills = self.kills.len() as u64;
        let summary = self.findings.k6.clone().unwrap_or(Value::Null);
        let k6_failed =
            support::metric(&summary, "http_req_failed", "passes").unwrap_or(0.0) as u64;
        let by_code = support::unexpected_by_code(&summary);
        let log_5xx = self.findings.whole_run.server_errors;
        self.check(
            "in-flight failures at most one per killed instance",
            k6_failed + log_5xx <= kills,
            format!(
                "{kills} instances killed; k6 saw {k6_failed} failed requests {by_code:?}; the function log has {log_5xx} answers >= 500"
            ),
        );
        if by_code.get("TRANSPORT").copied().unwrap_or(0) > 0 {
            self.note(format!(
                "an invocation cut off by a kill never gets an answer from cargo lambda watch: the client waits \
                 until its own timeout ({K6_HTTP_TIMEOUT} for k6), where API Gateway would answer 502 at once"
            ));
        }
        let counts = support::count_by_function(&self.live_instances());
        let full = counts
            .values()
            .all(|count| *count >= self.state.concurrency as usize);
        self.check(
            "instances are back to full strength",
            full,
            format!(
                "instances per function after the drill: {counts:?} (concurrency {})",
                self.state.concurrency
            ),
        );
    }

    fn verify_bad_deploy(&mut self) {
        let window = self.findings.fault_window.clone();
        let answered_500 = window
            .by_status
            .iter()
            .filter(|(key, _)| key.starts_with("500"))
            .map(|(_, count)| *count)
            .sum::<u64>();
        self.check(
            "the failures are the injected ones (500 INTERNAL_ERROR, fault=true)",
            answered_500 == window.faults && window.faults > 0,
            format!(
                "{} faults injected, {answered_500} answers 500 in the fault window, {} requests in all ({:.1} % failed)",
                window.faults,
                window.requests,
                if window.requests > 0 { 100.0 * answered_500 as f64 / window.requests as f64 } else { 0.0 }
            ),
        );
        let after = match (self.findings.mitigated, self.observer()) {
            (Some(mitigated), Ok(observer)) => {
                let until = self.findings.load_stopped.unwrap_or_else(now_ms) + 1_000;
                observer.with(|observed| observed.detector.window(mitigated, until).faults)
            }
            _ => 0,
        };
        self.check(
            "the rollback removes the fault",
            after == 0,
            format!("{after} injected faults after the rollback"),
        );
        if let (Some(alert), Some(mitigated)) =
            (self.findings.detected.clone(), self.findings.mitigated)
        {
            self.note(format!(
                "rollback path: ALERT at {} -> rollback done at {} ({:.1} s); the restarts refuse connections for a moment, \
                 which k6 counts as TRANSPORT errors (a local artefact: an alias shift on AWS has no gap)",
                format_ms(alert.at_ms),
                format_ms(mitigated),
                (mitigated - alert.at_ms) as f64 / 1_000.0
            ));
        }
    }

    fn verify_hot_product(&mut self, orders: &[order_service::domain::Order]) {
        let flash_summary = self
            .flash
            .as_ref()
            .and_then(K6Run::summary)
            .unwrap_or(Value::Null);
        let sold = support::metric(&flash_summary, "flash_sold", "count").unwrap_or(-1.0);
        let rejected = support::metric(&flash_summary, "flash_rejected", "count").unwrap_or(-1.0);
        let verified =
            support::metric(&flash_summary, "flash_verified_orders", "count").unwrap_or(-1.0);
        let units_held: i64 = orders
            .iter()
            .filter(|order| order.status.holds_stock())
            .flat_map(|order| order.items.iter())
            .filter(|line| line.product_id.as_str() == FLASH_PRODUCT)
            .map(|line| line.quantity.get() as i64)
            .sum();
        let stock = order_service::domain::ProductId::parse(FLASH_PRODUCT)
            .ok()
            .and_then(|product| {
                let store = self.runtime.block_on(data::store_for(
                    &self.state.dynamodb_endpoint,
                    &self.state.table,
                ));
                self.runtime
                    .block_on(store.product_stock(&product))
                    .ok()
                    .flatten()
            });
        self.check(
            "exactly 50 sold, no oversell",
            sold == FLASH_STOCK as f64 && units_held == FLASH_STOCK && stock == Some(0),
            format!(
                "k6: {sold} sold, {rejected} rejected OUT_OF_STOCK, {verified} verified by listing; table: {units_held} units held by orders, stock {stock:?}"
            ),
        );
        let others = Self::other_5xx(&self.findings.whole_run, &[]);
        self.check(
            "zero 5xx",
            others.is_empty(),
            if others.is_empty() {
                "none".to_owned()
            } else {
                others.join(", ")
            },
        );
        // The other endpoints keep their latency.
        let window = self.findings.fault_window.clone();
        let baseline = self.findings.baseline.clone();
        let mut worst = 0.0_f64;
        let mut worst_baseline = 0.0_f64;
        let mut degraded = Vec::new();
        let mut parts = Vec::new();
        for (operation, op) in &window.by_op {
            if operation == "create-order" {
                continue;
            }
            let p95 = percentile(&op.latencies, 95.0).unwrap_or(0.0);
            let before = baseline
                .by_op
                .get(operation)
                .and_then(|op| percentile(&op.latencies, 95.0));
            worst = worst.max(p95);
            worst_baseline = worst_baseline.max(before.unwrap_or(0.0));
            if p95 > LOAD_P95_MS.max(2.0 * before.unwrap_or(0.0)) {
                degraded.push(operation.clone());
            }
            parts.push(format!(
                "{operation} {p95:.1} ms (baseline {})",
                before.map_or("-".to_owned(), |before| format!("{before:.1} ms"))
            ));
        }
        let summary = self.findings.k6.clone().unwrap_or(Value::Null);
        let mut k6_parts = Vec::new();
        let mut k6_worst = 0.0_f64;
        for endpoint in ["pay", "get", "list", "cancel"] {
            if let Some(p95) = support::metric(
                &summary,
                &format!("http_req_duration{{endpoint:{endpoint}}}"),
                "p(95)",
            ) {
                k6_worst = k6_worst.max(p95);
                k6_parts.push(format!("{endpoint} {p95:.1} ms"));
            }
        }
        let detail = format!(
            "in-function p95 during the sale: {}; k6 end-to-end p95 over the whole load: {}",
            parts.join(", "),
            k6_parts.join(", ")
        );
        self.check(
            "the sale does not slow the other endpoints (p95 <= max(25 ms, 2 x baseline))",
            degraded.is_empty(),
            if degraded.is_empty() {
                detail.clone()
            } else {
                format!("slower: {}; {detail}", degraded.join(", "))
            },
        );
        let within = worst <= LOAD_P95_MS && k6_worst <= LOAD_P95_MS;
        let name = "the other endpoints keep p95 within the load threshold (25 ms)";
        if worst_baseline > LOAD_P95_MS {
            // The machine misses the threshold before the sale starts: not the sale's doing.
            self.advisory(
                name,
                within,
                format!(
                    "{detail}; the baseline before the sale already exceeds 25 ms (a busy machine)"
                ),
            );
        } else {
            self.check(name, within, detail);
        }
        let retries = window.store_retries;
        let conflicts = window
            .by_status
            .get("409 CONCURRENT_REQUEST")
            .copied()
            .unwrap_or(0);
        self.note(format!(
            "during the sale: {retries} store retries (transaction conflicts absorbed), {conflicts} x 409 CONCURRENT_REQUEST, \
             p99 {:.1} ms over all operations",
            percentile(&window.latencies, 99.0).unwrap_or(0.0)
        ));
    }

    /// Root cause, trigger and resolution texts, with the measured numbers.
    fn describe(&mut self) {
        let f = &self.findings;
        let window = &f.fault_window;
        let (injects, root_cause, trigger, resolution) = match self.kind {
            Kind::StoreOutage => (
                format!("DynamoDB Local frozen (SIGSTOP) for {} s, then resumed (SIGCONT)", self.options.fault_seconds),
                "Known by construction: the store stopped answering. TCP connections stay open, so every store call \
                 waits for the SDK attempt timeout (1 s, 3 attempts, 3 s per operation) and ends as STORE_UNAVAILABLE; \
                 each instance's circuit breaker opens after 5 consecutive failures and answers 503 with Retry-After at \
                 once for 2 s, then lets one call probe the store."
                    .to_owned(),
                format!("`cargo xtask drill store-outage`: `kill -STOP <java pid>` at T0, `kill -CONT` {} s later.", self.options.fault_seconds),
                format!(
                    "SIGCONT; the breakers close on their first successful call. {} x 503 STORE_UNAVAILABLE in the fault window, \
                     {} of them fast-failed by the breaker.",
                    window.store_unavailable, window.fast_store_unavailable
                ),
            ),
            Kind::StoreSlowdown => (
                format!("every DynamoDB answer delayed by {} ms for {} s (proxy)", self.options.delay_ms, self.options.fault_seconds),
                "Known by construction: store answers arrive later than the SDK's 1 s attempt timeout, so every store \
                 call burns its 3 s budget and ends as STORE_UNAVAILABLE, while its write may already have committed \
                 (the answer, not the request, is late). The breaker then fails calls fast."
                    .to_owned(),
                format!(
                    "`cargo xtask drill store-slowdown`: the functions were restarted against a delaying TCP proxy in front of \
                     DynamoDB Local; its answer delay went to {} ms at T0 and back to 0 {} s later; after recovery, a \
                     short episode delayed only the answers to TransactWriteItems, for the exactly-once probe.",
                    self.options.delay_ms, self.options.fault_seconds
                ),
                format!(
                    "Delay removed; no human action. Fault window: max latency {:.0} ms, {} x 503 ({} fast).",
                    window.max_latency_ms, window.store_unavailable, window.fast_store_unavailable
                ),
            ),
            Kind::FunctionCrash => (
                format!("kill -9 of {} function instances in {} rounds", self.kills.len(), self.options.kill_rounds),
                "Known by construction: execution environments die (SIGKILL) in the middle of the load. A request an \
                 instance was handling is cut off: its transaction committed entirely or not at all."
                    .to_owned(),
                "`cargo xtask drill function-crash`: `kill -9` of `target/local/<function>` children of cargo lambda \
                 watch, two per round, 10 s apart."
                    .to_owned(),
                "Each dead instance was replaced by a new one with the same environment (the drill emulates Lambda: cargo \
                 lambda watch does not restart killed instances)."
                    .to_owned(),
            ),
            Kind::BadDeploy => (
                format!("a release failing {} % of requests (FAULT_INJECTION_RATE={})", self.options.fault_rate * 100.0, self.options.fault_rate),
                "Known by construction: the new version answers a fraction of requests 500 INTERNAL_ERROR before doing \
                 any store work (the drill's stand-in for a bad release)."
                    .to_owned(),
                "`cargo xtask drill bad-deploy`: the functions were restarted with FAULT_INJECTION_RATE > 0 (\"deploy\")."
                    .to_owned(),
                "Automatic rollback on ALERT api-5xx-rate: restart with FAULT_INJECTION_RATE=0 (README R1/R2 on AWS).".to_owned(),
            ),
            Kind::HotProduct => (
                format!(
                    "flash sale: {} buyers for {FLASH_STOCK} units of {FLASH_PRODUCT}",
                    self.options.flash_buyers
                ),
                "Known by construction: many concurrent conditional transactions on one item (a hot key). Conditions keep \
                 stock exact; conflicts are retried with jittered backoff."
                    .to_owned(),
                "`cargo xtask drill hot-product`: k6 flash-sale.js (200 VUs, one buy each, common start) during the load.".to_owned(),
                format!(
                    "None needed: the sale ends when the stock is gone. {} store retries during the sale.",
                    window.store_retries
                ),
            ),
        };
        self.findings.injects = injects;
        self.findings.root_cause = root_cause;
        self.findings.trigger = trigger;
        self.findings.resolution = resolution;
    }

    // --------------------------------------------------------------------------------------
    // Cleanup: always runs
    // --------------------------------------------------------------------------------------

    fn cleanup(&mut self) {
        if self.java_stopped {
            support::signal(self.state.dynamodb_pid, "CONT");
            self.java_stopped = false;
        }
        if let Some(proxy) = &self.proxy {
            proxy.set_response_delay(Duration::ZERO);
        }
        if let Some(flash) = self.flash.as_mut() {
            flash.stop(Duration::from_secs(10));
        }
        if self.findings.load_stopped.is_none() {
            self.stop_load();
        }
        if let Some(canary) = self.canary.as_mut() {
            if self.probes.is_empty() {
                self.probes = canary.finish();
            }
        }
        if let Some(observer) = self.observer.as_mut() {
            observer.finish();
        }
        for child in &mut self.replacements {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(proxy) = &self.proxy {
            proxy.stop();
        }
        if self.options.keep_stack {
            println!(
                "  the stack keeps running at {} (--keep-stack)",
                self.state.base_url
            );
        } else {
            let instances = instances_of(self.state.watch_pgid);
            // Not stack::stop: its `kill -TERM -<pgid>` is kill(-1) for a pgid starting with 1
            // (see support::signal_group), i.e. SIGTERM to every process on the machine.
            support::signal_group(self.state.watch_pgid, "TERM");
            support::signal(self.state.dynamodb_pid, "TERM");
            let state_file = if self.state.port == stack::DEFAULT_PORT {
                paths::local().join("stack.json")
            } else {
                paths::local().join(format!("stack-{}.json", self.state.port))
            };
            let _ = std::fs::remove_file(state_file);
            if !support::wait_gone(self.state.watch_pgid, Duration::from_secs(10)) {
                support::signal_group(self.state.watch_pgid, "KILL");
            }
            for instance in instances {
                if !support::wait_gone(instance.pid, Duration::from_secs(3)) {
                    support::signal(instance.pid, "KILL");
                }
            }
            support::wait_gone(self.state.dynamodb_pid, Duration::from_secs(10));
        }
    }
}
