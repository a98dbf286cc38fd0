//! The alarms of ops/alarms.json: their definitions, the local signal each reads, and the state
//! of each as CloudWatch keeps it (M of N breaching datapoints, missing data not breaching);
//! `detector.rs` evaluates them.

use super::*;

/// One entry of `ops/alarms.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlarmDef {
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

pub(crate) fn alarms_path() -> PathBuf {
    paths::root().join("ops/alarms.json")
}

pub(crate) fn load_alarms(path: &Path) -> Result<Vec<AlarmDef>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of alarms", path.display()))
}

/// The local signal an alarm is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
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
    /// DynamoDB ThrottledRequests: the requests dynamodb-faithful throttled; without it (a
    /// `--store direct` stack), the answers the store throttled.
    StoreThrottled,
    /// DynamoDB TransactionConflict: the requests dynamodb-faithful refused for a conflict;
    /// without it, the sum of storeRetries (retried conflicts and throttles).
    StoreConflicts,
    /// AWS/Lambda Throttles of the worst function: invocations the local gateway refused
    /// because the function's queue was full.
    FunctionThrottles,
    /// pay-order answers >= 400 / pay-order answers.
    PaymentFailureRatio,
    NotObservable(&'static str),
}

impl Signal {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Signal::ServerErrorRate => "share of requests answered >= 500",
            Signal::WorstFunctionServerErrorRate => {
                "share of a function's requests answered >= 500, worst function"
            }
            Signal::LatencyPercentile(95) => "p95 of latencyMs, all operations",
            Signal::LatencyPercentile(_) => "p99 of latencyMs, all operations",
            Signal::Crashes => "invocations that crashed (panic, killed instance), no request line",
            Signal::StoreUnavailable => "503 STORE_UNAVAILABLE answers",
            Signal::StoreThrottled => {
                "requests dynamodb-faithful throttled (else STORE_THROTTLED answers)"
            }
            Signal::StoreConflicts => {
                "requests dynamodb-faithful refused for a conflict (else sum of storeRetries)"
            }
            Signal::FunctionThrottles => {
                "invocations the local gateway throttled (full queue), worst function"
            }
            Signal::PaymentFailureRatio => "pay-order answers >= 400 / pay-order answers",
            Signal::NotObservable(why) => why,
        }
    }

    /// The datapoint of one period, `None` when there is no data (missing = not breaching).
    pub(crate) fn datapoint(self, bucket: &Bucket) -> Option<f64> {
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
            Signal::StoreThrottled => count(if bucket.saw_store_events {
                bucket.dynamodb_throttles
            } else {
                bucket.store_throttled
            }),
            Signal::StoreConflicts => count(if bucket.saw_store_events {
                bucket.dynamodb_conflicts
            } else {
                bucket.store_retries
            }),
            Signal::FunctionThrottles => count(
                bucket
                    .gateway_throttles
                    .values()
                    .copied()
                    .max()
                    .unwrap_or(0),
            ),
            Signal::PaymentFailureRatio => {
                (bucket.pay_total > 0).then(|| bucket.pay_failed as f64 / bucket.pay_total as f64)
            }
            Signal::NotObservable(_) => None,
        }
    }
}

/// Which local signal stands in for an alarm of the template.
pub(crate) fn local_signal(alarm: &AlarmDef) -> Signal {
    match alarm.name.as_str() {
        "api-5xx-rate" => Signal::ServerErrorRate,
        "function-5xx-rate" => Signal::WorstFunctionServerErrorRate,
        "api-latency-p95" => Signal::LatencyPercentile(95),
        "api-latency-p99" => Signal::LatencyPercentile(99),
        "lambda-errors" => Signal::Crashes,
        "dynamodb-system-errors" => Signal::StoreUnavailable,
        "dynamodb-throttles" => Signal::StoreThrottled,
        "dynamodb-transaction-conflicts" => Signal::StoreConflicts,
        "payment-failure-ratio" => Signal::PaymentFailureRatio,
        "lambda-throttles" => Signal::FunctionThrottles,
        "lambda-concurrency" => {
            Signal::NotObservable("not observable locally: a fixed pool of instances per function")
        }
        _ => Signal::NotObservable("not observable locally: no local signal for this metric"),
    }
}

pub(crate) fn breaches(comparison: &str, value: f64, threshold: f64) -> bool {
    match comparison {
        "GreaterThanThreshold" => value > threshold,
        "GreaterThanOrEqualToThreshold" => value >= threshold,
        "LessThanThreshold" => value < threshold,
        "LessThanOrEqualToThreshold" => value <= threshold,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlarmStatus {
    Ok,
    Alarm,
    NotObservable,
}

#[derive(Debug, Clone)]
pub(crate) struct AlarmState {
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
    pub(super) fn new(def: AlarmDef) -> Self {
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

    pub(crate) fn breaching(&self, value: Option<f64>) -> bool {
        value.is_some_and(|value| breaches(&self.def.comparison, value, self.def.threshold))
    }

    pub(crate) fn rule(&self) -> String {
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
pub(crate) enum EventKind {
    Alert,
    Resolved,
}

/// A state change of an alarm.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlarmEvent {
    pub kind: EventKind,
    pub alarm: String,
    pub at_ms: i64,
    pub value: f64,
}

impl AlarmEvent {
    pub(crate) fn line(&self) -> String {
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

pub(crate) fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 {
        format!("{value:.0}")
    } else if value.abs() < 1.0 {
        format!("{value:.4}")
    } else {
        format!("{value:.1}")
    }
}
