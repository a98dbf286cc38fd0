//! The dashboard: one view of the detector (the last window's figures, the alarms, the latest
//! events), written as text by `--once` and drawn with ratatui (`screen`) by the live monitor.

use super::*;

mod screen;

/// How many of the latest alarm events the dashboard lists.
const EVENTS_SHOWN: usize = 12;

/// What separates the figures of the summary line.
const SUMMARY_SEPARATOR: &str = "   ";

/// How to read the datapoint marks of an alarm.
const DATAPOINT_LEGEND: &str = "datapoints oldest..newest: # breaching, . ok, _ no data";

pub(super) fn fmt_ms_opt(value: Option<f64>) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}"),
        Some(value) => format!("{value:.1}"),
        None => "-".to_owned(),
    }
}

/// What the dashboard shows at one moment, every figure already formatted, so that the terminal
/// and the text rendering show the same numbers and differ only in layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DashboardView {
    clock: String,
    source: String,
    scale_note: String,
    /// The last window's figures (rate, 5xx share, p95/p99, crashes, store trouble), one part
    /// per figure so that a narrow terminal can wrap between them.
    summary: Vec<String>,
    operations: Vec<OperationRow>,
    /// Answers other than 2xx by `status code` with their count (`503 STORE_UNAVAILABLE: 12`).
    errors_by_code: Vec<String>,
    alarms: Vec<AlarmRow>,
    /// The latest `EVENTS_SHOWN` events, oldest first.
    events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq)]
struct OperationRow {
    name: String,
    requests_per_second: String,
    p50_ms: String,
    p95_ms: String,
    p99_ms: String,
    client_errors: u64,
    server_errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct AlarmRow {
    name: String,
    status: AlarmStatus,
    reading: AlarmReading,
    runbook: String,
}

#[derive(Debug, Clone, PartialEq)]
enum AlarmReading {
    /// `marks` has one of `#`, `.` or `_` per datapoint, oldest first.
    Evaluated {
        marks: String,
        last: String,
        rule: String,
    },
    /// Why the alarm has no local signal.
    NotObservable(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
struct EventRow {
    kind: EventKind,
    line: String,
}

fn state_label(status: AlarmStatus) -> &'static str {
    match status {
        AlarmStatus::Ok => "OK",
        AlarmStatus::Alarm => "ALARM",
        AlarmStatus::NotObservable => "n/a",
    }
}

impl DashboardView {
    /// The view of the window ending at `now_ms`.
    pub(crate) fn new(
        detector: &Detector,
        now_ms: i64,
        source: &str,
        events: &[AlarmEvent],
    ) -> Self {
        let window = detector.window(now_ms - DASHBOARD_WINDOW_MS, now_ms);
        let seconds = (DASHBOARD_WINDOW_MS / 1_000) as f64;
        let server_error_percent = if window.requests > 0 {
            100.0 * window.server_errors as f64 / window.requests as f64
        } else {
            0.0
        };
        let summary = vec![
            format!(
                "last {seconds:.0} s: {:.1} req/s",
                window.requests as f64 / seconds
            ),
            format!("5xx {server_error_percent:.2}%"),
            format!("p95 {} ms", fmt_ms_opt(percentile(&window.latencies, 95.0))),
            format!("p99 {} ms", fmt_ms_opt(percentile(&window.latencies, 99.0))),
            format!("crashes {}", window.crashes),
            format!(
                "store-unavailable {} (fast {})",
                window.store_unavailable, window.fast_store_unavailable
            ),
            format!("store retries {}", window.store_retries),
        ];
        let operations = window
            .by_op
            .iter()
            .map(|(name, op)| OperationRow {
                name: name.clone(),
                requests_per_second: format!("{:.1}", op.requests as f64 / seconds),
                p50_ms: fmt_ms_opt(percentile(&op.latencies, 50.0)),
                p95_ms: fmt_ms_opt(percentile(&op.latencies, 95.0)),
                p99_ms: fmt_ms_opt(percentile(&op.latencies, 99.0)),
                client_errors: op.client_errors,
                server_errors: op.server_errors,
            })
            .collect();
        let errors_by_code = window
            .by_status
            .iter()
            .filter(|(key, _)| !key.starts_with('2'))
            .map(|(key, count)| format!("{key}: {count}"))
            .collect();
        let alarms = detector.alarms.iter().map(alarm_row).collect();
        let skipped = events.len().saturating_sub(EVENTS_SHOWN);
        let events = events[skipped..]
            .iter()
            .map(|event| EventRow {
                kind: event.kind,
                line: event.line(),
            })
            .collect();
        Self {
            clock: format_ms(now_ms),
            source: source.to_owned(),
            scale_note: scale_note(),
            summary,
            operations,
            errors_by_code,
            alarms,
            events,
        }
    }

    /// The dashboard as plain text (what `--once` prints after the events).
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "order-service monitor  {}  log: {}\n{}\n\n{}\n\n",
            self.clock,
            self.source,
            self.scale_note,
            self.summary.join(SUMMARY_SEPARATOR)
        );
        out.push_str(&format!(
            "{:<14} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6}\n",
            "operation", "req/s", "p50 ms", "p95 ms", "p99 ms", "4xx", "5xx"
        ));
        for op in &self.operations {
            out.push_str(&format!(
                "{:<14} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6}\n",
                op.name,
                op.requests_per_second,
                op.p50_ms,
                op.p95_ms,
                op.p99_ms,
                op.client_errors,
                op.server_errors
            ));
        }
        if self.operations.is_empty() {
            out.push_str("(no requests)\n");
        }
        out.push_str(&format!(
            "\nerrors by code: {}\n\nalarms ({DATAPOINT_LEGEND}):\n",
            if self.errors_by_code.is_empty() {
                "none".to_owned()
            } else {
                self.errors_by_code.join(", ")
            },
        ));
        for alarm in &self.alarms {
            let state = state_label(alarm.status);
            match &alarm.reading {
                AlarmReading::NotObservable(why) => {
                    out.push_str(&format!("  {:<32} {:<5} {why}\n", alarm.name, state));
                }
                AlarmReading::Evaluated { marks, last, rule } => {
                    out.push_str(&format!(
                        "  {:<32} {:<5} [{:<5}] last {:<10} {:<48} {}\n",
                        alarm.name, state, marks, last, rule, alarm.runbook
                    ));
                }
            }
        }
        out.push_str("\nevents:\n");
        if self.events.is_empty() {
            out.push_str("  (none yet)\n");
        }
        for event in &self.events {
            out.push_str(&format!("  {}\n", event.line));
        }
        out
    }
}

fn alarm_row(alarm: &AlarmState) -> AlarmRow {
    let reading = match alarm.status {
        AlarmStatus::NotObservable => AlarmReading::NotObservable(alarm.signal.describe()),
        AlarmStatus::Ok | AlarmStatus::Alarm => AlarmReading::Evaluated {
            marks: alarm
                .datapoints
                .iter()
                .map(|value| match value {
                    None => '_',
                    Some(_) if alarm.breaching(*value) => '#',
                    Some(_) => '.',
                })
                .collect(),
            last: alarm
                .datapoints
                .last()
                .copied()
                .flatten()
                .map_or_else(|| "-".to_owned(), format_value),
            rule: alarm.rule(),
        },
    };
    AlarmRow {
        name: alarm.def.name.clone(),
        status: alarm.status,
        reading,
        runbook: alarm.def.runbook.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const T0: i64 = 1_800_000_000_000; // a multiple of 10 s

    /// Three alarms as ops/alarms.json states them: one that the fixture's 503s trip, one that
    /// stays OK, one without a local signal.
    const ALARMS: &str = r#"[
      {"name": "api-5xx-rate", "metric": "5XXError", "statistic": "Average", "threshold": 0.05,
       "comparison": "GreaterThanThreshold", "periodSeconds": 60, "evaluationPeriods": 5,
       "datapointsToAlarm": 3, "runbook": "runbooks/api-5xx-rate.md"},
      {"name": "api-latency-p95", "metric": "Latency", "statistic": "p95", "threshold": 300,
       "comparison": "GreaterThanThreshold", "periodSeconds": 60, "evaluationPeriods": 5,
       "datapointsToAlarm": 3, "runbook": "runbooks/api-latency-p95.md"},
      {"name": "lambda-concurrency", "metric": "ConcurrentExecutions", "statistic": "Maximum",
       "threshold": 16, "comparison": "GreaterThanOrEqualToThreshold", "periodSeconds": 60,
       "evaluationPeriods": 5, "datapointsToAlarm": 2, "runbook": "runbooks/lambda-concurrency.md"}
    ]"#;

    fn request_line(
        at_ms: i64,
        operation: &str,
        status: u16,
        code: &str,
        latency_ms: f64,
    ) -> String {
        format!(
            r#"{{"timestamp":"{}","level":"INFO","message":"request","operation":"{operation}","userId":"user-1","orderId":"","status":{status},"code":"{code}","latencyMs":{latency_ms},"storeRetries":0,"fault":false}}"#,
            format_ms(at_ms)
        )
    }

    /// 31 s of log in which every second has 10 get-orders (every 10 s take 1, 2, ..., 100 ms,
    /// so that their percentiles differ), 5 create-orders that
    /// answer 503 STORE_UNAVAILABLE in 20 ms, and 2 pay-orders (30 ms) of which one is refused,
    /// replayed through the detector the way `--once` does; returns the detector and its events.
    pub(super) fn detector_after_a_store_outage() -> (Detector, Vec<AlarmEvent>) {
        let alarms: Vec<AlarmDef> = serde_json::from_str(ALARMS).expect("alarm definitions");
        let mut lines = Vec::new();
        for second in 0..31 {
            let t = T0 + second * 1_000;
            for i in 0..10 {
                let latency_ms = (second % 10) * 10 + i + 1;
                lines.push(request_line(t + i, "get-order", 200, "", latency_ms as f64));
            }
            for i in 0..5 {
                lines.push(request_line(
                    t + i,
                    "create-order",
                    503,
                    "STORE_UNAVAILABLE",
                    20.0,
                ));
            }
            lines.push(request_line(t, "pay-order", 200, "", 30.0));
            lines.push(request_line(
                t + 1,
                "pay-order",
                409,
                "INSUFFICIENT_BALANCE",
                30.0,
            ));
        }
        let mut detector = Detector::new(alarms);
        let mut events = Vec::new();
        let mut clock = T0;
        for line in &lines {
            let event = parse_line(line, 0).expect("a request line");
            if event.at_ms() > clock {
                clock = event.at_ms();
                events.extend(detector.evaluate(clock));
            }
            detector.ingest(&event);
        }
        events.extend(detector.evaluate(T0 + 31_000));
        (detector, events)
    }

    #[test]
    fn the_text_dashboard_prints_what_once_always_printed() {
        // GIVEN the outage
        let (detector, events) = detector_after_a_store_outage();
        // WHEN it is written as text
        let text = DashboardView::new(&detector, T0 + 31_000, "functions.log", &events).text();
        let lines: Vec<&str> = text.lines().collect();
        // THEN the lines are those `--once` has always printed
        assert_eq!(
            lines[0],
            format!(
                "order-service monitor  {}  log: functions.log",
                format_ms(T0 + 31_000)
            )
        );
        assert_eq!(
            lines[3],
            "last 10 s: 17.0 req/s   5xx 29.41%   p95 92.0 ms   p99 99.0 ms   crashes 0   store-unavailable 50 (fast 50)   store retries 0"
        );
        assert!(
            lines.contains(&"create-order        5.0      20.0      20.0      20.0      0     50")
        );
        assert!(lines
            .contains(&"errors by code: 409 INSUFFICIENT_BALANCE: 10, 503 STORE_UNAVAILABLE: 50"));
        assert!(lines.contains(
            &"  api-5xx-rate                     ALARM [__###] last 0.2941     5XXError Average > 0.05 in 3 of 5 x 10 s         runbooks/api-5xx-rate.md"
        ));
        assert!(lines.contains(
            &"  lambda-concurrency               n/a   not observable locally: a fixed pool of instances per function"
        ));
        assert_eq!(
            lines.last(),
            Some(&format!("  {}", events[0].line()).as_str())
        );
    }
}
