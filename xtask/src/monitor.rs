//! `cargo xtask monitor`: a terminal dashboard over the local function log that evaluates the
//! alarms of `ops/alarms.json` the way CloudWatch does (M of N breaching datapoints, missing data
//! not breaching) and prints `ALERT <alarm> <time> <value>` / `RESOLVED <alarm> <time> <value>`.
//!
//! The detector is a library of pure functions over parsed log records, so the drills run the
//! very same code in-process and the unit tests replay synthetic logs.
//!
//! What is scaled: only the alarm **period** (`TIME_SCALE`: 60 s -> 10 s, 300 s -> 50 s), so a
//! drill detects in seconds instead of minutes. Thresholds, evaluation periods and
//! datapoints-to-alarm are the template's. Sum thresholds therefore apply per local period,
//! which makes count alarms (`> 20 conflicts`) six times less sensitive than per minute.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::{paths, stack};

/// Local alarm period = template period / `TIME_SCALE` (60 s -> 10 s, 300 s -> 50 s).
pub const TIME_SCALE: u64 = 6;
/// A period is evaluated this long after it ends, so that late log lines still count.
pub const GRACE_MS: i64 = 1_000;
/// The window of the dashboard's live figures.
pub const DASHBOARD_WINDOW_MS: i64 = 10_000;
/// How much history the live monitor keeps (the longest alarm look-back is 5 x 50 s).
const LIVE_RETENTION_MS: i64 = 600_000;

pub fn scale_note() -> String {
    format!(
        "local alarm period = template period / {TIME_SCALE} (60 s -> {} s, 300 s -> {} s); \
         thresholds and M-of-N datapoints as in ops/alarms.json",
        60 / TIME_SCALE,
        300 / TIME_SCALE
    )
}

// ------------------------------------------------------------------------------------------
// Log records
// ------------------------------------------------------------------------------------------

/// One `message = "request"` line of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub at_ms: i64,
    pub operation: String,
    pub status: u16,
    pub code: String,
    pub latency_ms: f64,
    pub store_retries: u32,
    pub fault: bool,
    pub user_id: String,
    pub order_id: String,
}

/// What one log line tells the detector.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    Request(RequestRecord),
    /// A `request failed` line (every answer >= 500) with its error chain.
    Failure {
        at_ms: i64,
        operation: String,
        code: String,
        throttled: bool,
    },
    /// A failed invocation that has no request line: a panic, a runtime exit, an instance
    /// killed mid-request (AWS/Lambda `Errors`).
    Crash {
        at_ms: i64,
        function: String,
    },
}

impl LogEvent {
    pub fn at_ms(&self) -> i64 {
        match self {
            LogEvent::Request(record) => record.at_ms,
            LogEvent::Failure { at_ms, .. } | LogEvent::Crash { at_ms, .. } => *at_ms,
        }
    }
}

/// The message of the platform line a drill writes when an instance dies (the local stand-in
/// for Lambda's `Runtime exited with error: signal: killed`).
pub const CRASH_MESSAGE: &str = "instance crashed";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `2026-11-25T21:50:00.123Z`.
pub fn format_ms(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(instant) => order_service::domain::Timestamp::from_datetime(instant).to_string(),
        Err(_) => ms.to_string(),
    }
}

/// `21:50:00.123`.
pub fn format_clock(ms: i64) -> String {
    let full = format_ms(ms);
    full.get(11..23).map(str::to_owned).unwrap_or(full)
}

/// Parses one line of the function log. EMF lines (`_aws`) and anything unknown are `None`;
/// lines without a timestamp (cargo lambda's own output, panics) are stamped `fallback_ms`.
pub fn parse_line(line: &str, fallback_ms: i64) -> Option<LogEvent> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).ok()?;
        if value.get("_aws").is_some() {
            return None;
        }
        let at_ms = value
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339_ms)
            .unwrap_or(fallback_ms);
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        return match value.get("message").and_then(Value::as_str)? {
            "request" => Some(LogEvent::Request(RequestRecord {
                at_ms,
                operation: text("operation"),
                status: value.get("status").and_then(Value::as_u64).unwrap_or(0) as u16,
                code: text("code"),
                latency_ms: value
                    .get("latencyMs")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                store_retries: value
                    .get("storeRetries")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                fault: value.get("fault").and_then(Value::as_bool).unwrap_or(false),
                user_id: text("userId"),
                order_id: text("orderId"),
            })),
            "request failed" => {
                let error = text("error");
                Some(LogEvent::Failure {
                    at_ms,
                    operation: text("operation"),
                    code: text("code"),
                    throttled: is_throttling_text(&error),
                })
            }
            CRASH_MESSAGE => Some(LogEvent::Crash {
                at_ms,
                function: text("function"),
            }),
            _ => None,
        };
    }
    // Plain text: cargo lambda's output, or a panic message on stderr.
    if line.contains("panicked at") {
        return Some(LogEvent::Crash {
            at_ms: fallback_ms,
            function: String::new(),
        });
    }
    if line.contains("ERROR") && line.contains("command killed") {
        return Some(LogEvent::Crash {
            at_ms: fallback_ms,
            function: String::new(),
        });
    }
    None
}

fn is_throttling_text(error: &str) -> bool {
    [
        "Throttl",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    ]
    .iter()
    .any(|needle| error.contains(needle))
}

// ------------------------------------------------------------------------------------------
// Per-second buckets and window statistics
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct OpBucket {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub latencies: Vec<f64>,
}

/// Everything the detector needs from one second of log.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub requests: u64,
    pub server_errors: u64,
    pub faults: u64,
    pub crashes: u64,
    pub latencies: Vec<f64>,
    pub by_op: BTreeMap<String, OpBucket>,
    /// Requests by `status code` ("503 STORE_UNAVAILABLE", "201").
    pub by_status: BTreeMap<String, u64>,
    pub pay_total: u64,
    pub pay_failed: u64,
    pub store_unavailable: u64,
    pub store_throttled: u64,
    pub store_retries: u64,
    /// 503 STORE_UNAVAILABLE answered in under `FAST_FAIL_MS` (the circuit breaker).
    pub fast_store_unavailable: u64,
    pub max_latency_ms: f64,
}

/// A 503 answered faster than this came from the open circuit breaker, not from a timeout.
pub const FAST_FAIL_MS: f64 = 50.0;

impl Bucket {
    fn add_request(&mut self, record: &RequestRecord) {
        self.requests += 1;
        self.latencies.push(record.latency_ms);
        self.max_latency_ms = self.max_latency_ms.max(record.latency_ms);
        let op = self.by_op.entry(record.operation.clone()).or_default();
        op.requests += 1;
        op.latencies.push(record.latency_ms);
        if record.status >= 500 {
            self.server_errors += 1;
            op.server_errors += 1;
        } else if record.status >= 400 {
            op.client_errors += 1;
        }
        if record.fault {
            self.faults += 1;
        }
        let key = if record.code.is_empty() {
            record.status.to_string()
        } else {
            format!("{} {}", record.status, record.code)
        };
        *self.by_status.entry(key).or_default() += 1;
        if record.operation == "pay-order" {
            self.pay_total += 1;
            if record.status >= 400 {
                self.pay_failed += 1;
            }
        }
        if record.code == "STORE_UNAVAILABLE" {
            self.store_unavailable += 1;
            if record.latency_ms < FAST_FAIL_MS {
                self.fast_store_unavailable += 1;
            }
        }
        self.store_retries += u64::from(record.store_retries);
    }

    fn merge(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.faults += other.faults;
        self.crashes += other.crashes;
        self.latencies.extend_from_slice(&other.latencies);
        for (name, op) in &other.by_op {
            let mine = self.by_op.entry(name.clone()).or_default();
            mine.requests += op.requests;
            mine.client_errors += op.client_errors;
            mine.server_errors += op.server_errors;
            mine.latencies.extend_from_slice(&op.latencies);
        }
        for (key, count) in &other.by_status {
            *self.by_status.entry(key.clone()).or_default() += count;
        }
        self.pay_total += other.pay_total;
        self.pay_failed += other.pay_failed;
        self.store_unavailable += other.store_unavailable;
        self.store_throttled += other.store_throttled;
        self.store_retries += other.store_retries;
        self.fast_store_unavailable += other.fast_store_unavailable;
        self.max_latency_ms = self.max_latency_ms.max(other.max_latency_ms);
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted values; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

// ------------------------------------------------------------------------------------------
// Alarms
// ------------------------------------------------------------------------------------------

/// One entry of `ops/alarms.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDef {
    pub name: String,
    pub metric: String,
    pub statistic: String,
    pub threshold: f64,
    pub comparison: String,
    pub period_seconds: u64,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub runbook: String,
}

pub fn alarms_path() -> PathBuf {
    paths::root().join("ops/alarms.json")
}

pub fn load_alarms(path: &Path) -> Result<Vec<AlarmDef>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of alarms", path.display()))
}

/// The local signal an alarm is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Fraction of requests answered >= 500 (API Gateway 5XXError Average).
    ServerErrorRate,
    /// The same fraction per function, worst function first: the template has one alarm per
    /// function (EMF ServerErrors / Latency SampleCount by Operation), which a canary version
    /// failing one route trips while the API-wide rate stays under its threshold.
    WorstFunctionServerErrorRate,
    /// latencyMs percentile over all operations (API Gateway Latency pNN).
    LatencyPercentile(u8),
    /// Failed invocations without a request line: crashes, panics (AWS/Lambda Errors). Our
    /// problem+json 500s are answers, not invocation errors (runbooks/lambda-errors.md).
    Crashes,
    /// 503 STORE_UNAVAILABLE answers (DynamoDB SystemErrors, seen from the client side).
    StoreUnavailable,
    /// STORE_UNAVAILABLE whose error chain names throttling (DynamoDB ThrottledRequests).
    StoreThrottled,
    /// Sum of storeRetries (DynamoDB TransactionConflict, after our own retries).
    StoreRetries,
    /// pay-order answers >= 400 / pay-order answers.
    PaymentFailureRatio,
    NotObservable(&'static str),
}

impl Signal {
    pub fn describe(self) -> &'static str {
        match self {
            Signal::ServerErrorRate => "share of requests answered >= 500",
            Signal::WorstFunctionServerErrorRate => {
                "share of a function's requests answered >= 500, worst function"
            }
            Signal::LatencyPercentile(95) => "p95 of latencyMs, all operations",
            Signal::LatencyPercentile(_) => "p99 of latencyMs, all operations",
            Signal::Crashes => "invocations that crashed (panic, killed instance), no request line",
            Signal::StoreUnavailable => "503 STORE_UNAVAILABLE answers",
            Signal::StoreThrottled => "STORE_UNAVAILABLE caused by throttling",
            Signal::StoreRetries => "sum of storeRetries (transaction conflicts retried)",
            Signal::PaymentFailureRatio => "pay-order answers >= 400 / pay-order answers",
            Signal::NotObservable(why) => why,
        }
    }

    /// The datapoint of one period, `None` when there is no data (missing = not breaching).
    pub fn datapoint(self, bucket: &Bucket) -> Option<f64> {
        let count = |value: u64| (bucket.requests > 0 || value > 0).then_some(value as f64);
        match self {
            Signal::ServerErrorRate => {
                (bucket.requests > 0).then(|| bucket.server_errors as f64 / bucket.requests as f64)
            }
            Signal::WorstFunctionServerErrorRate => bucket
                .by_op
                .values()
                .filter(|op| op.requests > 0)
                .map(|op| op.server_errors as f64 / op.requests as f64)
                .max_by(f64::total_cmp),
            Signal::LatencyPercentile(p) => percentile(&bucket.latencies, f64::from(p)),
            Signal::Crashes => count(bucket.crashes),
            Signal::StoreUnavailable => count(bucket.store_unavailable),
            Signal::StoreThrottled => count(bucket.store_throttled),
            Signal::StoreRetries => count(bucket.store_retries),
            Signal::PaymentFailureRatio => {
                (bucket.pay_total > 0).then(|| bucket.pay_failed as f64 / bucket.pay_total as f64)
            }
            Signal::NotObservable(_) => None,
        }
    }
}

/// Which local signal stands in for an alarm of the template.
pub fn local_signal(alarm: &AlarmDef) -> Signal {
    match alarm.name.as_str() {
        "api-5xx-rate" => Signal::ServerErrorRate,
        "function-5xx-rate" => Signal::WorstFunctionServerErrorRate,
        "api-latency-p95" => Signal::LatencyPercentile(95),
        "api-latency-p99" => Signal::LatencyPercentile(99),
        "lambda-errors" => Signal::Crashes,
        "dynamodb-system-errors" => Signal::StoreUnavailable,
        "dynamodb-throttles" => Signal::StoreThrottled,
        "dynamodb-transaction-conflicts" => Signal::StoreRetries,
        "payment-failure-ratio" => Signal::PaymentFailureRatio,
        "lambda-throttles" => Signal::NotObservable(
            "not observable locally: cargo lambda queues instead of throttling",
        ),
        "lambda-concurrency" => {
            Signal::NotObservable("not observable locally: a fixed pool of instances per function")
        }
        _ => Signal::NotObservable("not observable locally: no local signal for this metric"),
    }
}

pub fn breaches(comparison: &str, value: f64, threshold: f64) -> bool {
    match comparison {
        "GreaterThanThreshold" => value > threshold,
        "GreaterThanOrEqualToThreshold" => value >= threshold,
        "LessThanThreshold" => value < threshold,
        "LessThanOrEqualToThreshold" => value <= threshold,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmStatus {
    Ok,
    Alarm,
    NotObservable,
}

#[derive(Debug, Clone)]
pub struct AlarmState {
    pub def: AlarmDef,
    pub signal: Signal,
    pub period_ms: i64,
    pub status: AlarmStatus,
    /// The end of the last evaluated period.
    pub last_end_ms: Option<i64>,
    /// The datapoints of the last evaluation, oldest first.
    pub datapoints: Vec<Option<f64>>,
}

impl AlarmState {
    fn new(def: AlarmDef) -> Self {
        let signal = local_signal(&def);
        let period_ms = ((def.period_seconds * 1_000) / TIME_SCALE).max(1_000) as i64;
        let status = match signal {
            Signal::NotObservable(_) => AlarmStatus::NotObservable,
            _ => AlarmStatus::Ok,
        };
        Self {
            def,
            signal,
            period_ms,
            status,
            last_end_ms: None,
            datapoints: Vec::new(),
        }
    }

    pub fn breaching(&self, value: Option<f64>) -> bool {
        value.is_some_and(|value| breaches(&self.def.comparison, value, self.def.threshold))
    }

    pub fn rule(&self) -> String {
        let op = match self.def.comparison.as_str() {
            "GreaterThanThreshold" => ">",
            "GreaterThanOrEqualToThreshold" => ">=",
            "LessThanThreshold" => "<",
            _ => "<=",
        };
        format!(
            "{} {} {op} {} in {} of {} x {} s",
            self.def.metric,
            self.def.statistic,
            self.def.threshold,
            self.def.datapoints_to_alarm,
            self.def.evaluation_periods,
            self.period_ms / 1_000
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Alert,
    Resolved,
}

/// A state change of an alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    pub kind: EventKind,
    pub alarm: String,
    pub at_ms: i64,
    pub value: f64,
}

impl AlarmEvent {
    pub fn line(&self) -> String {
        let word = match self.kind {
            EventKind::Alert => "ALERT",
            EventKind::Resolved => "RESOLVED",
        };
        format!(
            "{word} {} {} {}",
            self.alarm,
            format_ms(self.at_ms),
            format_value(self.value)
        )
    }
}

pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 {
        format!("{value:.0}")
    } else if value.abs() < 1.0 {
        format!("{value:.4}")
    } else {
        format!("{value:.1}")
    }
}

/// The detector: log events in, alarm state changes out.
#[derive(Debug, Clone)]
pub struct Detector {
    pub alarms: Vec<AlarmState>,
    /// Per-second buckets keyed by second (unix ms / 1000).
    buckets: BTreeMap<i64, Bucket>,
    retention_ms: Option<i64>,
    pub latest_ms: Option<i64>,
}

impl Detector {
    /// A detector keeping every second it has seen (drills need the whole history).
    pub fn new(alarms: Vec<AlarmDef>) -> Self {
        Self {
            alarms: alarms.into_iter().map(AlarmState::new).collect(),
            buckets: BTreeMap::new(),
            retention_ms: None,
            latest_ms: None,
        }
    }

    pub fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    pub fn ingest(&mut self, event: &LogEvent) {
        let at_ms = event.at_ms();
        self.latest_ms = Some(self.latest_ms.map_or(at_ms, |latest| latest.max(at_ms)));
        let bucket = self.buckets.entry(at_ms.div_euclid(1_000)).or_default();
        match event {
            LogEvent::Request(record) => bucket.add_request(record),
            LogEvent::Failure { throttled, .. } => {
                if *throttled {
                    bucket.store_throttled += 1;
                }
            }
            LogEvent::Crash { .. } => bucket.crashes += 1,
        }
    }

    /// The merged bucket of `[from_ms, to_ms)` (whole seconds).
    pub fn window(&self, from_ms: i64, to_ms: i64) -> Bucket {
        let mut merged = Bucket::default();
        let from = from_ms.div_euclid(1_000);
        let to = to_ms.div_euclid(1_000);
        if to > from {
            for bucket in self.buckets.range(from..to).map(|(_, bucket)| bucket) {
                merged.merge(bucket);
            }
        }
        merged
    }

    /// Evaluates every period that has ended (plus `GRACE_MS`) by `now_ms`, in time order, and
    /// returns the state changes. Event times are period end + grace, so a replay of a log gives
    /// the same times as the live run.
    pub fn evaluate(&mut self, now_ms: i64) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        for index in 0..self.alarms.len() {
            let (period, evaluation_periods) = {
                let alarm = &self.alarms[index];
                if alarm.status == AlarmStatus::NotObservable {
                    continue;
                }
                (
                    alarm.period_ms,
                    i64::from(alarm.def.evaluation_periods.max(1)),
                )
            };
            let latest_end = (now_ms - GRACE_MS).div_euclid(period) * period;
            let mut end = match self.alarms[index].last_end_ms {
                Some(end) => end,
                None => {
                    // Start with the period before the first data (or now).
                    let first = self.buckets.keys().next().map_or(latest_end, |second| {
                        (second * 1_000).div_euclid(period) * period
                    });
                    first.min(latest_end)
                }
            };
            // After a long idle gap, the skipped periods are all missing: jump ahead.
            let oldest_useful = latest_end - 2 * evaluation_periods * period;
            if end < oldest_useful {
                end = oldest_useful;
            }
            while end + period <= latest_end {
                end += period;
                if let Some(event) = self.evaluate_at(index, end) {
                    events.push(event);
                }
            }
            self.alarms[index].last_end_ms = Some(end);
        }
        events.sort_by_key(|event| event.at_ms);
        if let Some(retention) = self.retention_ms {
            let keep_from = (now_ms - retention).div_euclid(1_000);
            self.buckets = self.buckets.split_off(&keep_from);
        }
        events
    }

    fn evaluate_at(&mut self, index: usize, end: i64) -> Option<AlarmEvent> {
        let (period, n, m, signal) = {
            let alarm = &self.alarms[index];
            (
                alarm.period_ms,
                i64::from(alarm.def.evaluation_periods.max(1)),
                alarm.def.datapoints_to_alarm.max(1) as usize,
                alarm.signal,
            )
        };
        let datapoints: Vec<Option<f64>> = (0..n)
            .rev()
            .map(|k| {
                let to = end - k * period;
                signal.datapoint(&self.window(to - period, to))
            })
            .collect();
        let alarm = &mut self.alarms[index];
        let breaching: Vec<f64> = datapoints
            .iter()
            .copied()
            .filter(|value| alarm.breaching(*value))
            .flatten()
            .collect();
        let new_status = if breaching.len() >= m {
            AlarmStatus::Alarm
        } else {
            AlarmStatus::Ok
        };
        let latest = datapoints.last().copied().flatten().unwrap_or(0.0);
        alarm.datapoints = datapoints;
        if new_status == alarm.status {
            return None;
        }
        alarm.status = new_status;
        Some(match new_status {
            AlarmStatus::Alarm => AlarmEvent {
                kind: EventKind::Alert,
                alarm: alarm.def.name.clone(),
                at_ms: end + GRACE_MS,
                value: breaching.last().copied().unwrap_or(latest),
            },
            _ => AlarmEvent {
                kind: EventKind::Resolved,
                alarm: alarm.def.name.clone(),
                at_ms: end + GRACE_MS,
                value: latest,
            },
        })
    }

    /// The first second `s >= from_ms` such that `[s, s + window_ms)` is clean: requests were
    /// served, none answered >= 500, no crash, and p95 at most `p95_limit_ms`. The window must
    /// have ended by `now_ms`.
    pub fn first_clean_window(
        &self,
        from_ms: i64,
        window_ms: i64,
        p95_limit_ms: f64,
        now_ms: i64,
    ) -> Option<i64> {
        let mut start = from_ms.div_euclid(1_000) * 1_000;
        while start + window_ms <= now_ms {
            let window = self.window(start, start + window_ms);
            let p95 = percentile(&window.latencies, 95.0).unwrap_or(0.0);
            if window.requests > 0
                && window.server_errors == 0
                && window.crashes == 0
                && p95 <= p95_limit_ms
            {
                return Some(start);
            }
            start += 1_000;
        }
        None
    }

    /// The first request answered >= 500 (or a crash) at or after `from_ms`.
    pub fn first_failure_after(&self, from_ms: i64) -> Option<i64> {
        let from = from_ms.div_euclid(1_000);
        self.buckets
            .range(from..)
            .find(|(_, bucket)| bucket.server_errors > 0 || bucket.crashes > 0)
            .map(|(second, _)| (second * 1_000).max(from_ms))
    }
}

// ------------------------------------------------------------------------------------------
// Following a log file
// ------------------------------------------------------------------------------------------

/// Follows a growing file line by line (like `tail -F`): survives the file not existing yet,
/// being truncated or recreated.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    file: Option<File>,
    position: u64,
    partial: Vec<u8>,
}

impl LogTail {
    pub fn from_start(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            position: 0,
            partial: Vec::new(),
        }
    }

    pub fn from_end(path: &Path) -> Self {
        let position = std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
        Self {
            position,
            ..Self::from_start(path)
        }
    }

    /// The complete lines appended since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let length = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(_) => return Vec::new(),
        };
        if length < self.position {
            // Truncated or recreated: start over.
            self.file = None;
            self.position = 0;
            self.partial.clear();
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.position)).is_err() {
            self.file = None;
            return Vec::new();
        }
        let mut fresh = Vec::new();
        if file.read_to_end(&mut fresh).is_err() {
            self.file = None;
            return Vec::new();
        }
        self.position += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let mut lines = Vec::new();
        while let Some(newline) = self.partial.iter().position(|byte| *byte == b'\n') {
            let rest = self.partial.split_off(newline + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        lines
    }
}

// ------------------------------------------------------------------------------------------
// The dashboard
// ------------------------------------------------------------------------------------------

fn fmt_ms_opt(value: Option<f64>) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}"),
        Some(value) => format!("{value:.1}"),
        None => "-".to_owned(),
    }
}

/// The dashboard text for the window ending at `now_ms`.
pub fn render_dashboard(
    detector: &Detector,
    now_ms: i64,
    source: &str,
    events: &[AlarmEvent],
) -> String {
    let mut out = String::new();
    let window = detector.window(now_ms - DASHBOARD_WINDOW_MS, now_ms);
    let seconds = (DASHBOARD_WINDOW_MS / 1_000) as f64;
    out.push_str(&format!(
        "order-service monitor  {}  log: {source}\n{}\n\n",
        format_ms(now_ms),
        scale_note()
    ));
    out.push_str(&format!(
        "last {:.0} s: {:.1} req/s   5xx {:.2}%   p95 {} ms   p99 {} ms   crashes {}   store-unavailable {} (fast {})   store retries {}\n\n",
        seconds,
        window.requests as f64 / seconds,
        if window.requests > 0 { 100.0 * window.server_errors as f64 / window.requests as f64 } else { 0.0 },
        fmt_ms_opt(percentile(&window.latencies, 95.0)),
        fmt_ms_opt(percentile(&window.latencies, 99.0)),
        window.crashes,
        window.store_unavailable,
        window.fast_store_unavailable,
        window.store_retries,
    ));
    out.push_str(&format!(
        "{:<14} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6}\n",
        "operation", "req/s", "p50 ms", "p95 ms", "p99 ms", "4xx", "5xx"
    ));
    for (name, op) in &window.by_op {
        out.push_str(&format!(
            "{:<14} {:>8.1} {:>9} {:>9} {:>9} {:>6} {:>6}\n",
            name,
            op.requests as f64 / seconds,
            fmt_ms_opt(percentile(&op.latencies, 50.0)),
            fmt_ms_opt(percentile(&op.latencies, 95.0)),
            fmt_ms_opt(percentile(&op.latencies, 99.0)),
            op.client_errors,
            op.server_errors
        ));
    }
    if window.by_op.is_empty() {
        out.push_str("(no requests)\n");
    }
    let errors: Vec<String> = window
        .by_status
        .iter()
        .filter(|(key, _)| !key.starts_with('2'))
        .map(|(key, count)| format!("{key}: {count}"))
        .collect();
    out.push_str(&format!(
        "\nerrors by code: {}\n\nalarms ({}):\n",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        },
        "datapoints oldest..newest: # breaching, . ok, _ no data"
    ));
    for alarm in &detector.alarms {
        let state = match alarm.status {
            AlarmStatus::Ok => "OK",
            AlarmStatus::Alarm => "ALARM",
            AlarmStatus::NotObservable => "n/a",
        };
        if alarm.status == AlarmStatus::NotObservable {
            out.push_str(&format!(
                "  {:<32} {:<5} {}\n",
                alarm.def.name,
                state,
                alarm.signal.describe()
            ));
            continue;
        }
        let marks: String = alarm
            .datapoints
            .iter()
            .map(|value| match value {
                None => '_',
                Some(_) if alarm.breaching(*value) => '#',
                Some(_) => '.',
            })
            .collect();
        let last = alarm
            .datapoints
            .last()
            .copied()
            .flatten()
            .map_or_else(|| "-".to_owned(), format_value);
        out.push_str(&format!(
            "  {:<32} {:<5} [{:<5}] last {:<10} {:<48} {}\n",
            alarm.def.name,
            state,
            marks,
            last,
            alarm.rule(),
            alarm.def.runbook
        ));
    }
    out.push_str("\nevents:\n");
    if events.is_empty() {
        out.push_str("  (none yet)\n");
    }
    for event in events.iter().rev().take(12).rev() {
        out.push_str(&format!("  {}\n", event.line()));
    }
    out
}

// ------------------------------------------------------------------------------------------
// The command
// ------------------------------------------------------------------------------------------

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The stack whose log to follow (its functions' port).
    #[arg(long, default_value_t = stack::DEFAULT_PORT)]
    pub port: u16,
    /// Follow this log file instead of the stack's.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Read the whole log once from the start, print every ALERT/RESOLVED it implies and the
    /// final dashboard, and exit (no live follow).
    #[arg(long)]
    pub once: bool,
    /// The alarm definitions.
    #[arg(long)]
    pub alarms: Option<PathBuf>,
    /// Print only ALERT/RESOLVED lines and a status line every 10 s (default when stdout is
    /// not a terminal).
    #[arg(long)]
    pub plain: bool,
}

pub fn log_path_for(port: u16) -> PathBuf {
    stack::log_dir_for(port).join("functions.log")
}

pub fn run(args: &Args) -> Result<()> {
    let alarms = load_alarms(&args.alarms.clone().unwrap_or_else(alarms_path))?;
    let log = args.log.clone().unwrap_or_else(|| log_path_for(args.port));
    let source = log
        .strip_prefix(paths::root())
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| log.display().to_string());
    if args.once {
        return run_once(alarms, &log, &source);
    }
    let mut detector = Detector::new(alarms).with_retention(LIVE_RETENTION_MS);
    let mut tail = LogTail::from_end(&log);
    let dashboard = !args.plain && std::io::stdout().is_terminal();
    let mut events: Vec<AlarmEvent> = Vec::new();
    let mut last_status_line = 0;
    if !dashboard {
        println!("monitoring {source} ({})", scale_note());
    }
    loop {
        let now = now_ms();
        for line in tail.poll() {
            if let Some(event) = parse_line(&line, now) {
                detector.ingest(&event);
            }
        }
        let fresh = detector.evaluate(now);
        let mut stdout = std::io::stdout().lock();
        if dashboard {
            events.extend(fresh);
            let text = render_dashboard(&detector, now, &source, &events);
            write!(stdout, "\x1b[H\x1b[2J{text}")?;
        } else {
            for event in &fresh {
                writeln!(stdout, "{}", event.line())?;
            }
            events.extend(fresh);
            if now - last_status_line >= 10_000 {
                last_status_line = now;
                let window = detector.window(now - DASHBOARD_WINDOW_MS, now);
                writeln!(
                    stdout,
                    "{}  {:.1} req/s  5xx {}  p95 {} ms  alarms in ALARM: {}",
                    format_ms(now),
                    window.requests as f64 / 10.0,
                    window.server_errors,
                    fmt_ms_opt(percentile(&window.latencies, 95.0)),
                    in_alarm(&detector)
                )?;
            }
        }
        stdout.flush()?;
        drop(stdout);
        std::thread::sleep(Duration::from_millis(1_000));
    }
}

fn in_alarm(detector: &Detector) -> String {
    let names: Vec<&str> = detector
        .alarms
        .iter()
        .filter(|alarm| alarm.status == AlarmStatus::Alarm)
        .map(|alarm| alarm.def.name.as_str())
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Replays a whole log: events are evaluated as time advances through the records.
fn run_once(alarms: Vec<AlarmDef>, log: &Path, source: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let mut detector = Detector::new(alarms);
    let mut clock = i64::MIN;
    let mut events = Vec::new();
    for line in text.lines() {
        let Some(event) = parse_line(line, clock.max(0)) else {
            continue;
        };
        if event.at_ms() > clock {
            clock = event.at_ms();
            events.extend(detector.evaluate(clock));
        }
        detector.ingest(&event);
    }
    if clock == i64::MIN {
        println!("{source}: no request lines");
        return Ok(());
    }
    // Let every period that has data close.
    let longest = detector
        .alarms
        .iter()
        .map(|alarm| alarm.period_ms * i64::from(alarm.def.evaluation_periods))
        .max()
        .unwrap_or(0);
    let end = (clock + longest + GRACE_MS).min(now_ms().max(clock + GRACE_MS));
    let mut t = clock;
    while t < end {
        t = (t + 1_000).min(end);
        events.extend(detector.evaluate(t));
    }
    for event in &events {
        println!("{}", event.line());
    }
    println!();
    print!(
        "{}",
        render_dashboard(&detector, clock + 1_000, source, &events)
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a multiple of 10 s and of 50 s

    fn alarm(
        name: &str,
        threshold: f64,
        comparison: &str,
        period: u64,
        n: u32,
        m: u32,
    ) -> AlarmDef {
        AlarmDef {
            name: name.to_owned(),
            metric: "m".to_owned(),
            statistic: "Average".to_owned(),
            threshold,
            comparison: comparison.to_owned(),
            period_seconds: period,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            runbook: format!("runbooks/{name}.md"),
        }
    }

    fn request(at_ms: i64, operation: &str, status: u16, code: &str, latency_ms: f64) -> LogEvent {
        LogEvent::Request(RequestRecord {
            at_ms,
            operation: operation.to_owned(),
            status,
            code: code.to_owned(),
            latency_ms,
            store_retries: 0,
            fault: false,
            user_id: "user-1".to_owned(),
            order_id: String::new(),
        })
    }

    /// `per_second` requests every second of `[from, to)`, of which `bad` answer 503.
    fn traffic(detector: &mut Detector, from: i64, to: i64, per_second: u32, bad: u32) {
        let mut t = from;
        while t < to {
            for i in 0..per_second {
                let (status, code) = if i < bad {
                    (503, "STORE_UNAVAILABLE")
                } else {
                    (200, "")
                };
                detector.ingest(&request(t + i64::from(i), "get-order", status, code, 5.0));
            }
            t += 1_000;
        }
    }

    fn run_until(detector: &mut Detector, from: i64, to: i64) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let mut t = from;
        while t <= to {
            events.extend(detector.evaluate(t));
            t += 1_000;
        }
        events
    }

    #[test]
    fn parses_request_failure_emf_and_crash_lines() {
        // GIVEN the lines a function and the drill platform write
        let request = r#"{"timestamp":"2026-11-25T21:48:59.043714Z","level":"INFO","message":"request","requestId":"r","operation":"create-order","userId":"user-5","orderId":"","status":503,"code":"STORE_UNAVAILABLE","latencyMs":3001.5,"storeRetries":2,"fault":false}"#;
        let emf = r#"{"Latency":1.0,"_aws":{"Timestamp":1}}"#;
        let failed = r#"{"timestamp":"2026-11-25T21:48:59.1Z","level":"ERROR","message":"request failed","operation":"pay-order","code":"STORE_UNAVAILABLE","error":"DynamoDB GetItem failed: ThrottlingException: slow down"}"#;
        let crash = r#"{"timestamp":"2026-11-25T21:49:00Z","level":"ERROR","message":"instance crashed","function":"pay-order"}"#;
        // WHEN they are parsed
        // THEN each becomes the right event, EMF and cargo lambda INFO lines are skipped
        match parse_line(request, 0) {
            Some(LogEvent::Request(record)) => {
                assert_eq!(record.status, 503);
                assert_eq!(record.code, "STORE_UNAVAILABLE");
                assert_eq!(record.store_retries, 2);
                assert_eq!(record.operation, "create-order");
                assert_eq!(format_ms(record.at_ms), "2026-11-25T21:48:59.043Z");
            }
            other => panic!("not a request: {other:?}"),
        }
        assert_eq!(parse_line(emf, 0), None);
        assert!(matches!(
            parse_line(failed, 0),
            Some(LogEvent::Failure {
                throttled: true,
                ..
            })
        ));
        assert!(matches!(parse_line(crash, 0), Some(LogEvent::Crash { .. })));
        assert!(matches!(
            parse_line("thread 'main' panicked at src/lib.rs:1:1:", 42),
            Some(LogEvent::Crash { at_ms: 42, .. })
        ));
        assert_eq!(
            parse_line(" INFO spawning function instance function=\"get-order\"", 0),
            None
        );
        assert_eq!(parse_line("not json {", 0), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        // GIVEN the latencies 1..=100
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        // WHEN percentiles are taken THEN they are nearest-rank
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 95.0), None);
    }

    #[test]
    fn periods_are_scaled_and_signals_mapped() {
        // GIVEN the template's alarms
        let alarms = load_alarms(&alarms_path()).expect("ops/alarms.json");
        let detector = Detector::new(alarms);
        // WHEN the detector is built THEN periods are /6 and every alarm has a signal or says why not
        for state in &detector.alarms {
            assert_eq!(
                state.period_ms,
                (state.def.period_seconds * 1_000 / TIME_SCALE) as i64
            );
        }
        let signal = |name: &str| {
            detector
                .alarms
                .iter()
                .find(|state| state.def.name == name)
                .map(|state| state.signal)
                .expect(name)
        };
        assert_eq!(signal("api-5xx-rate"), Signal::ServerErrorRate);
        assert_eq!(
            signal("function-5xx-rate"),
            Signal::WorstFunctionServerErrorRate
        );
        assert_eq!(signal("api-latency-p99"), Signal::LatencyPercentile(99));
        assert_eq!(signal("payment-failure-ratio"), Signal::PaymentFailureRatio);
        assert!(matches!(
            signal("lambda-throttles"),
            Signal::NotObservable(_)
        ));
        assert!(matches!(
            signal("lambda-concurrency"),
            Signal::NotObservable(_)
        ));
    }

    #[test]
    fn five_xx_rate_alerts_after_m_of_n_periods_and_resolves() {
        // GIVEN api-5xx-rate (> 5 % in 3 of 5 periods of 60 s -> 10 s locally)
        let mut detector = Detector::new(vec![alarm(
            "api-5xx-rate",
            0.05,
            "GreaterThanThreshold",
            60,
            5,
            3,
        )]);
        // WHEN 20 s are healthy, then 30 s have 50 % 503s, then 60 s are healthy again
        traffic(&mut detector, T0, T0 + 20_000, 10, 0);
        traffic(&mut detector, T0 + 20_000, T0 + 50_000, 10, 5);
        traffic(&mut detector, T0 + 50_000, T0 + 110_000, 10, 0);
        let events = run_until(&mut detector, T0, T0 + 110_000);
        // THEN it alerts when the third bad period closes, and resolves once only 2 of the last 5 are bad
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].kind, EventKind::Alert);
        assert_eq!(events[0].at_ms, T0 + 50_000 + GRACE_MS);
        assert!((events[0].value - 0.5).abs() < 1e-9);
        assert_eq!(events[1].kind, EventKind::Resolved);
        assert_eq!(events[1].at_ms, T0 + 80_000 + GRACE_MS);
        assert!(events[0]
            .line()
            .starts_with("ALERT api-5xx-rate 2027-01-15T08:00:51.000Z 0.5"));
    }

    #[test]
    fn a_canary_failing_one_route_trips_its_function_alarm_not_the_api_wide_one() {
        // GIVEN both alarms as ops/alarms.json states them
        let alarms: Vec<AlarmDef> = load_alarms(&alarms_path())
            .expect("ops/alarms.json")
            .into_iter()
            .filter(|alarm| alarm.name == "api-5xx-rate" || alarm.name == "function-5xx-rate")
            .collect();
        assert_eq!(alarms.len(), 2);
        let mut detector = Detector::new(alarms);
        // WHEN 40 requests/s spread over four functions, and a canary at 10 % of pay-order's
        // traffic answers 500 to every request it serves (1 of 10 pay-order requests), for
        // five minutes of the local clock
        let end = T0 + 5 * 60_000 / TIME_SCALE as i64;
        let mut t = T0;
        while t < end {
            for i in 0..10_i64 {
                for operation in ["create-order", "get-order", "cancel-order"] {
                    detector.ingest(&request(t + i, operation, 200, "", 5.0));
                }
                let (status, code) = if i == 0 {
                    (500, "INTERNAL_ERROR")
                } else {
                    (200, "")
                };
                detector.ingest(&request(t + i, "pay-order", status, code, 5.0));
            }
            t += 1_000;
        }
        let events = run_until(&mut detector, T0, end);
        // THEN the API-wide rate (2.5 %) stays quiet and pay-order's (10 %) alerts
        let alerted: Vec<&str> = events
            .iter()
            .filter(|event| event.kind == EventKind::Alert)
            .map(|event| event.alarm.as_str())
            .collect();
        assert_eq!(alerted, ["function-5xx-rate"], "{events:?}");
        let value = events[0].value;
        assert!((value - 0.1).abs() < 1e-9, "{value}");
    }

    #[test]
    fn two_bad_periods_are_not_enough_and_missing_data_does_not_breach() {
        // GIVEN api-5xx-rate (3 of 5)
        let mut detector = Detector::new(vec![alarm(
            "api-5xx-rate",
            0.05,
            "GreaterThanThreshold",
            60,
            5,
            3,
        )]);
        // WHEN two periods are all 503s and then no request arrives at all
        traffic(&mut detector, T0, T0 + 20_000, 10, 10);
        let events = run_until(&mut detector, T0, T0 + 120_000);
        // THEN no alert: two breaching datapoints, the rest missing
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn latency_p95_uses_all_operations() {
        // GIVEN api-latency-p95 (> 300 ms, 3 of 5)
        let mut detector = Detector::new(vec![alarm(
            "api-latency-p95",
            300.0,
            "GreaterThanThreshold",
            60,
            5,
            3,
        )]);
        // WHEN for 30 s, 10 % of requests take 2 s (p95 lands on a slow one)
        for second in 0..30 {
            for i in 0..20 {
                let latency = if i < 2 { 2_000.0 } else { 4.0 };
                detector.ingest(&request(
                    T0 + second * 1_000,
                    "create-order",
                    201,
                    "",
                    latency,
                ));
            }
        }
        let events = run_until(&mut detector, T0, T0 + 32_000);
        // THEN it alerts with the p95 value
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].value, 2_000.0);
    }

    #[test]
    fn crashes_are_lambda_errors_but_answered_500s_are_not() {
        // GIVEN lambda-errors (>= 1 in 2 of 3)
        let mut detector = Detector::new(vec![alarm(
            "lambda-errors",
            1.0,
            "GreaterThanOrEqualToThreshold",
            60,
            3,
            2,
        )]);
        // WHEN 20 s of answered 500s (a bad deploy) arrive
        for second in 0..20 {
            detector.ingest(&request(
                T0 + second * 1_000,
                "pay-order",
                500,
                "INTERNAL_ERROR",
                1.0,
            ));
        }
        let quiet = run_until(&mut detector, T0, T0 + 25_000);
        // THEN lambda-errors stays quiet (they are answers, not failed invocations)
        assert!(quiet.is_empty(), "{quiet:?}");
        // WHEN instances crash in two consecutive periods
        detector.ingest(&LogEvent::Crash {
            at_ms: T0 + 31_000,
            function: "pay-order".to_owned(),
        });
        detector.ingest(&LogEvent::Crash {
            at_ms: T0 + 42_000,
            function: "create-order".to_owned(),
        });
        let events = run_until(&mut detector, T0 + 26_000, T0 + 52_000);
        // THEN it alerts
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].alarm, "lambda-errors");
    }

    #[test]
    fn payment_failure_ratio_counts_only_payments_over_50_s_periods() {
        // GIVEN payment-failure-ratio (> 5 % in 2 of 3 periods of 300 s -> 50 s)
        let mut detector = Detector::new(vec![alarm(
            "payment-failure-ratio",
            0.05,
            "GreaterThanThreshold",
            300,
            3,
            2,
        )]);
        // WHEN for 100 s one payment in ten is refused, and creates all fail (not payments)
        for second in 0..100 {
            let t = T0 + second * 1_000;
            let status = if second % 10 == 0 { 409 } else { 200 };
            detector.ingest(&request(
                t,
                "pay-order",
                status,
                "INSUFFICIENT_BALANCE",
                3.0,
            ));
            detector.ingest(&request(t, "create-order", 503, "STORE_UNAVAILABLE", 3.0));
        }
        let events = run_until(&mut detector, T0, T0 + 102_000);
        // THEN it alerts once the second 50 s period closes, at 10 %
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].at_ms, T0 + 100_000 + GRACE_MS);
        assert!((events[0].value - 0.1).abs() < 1e-9);
    }

    #[test]
    fn store_signals_split_throttling_from_other_failures() {
        // GIVEN the two store alarms (>= 1 in 2 of 5)
        let mut detector = Detector::new(vec![
            alarm(
                "dynamodb-system-errors",
                1.0,
                "GreaterThanOrEqualToThreshold",
                60,
                5,
                2,
            ),
            alarm(
                "dynamodb-throttles",
                1.0,
                "GreaterThanOrEqualToThreshold",
                60,
                5,
                2,
            ),
        ]);
        // WHEN 20 s of timeouts (not throttling) happen
        traffic(&mut detector, T0, T0 + 20_000, 5, 5);
        for second in 0..20 {
            detector.ingest(&LogEvent::Failure {
                at_ms: T0 + second * 1_000,
                operation: "get-order".to_owned(),
                code: "STORE_UNAVAILABLE".to_owned(),
                throttled: false,
            });
        }
        let events = run_until(&mut detector, T0, T0 + 22_000);
        // THEN only dynamodb-system-errors fires
        let names: Vec<&str> = events.iter().map(|event| event.alarm.as_str()).collect();
        assert_eq!(names, vec!["dynamodb-system-errors"]);
    }

    #[test]
    fn the_first_clean_window_follows_the_last_failure() {
        // GIVEN failures until T0 + 12.5 s, then healthy traffic
        let mut detector = Detector::new(Vec::new());
        traffic(&mut detector, T0, T0 + 13_000, 10, 3);
        traffic(&mut detector, T0 + 13_000, T0 + 40_000, 10, 0);
        // WHEN the first clean 10 s window after T0 is searched
        let clean = detector.first_clean_window(T0, 10_000, 300.0, T0 + 40_000);
        // THEN it starts right after the last bad second, and the first failure is at T0
        assert_eq!(clean, Some(T0 + 13_000));
        assert_eq!(detector.first_failure_after(T0 + 500), Some(T0 + 500));
        assert_eq!(detector.first_failure_after(T0 + 13_000), None);
    }

    #[test]
    fn the_tail_returns_only_complete_new_lines_and_survives_truncation() {
        // GIVEN a log with one line, followed from its end
        let dir = std::env::temp_dir().join(format!("monitor-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("functions.log");
        std::fs::write(&path, "old\n").expect("write");
        let mut tail = LogTail::from_end(&path);
        // WHEN a line and a half are appended THEN only the complete line comes back
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        write!(file, "one\ntw").expect("append");
        assert_eq!(tail.poll(), vec!["one".to_owned()]);
        writeln!(file, "o").expect("append");
        assert_eq!(tail.poll(), vec!["two".to_owned()]);
        // WHEN the file is recreated shorter THEN the tail starts over
        std::fs::write(&path, "x\n").expect("rewrite");
        assert_eq!(tail.poll(), vec!["x".to_owned()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_long_idle_gap_resolves_instead_of_replaying_every_period() {
        // GIVEN an alarm in ALARM
        let mut detector = Detector::new(vec![alarm(
            "api-5xx-rate",
            0.05,
            "GreaterThanThreshold",
            60,
            5,
            3,
        )]);
        traffic(&mut detector, T0, T0 + 30_000, 10, 10);
        let alert = run_until(&mut detector, T0, T0 + 31_000);
        assert_eq!(alert.len(), 1);
        // WHEN the next evaluation comes a day later
        let later = detector.evaluate(T0 + 86_400_000);
        // THEN the alarm resolves once
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kind, EventKind::Resolved);
    }
}
