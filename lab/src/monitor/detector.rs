//! The detector: log events in, per-second buckets kept, each alarm of ops/alarms.json
//! evaluated over them period by period, its state changes (ALERT, RESOLVED) out.

use super::*;

/// The detector: log events in, alarm state changes out.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    pub alarms: Vec<AlarmState>,
    /// Per-second buckets keyed by second (unix ms / 1000).
    buckets: BTreeMap<i64, Bucket>,
    retention_ms: Option<i64>,
    pub latest_ms: Option<i64>,
}

impl Detector {
    /// A detector keeping every second it has seen (drills need the whole history).
    pub(crate) fn new(alarms: Vec<AlarmDef>) -> Self {
        Self {
            alarms: alarms.into_iter().map(AlarmState::new).collect(),
            buckets: BTreeMap::new(),
            retention_ms: None,
            latest_ms: None,
        }
    }

    pub(crate) fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    pub(crate) fn ingest(&mut self, event: &LogEvent) {
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
            LogEvent::Store { refused, .. } => {
                bucket.saw_store_events = true;
                match refused {
                    StoreRefusal::Conflict => bucket.dynamodb_conflicts += 1,
                    StoreRefusal::Throttle => bucket.dynamodb_throttles += 1,
                }
            }
            LogEvent::Throttled { function, .. } => {
                *bucket
                    .gateway_throttles
                    .entry(function.clone())
                    .or_default() += 1;
            }
        }
    }

    /// The merged bucket of `[from_ms, to_ms)` (whole seconds).
    pub(crate) fn window(&self, from_ms: i64, to_ms: i64) -> Bucket {
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
    pub(crate) fn evaluate(&mut self, now_ms: i64) -> Vec<AlarmEvent> {
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
    pub(crate) fn first_clean_window(
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
    pub(crate) fn first_failure_after(&self, from_ms: i64) -> Option<i64> {
        let from = from_ms.div_euclid(1_000);
        self.buckets
            .range(from..)
            .find(|(_, bucket)| bucket.server_errors > 0 || bucket.crashes > 0)
            .map(|(second, _)| (second * 1_000).max(from_ms))
    }
}

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
        assert_eq!(signal("lambda-throttles"), Signal::FunctionThrottles);
        assert_eq!(signal("dynamodb-throttles"), Signal::StoreThrottled);
        assert_eq!(
            signal("dynamodb-transaction-conflicts"),
            Signal::StoreConflicts
        );
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
