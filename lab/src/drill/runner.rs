//! The runner every drill shares: it starts the stack, the detector, the canary and the load,
//! calls the drill's steps in order, waits for recovery, collects the numbers, runs the checks
//! and writes the report; and whatever happens, cleans up what it started.
//!
//! A drill is one type implementing [`Scenario`]: its own preparation, the fault it injects,
//! what it runs after recovery, the alarms and checks it expects, and how the report describes
//! it. The trait lives here, beside the [`Drill`] its steps act on.

use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use order_service::domain::Order;

use crate::clock::{format_ms, now_ms};
use crate::faithful::Faithful;
use crate::monitor::{self, percentile, AlarmDef, EventKind};
use crate::paths;
use crate::process::{self, Signal};
use crate::seed_plan::SeedArgs;
use crate::stack::{self, StoreArgs, UpArgs};
use crate::state::{self, StackState};

use super::observe::{Canary, Observer, Probe};
use super::support::{self, http, K6Run};
use super::{
    incident_report, Check, Findings, Kind, Options, TimelineEntry, CANARY_USER, FLASH_STOCK,
    GATEWAY_SILENCE_MS, K6_HTTP_TIMEOUT, LOAD_PRODUCTS, LOAD_USERS, RECOVERY_WINDOW_MS,
    SEED_BALANCE, SEED_STOCK,
};

/// A running drill: the stack, the load, the detector, and everything to undo.
pub(super) struct Drill {
    pub(super) options: Options,
    pub(super) state: StackState,
    alarms: Vec<AlarmDef>,
    pub(super) findings: Findings,
    pub(super) env: Vec<(String, String)>,
    observer: Option<Observer>,
    canary: Option<Canary>,
    pub(super) load: Option<K6Run>,
    pub(super) flash: Option<K6Run>,
    pub(super) replacements: Vec<Child>,
    pub(super) java_stopped: bool,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) probes: Vec<Probe>,
    p95_limit_ms: f64,
}

/// The texts of the incident report that depend on the drill, with the measured numbers.
pub(super) struct Description {
    pub injects: String,
    pub root_cause: String,
    pub trigger: String,
    pub resolution: String,
}

/// One drill's steps. The runner calls `prepare` before the detector, the canary and the load
/// start; `inject` after the baseline; `after_recovery` once the service has recovered, before
/// the load stops; and, after the common checks, `verify` and `describe`.
pub(super) trait Scenario {
    /// How the stack's store behaves for the whole drill (production's limits by default).
    fn store(&self, _options: &Options) -> StoreArgs {
        StoreArgs::default()
    }

    /// The background load's rate, requests per second (`--rate` unless the drill needs
    /// another).
    fn load_rate(&self, options: &Options) -> u32 {
        options.rate
    }

    /// Drill-specific setup before the load.
    fn prepare(&mut self, _drill: &mut Drill) -> Result<()> {
        Ok(())
    }

    /// The fault window: injects the fault (`Drill::inject`, T0), observes it, and removes it
    /// (`Drill::mitigate`).
    fn inject(&mut self, drill: &mut Drill) -> Result<()>;

    /// Runs after recovery, with the load still running.
    fn after_recovery(&mut self, _drill: &mut Drill) -> Result<()> {
        Ok(())
    }

    /// The load's VU cap.
    fn load_max_vus(&self, options: &Options) -> u32 {
        options.max_vus
    }

    /// The alarms of which at least one must fire (empty: none of the error alarms may fire).
    fn expected_alarms(&self) -> &'static [&'static str];

    /// The drill's own checks, after the common ones; `orders` are the table's orders after
    /// the load.
    fn verify(&self, drill: &mut Drill, orders: &[Order]);

    /// Root cause, trigger and resolution texts, with the measured numbers.
    fn describe(&self, drill: &Drill) -> Description;
}

fn relative(path: &std::path::Path) -> String {
    path.strip_prefix(paths::root())
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

pub(super) fn run_one(kind: Kind, options: &Options) -> Result<bool> {
    let mut scenario = kind.scenario();
    let options = &Options {
        rate: scenario.load_rate(options),
        ..options.clone()
    };
    let started = now_ms();
    let alarms = monitor::load_alarms(&monitor::alarms_path())?;
    let p95_limit_ms = alarms
        .iter()
        .find(|alarm| alarm.name == "api-latency-p95")
        .map_or(300.0, |alarm| alarm.threshold);
    let dir = paths::reports().join(format!(
        "{}-drill-{}",
        crate::clock::compact_stamp(started),
        kind.name()
    ));
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
        max_concurrency: state::DEFAULT_MAX_CONCURRENCY,
        queue_depth: state::DEFAULT_QUEUE_DEPTH,
        detach: true,
        fault_injection_rate: 0.0,
        store: scenario.store(options),
        seed: SeedArgs {
            users: 1_000,
            products: 100,
            balance: SEED_BALANCE,
            stock: SEED_STOCK,
            flash_stock: FLASH_STOCK,
        },
    })?;
    let env = stack::function_env(
        state.functions_store(),
        &state.table,
        &state.jwt_secret,
        0.0,
    );
    let mut drill = Drill {
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
        runtime: crate::client::runtime()?,
        probes: Vec::new(),
        p95_limit_ms,
        state,
    };
    let executed = drill.execute(scenario.as_mut());
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
        std::fs::write(
            &incident,
            incident_report::render_incident(findings, &template),
        )?;
        crate::incidents::append(&incident_report::incident_record(
            findings,
            &relative(&incident),
        ))?;
        incident_report::print_summary(findings, &relative(&incident));
    } else {
        executed?;
    }
    Ok(findings.passed())
}

impl Drill {
    pub(super) fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    pub(super) fn observer(&self) -> Result<&Observer> {
        self.observer
            .as_ref()
            .context("the detector is not running")
    }

    pub(super) fn timeline(&mut self, at_ms: i64, event: impl Into<String>, source: &str) {
        let event = event.into();
        println!("  {}  {event}", crate::clock::format_clock(at_ms));
        self.findings.timeline.push(TimelineEntry {
            at_ms,
            event,
            source: source.to_owned(),
        });
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("  note: {note}");
        self.findings.notes.push(note);
    }

    pub(super) fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.push_check(name, passed, detail.into(), false);
    }

    /// A check whose failure is explained by the local platform (see `Check::advisory`).
    pub(super) fn advisory(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
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

    pub(super) fn token(&self, user: &str) -> Result<String> {
        crate::token::sign(&self.state.jwt_secret, user)
    }

    // --------------------------------------------------------------------------------------
    // The run
    // --------------------------------------------------------------------------------------

    fn execute(&mut self, scenario: &mut dyn Scenario) -> Result<()> {
        scenario.prepare(self)?;
        self.observer = Some(Observer::start(
            &self.state.function_log,
            self.alarms.clone(),
        ));
        self.canary = Some(Canary::start(
            format!("{}/users/{CANARY_USER}/orders?limit=1", self.base_url()),
            self.token(CANARY_USER)?,
            Duration::from_secs(30),
        ));
        self.start_load(scenario.load_max_vus(&self.options))?;
        self.observe_for(
            Duration::from_secs(self.options.baseline_seconds),
            "baseline",
        )?;
        let baseline_end = now_ms();
        scenario.inject(self)?;
        self.wait_recovery()?;
        scenario.after_recovery(self)?;
        self.stop_load();
        if let Some(observer) = self.observer.as_mut() {
            std::thread::sleep(Duration::from_millis(1_500));
            observer.finish();
        }
        if let Some(canary) = self.canary.as_mut() {
            self.probes = canary.finish();
        }
        self.collect(baseline_end)?;
        self.verify(scenario)?;
        self.describe(scenario);
        Ok(())
    }

    fn load_env(&self, max_vus: u32) -> Vec<(String, String)> {
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
            ("MAX_VUS", max_vus.to_string()),
            ("RETRIES", "0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// Starts k6 load.js with at most `max_vus` VUs (`Scenario::load_max_vus`).
    fn start_load(&mut self, max_vus: u32) -> Result<()> {
        let load = K6Run::spawn(
            "load",
            "k6/load.js",
            &self.load_env(max_vus),
            &self.findings.dir,
        )?;
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

    pub(super) fn progress(&self, phase: &str) {
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
    pub(super) fn observe_for(&mut self, duration: Duration, phase: &str) -> Result<()> {
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

    pub(super) fn inject(&mut self, what: String) -> i64 {
        let at = now_ms();
        self.findings.injected = Some(at);
        self.timeline(at, format!("T0 fault injected: {what}"), "drill");
        at
    }

    pub(super) fn mitigate(&mut self, what: String) -> i64 {
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
    // Functions: restart
    // --------------------------------------------------------------------------------------

    /// Stops cargo lambda watch and its instances, and starts it again with `env`.
    pub(super) fn restart_functions(
        &mut self,
        env: Vec<(String, String)>,
        why: &str,
    ) -> Result<()> {
        stack::stop_functions(self.state.watch_pgid);
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
        state::save_state(&self.state)?;
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

    // --------------------------------------------------------------------------------------
    // After the load: numbers and verdicts
    // --------------------------------------------------------------------------------------

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

    /// Root cause, trigger and resolution texts, with the measured numbers.
    fn describe(&mut self, scenario: &dyn Scenario) {
        let Description {
            injects,
            root_cause,
            trigger,
            resolution,
        } = scenario.describe(self);
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
            process::signal(self.state.dynamodb_pid, Signal::SIGCONT);
            self.java_stopped = false;
        }
        // Faults end with the drill, whatever happened.
        if let Some(faithful) = Faithful::of(&self.state) {
            let _ = faithful.set_faults(&dynamodb_faithful::Faults::default());
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
        if self.options.keep_stack {
            println!(
                "  the stack keeps running at {} (--keep-stack)",
                self.state.base_url
            );
        } else {
            stack::stop(&self.state);
        }
    }
}
