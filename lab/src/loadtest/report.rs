//! The k6 load-test report: renders `report.md` from k6's `summary.json`: the table of the old service's report (avg,
//! median, min, max, p90, p95, requests, requests/s, error rate, VUs, data) per endpoint, a
//! daily-active-user estimate with its formula, resource usage, the audit, and per-scenario
//! sections (the stress knee, the spike's phases, the flash-sale check).

mod store;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::k6::summary_value as number;
use crate::resources::ResourceSummary;
use crate::seed_plan::SeedArgs;
use order_service::store::AuditReport;

pub(crate) const ENDPOINTS: [&str; 5] = ["create", "pay", "get", "list", "cancel"];

pub(crate) struct ReportInput<'a> {
    pub scenario: &'a str,
    pub base_url: &'a str,
    pub summary: &'a Value,
    pub seed: Option<&'a SeedArgs>,
    pub resources: Option<&'a ResourceSummary>,
    pub audit: Option<&'a AuditReport>,
    pub flash_check: Option<&'a str>,
    /// p95 of the functions' own latency over the first and the last tenth of the run.
    pub latency_drift: Option<(f64, f64)>,
    pub k6_passed: bool,
    /// How DynamoDB Local was warmed before the measured window, if it was.
    pub warm_up: Option<&'a str>,
    /// The store's own limit measured in the same run (API requests/s), if it was.
    pub store_limit: Option<f64>,
    /// Refusals per function, from the functions' log over the measured run (local runs).
    pub refusals: Option<&'a BTreeMap<String, Refusals>>,
    /// What dynamodb-faithful counted over the measured run (None with `--store direct`).
    pub store: Option<&'a dynamodb_faithful::Summary>,
}

pub(crate) use store::{answer_counts, refusals_since, Refusals};

/// The p95 of `latencyMs` over the first and the last tenth (by time) of the request lines in
/// a function log written at or after `since` (RFC 3339): how much the service's own latency
/// drifted during a long run.
pub(crate) fn latency_drift(log: &str, since: &str) -> Option<(f64, f64)> {
    let mut samples: Vec<(String, f64)> = log
        .lines()
        .filter(|line| line.contains("\"message\":\"request\""))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| {
            Some((
                record.get("timestamp")?.as_str()?.to_owned(),
                record.get("latencyMs")?.as_f64()?,
            ))
        })
        .filter(|(timestamp, _)| timestamp.as_str() >= since)
        .collect();
    if samples.len() < 20 {
        return None;
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    let tenth = samples.len() / 10;
    let p95 = |slice: &[(String, f64)]| {
        let mut values: Vec<f64> = slice.iter().map(|sample| sample.1).collect();
        values.sort_by(f64::total_cmp);
        values[((values.len() as f64 * 0.95) as usize).min(values.len() - 1)]
    };
    Some((
        p95(&samples[..tenth]),
        p95(&samples[samples.len() - tenth..]),
    ))
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |value| format!("{value:.2}"))
}

/// The duration of the test run in seconds, from k6's state.
pub(crate) fn run_seconds(summary: &Value) -> f64 {
    summary
        .pointer("/state/testRunDurationMs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1_000.0
}

/// One row of the latency table for the metric tag `tag` (`None` = all requests).
fn latency_row(summary: &Value, label: &str, tag: Option<&str>) -> Option<String> {
    let suffix = tag.map_or(String::new(), |tag| format!("{{{tag}}}"));
    let duration = format!("http_req_duration{suffix}");
    let requests = number(summary, &format!("http_reqs{suffix}"), "count")?;
    if requests == 0.0 {
        return None;
    }
    let seconds = run_seconds(summary).max(f64::EPSILON);
    let failed = number(summary, &format!("http_req_failed{suffix}"), "rate").unwrap_or(0.0);
    Some(format!(
        "| {label} | {requests:.0} | {rps:.1} | {avg} | {med} | {min} | {max} | {p90} | {p95} | {p99} | {failed:.3}% |",
        rps = requests / seconds,
        avg = ms(number(summary, &duration, "avg")),
        med = ms(number(summary, &duration, "med")),
        min = ms(number(summary, &duration, "min")),
        max = ms(number(summary, &duration, "max")),
        p90 = ms(number(summary, &duration, "p(90)")),
        p95 = ms(number(summary, &duration, "p(95)")),
        p99 = ms(number(summary, &duration, "p(99)")),
        failed = failed * 100.0,
    ))
}

const TABLE_HEADER: &str = "| endpoint | requests | req/s | avg ms | median ms | min ms | max ms | p90 ms | p95 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The daily-active-user estimate and the assumptions it rests on.
pub(crate) const DAU_PEAK_HOUR_SHARE: f64 = 0.10;
pub(crate) const DAU_REQUESTS_PER_USER: f64 = 2.0 * 3.1;

pub(crate) fn daily_active_users(requests_per_second: f64) -> f64 {
    requests_per_second * 3_600.0 / (DAU_PEAK_HOUR_SHARE * DAU_REQUESTS_PER_USER)
}

/// Every k6 threshold that failed, as "`metric`: `expression`" (with the observed value when
/// the summary has it).
pub(crate) fn failed_thresholds(summary: &Value) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(metrics) = summary.get("metrics").and_then(Value::as_object) {
        for (name, body) in metrics {
            if let Some(thresholds) = body.get("thresholds").and_then(Value::as_object) {
                for (expression, verdict) in thresholds {
                    if verdict.get("ok").and_then(Value::as_bool) == Some(false) {
                        let observed = observed_value(body, expression)
                            .map_or(String::new(), |value| format!(" (observed {value})"));
                        failed.push(format!("`{name}`: `{expression}`{observed}"));
                    }
                }
            }
        }
    }
    failed
}

/// The value a threshold expression such as `p(95)<25` or `rate==0` was judged on.
fn observed_value(metric: &Value, expression: &str) -> Option<String> {
    let statistic = expression
        .split(['<', '>', '=', '!'])
        .next()
        .map(str::trim)
        .filter(|name| !name.is_empty())?;
    let value = metric.pointer(&format!("/values/{statistic}"))?.as_f64()?;
    Some(format!("{statistic} = {value:.3}").replace(".000", ""))
}

fn thresholds_section(summary: &Value, out: &mut String) {
    let failed = failed_thresholds(summary);
    if failed.is_empty() {
        let _ = writeln!(out, "All thresholds held.\n");
    } else {
        let _ = writeln!(out, "Thresholds that failed:\n");
        for line in failed {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out);
    }
}

/// The stress knee: the highest step held with no failed request and p95 within bound.
pub(crate) fn stress_section(
    summary: &Value,
    resources: Option<&ResourceSummary>,
    store_limit: Option<f64>,
    out: &mut String,
) {
    let Some(stages) = summary.pointer("/suite/stages").and_then(Value::as_array) else {
        return;
    };
    let bound = summary
        .pointer("/suite/p95Ms")
        .and_then(Value::as_f64)
        .unwrap_or(25.0);
    let _ = writeln!(out, "## Stress steps\n\n| target req/s | achieved req/s | p95 ms | failed | of which refused fast (429/503) | unexpected | held |\n|---:|---:|---:|---:|---:|---:|:---:|");
    let mut knee: Option<f64> = None;
    let mut first_broken: Option<f64> = None;
    // Past the knee, overload must be refused fast: every step keeps p95 under a second and
    // fails only with 429/503.
    let mut past_knee_slowest_p95: f64 = 0.0;
    let mut past_knee_other_failures: f64 = 0.0;
    for stage in stages {
        let Some(name) = stage.get("stage").and_then(|value| {
            value
                .as_str()
                .map(str::to_owned)
                .or_else(|| value.as_f64().map(|rate| rate.to_string()))
        }) else {
            continue;
        };
        let target = stage
            .get("targetRate")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let seconds = stage
            .get("durationMs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            / 1_000.0;
        let count = number(summary, &format!("http_reqs{{stage:{name}}}"), "count").unwrap_or(0.0);
        let p95 = number(
            summary,
            &format!("http_req_duration{{stage:{name}}}"),
            "p(95)",
        );
        let failed = number(
            summary,
            &format!("http_req_failed{{stage:{name}}}"),
            "passes",
        )
        .unwrap_or(0.0);
        let unexpected = number(
            summary,
            &format!("unexpected_errors{{stage:{name}}}"),
            "count",
        )
        .unwrap_or(0.0);
        let refused = number(
            summary,
            &format!("refused_requests{{stage:{name}}}"),
            "count",
        )
        .unwrap_or(0.0);
        let achieved = if seconds > 0.0 { count / seconds } else { 0.0 };
        // A step holds when nothing failed, p95 is in bound and k6 kept up with the target.
        let held = count > 0.0
            && failed == 0.0
            && unexpected == 0.0
            && p95.is_some_and(|p95| p95 <= bound)
            && achieved >= 0.95 * target;
        if held && first_broken.is_none() {
            knee = Some(target);
        } else if !held && first_broken.is_none() {
            first_broken = Some(target);
        }
        if first_broken.is_some() {
            past_knee_slowest_p95 = past_knee_slowest_p95.max(p95.unwrap_or(f64::INFINITY));
            past_knee_other_failures += (failed - refused).max(0.0);
        }
        let _ = writeln!(
            out,
            "| {target:.0} | {achieved:.1} | {} | {failed:.0} | {refused:.0} | {unexpected:.0} | {} |",
            ms(p95),
            if held { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        out,
        "\n**Knee: {}** (highest step with 0 failed requests, p95 <= {bound} ms and >= 95% of the target rate achieved){}.",
        knee.map_or("none held".to_owned(), |rate| format!("{rate:.0} req/s")),
        first_broken.map_or(String::new(), |rate| format!("; the first step that broke: {rate:.0} req/s"))
    );
    if let Some(limit) = store_limit {
        let _ = writeln!(
            out,
            "\nStore limit measured in this run: **{limit:.0} API requests/s**; the knee is **{:.2}** of it.",
            knee.unwrap_or(0.0) / limit.max(f64::EPSILON)
        );
    }
    if first_broken.is_some() {
        let _ = writeln!(
            out,
            "\nPast the knee: slowest step p95 **{}**, failures other than fast 429/503 refusals: **{past_knee_other_failures:.0}**.",
            ms(Some(past_knee_slowest_p95))
        );
    }
    if let Some((group, usage)) = resources.and_then(ResourceSummary::busiest) {
        let _ = writeln!(
            out,
            "What saturated first: **{group}** had the highest CPU (avg {:.0}%, peak {:.0}% of one core; the machine has 2 cores).\n",
            usage.cpu_avg_percent, usage.cpu_peak_percent
        );
    }
}

/// The spike's phases, and how long p95 took to return to the baseline's after the surge
/// left: the end of the first 5 s recovery window whose p95 is within 1.5 x the baseline p95
/// (or within 5 ms of it, for a baseline of a few milliseconds).
fn spike_section(summary: &Value, out: &mut String) {
    let Some(phases) = summary.pointer("/suite/phases").and_then(Value::as_array) else {
        return;
    };
    let _ = writeln!(out, "## Spike phases\n\n| phase | target req/s | surge VUs | requests | p95 ms | p99 ms | failed | of which refused fast (429/503) |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut baseline_p95: Option<f64> = None;
    let mut recovered_after: Option<String> = None;
    let mut other_failures = 0.0;
    for phase in phases {
        let name = phase.get("phase").and_then(Value::as_str).unwrap_or("?");
        let target = phase
            .get("targetRate")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let surge_vus = phase.get("surgeVus").and_then(Value::as_f64).unwrap_or(0.0);
        let p95 = number(
            summary,
            &format!("http_req_duration{{phase:{name}}}"),
            "p(95)",
        );
        let failed = number(
            summary,
            &format!("http_req_failed{{phase:{name}}}"),
            "passes",
        )
        .unwrap_or(0.0);
        let refused = number(
            summary,
            &format!("refused_requests{{phase:{name}}}"),
            "count",
        )
        .unwrap_or(0.0);
        other_failures += (failed - refused).max(0.0);
        if name == "baseline" {
            baseline_p95 = p95;
        }
        if let (Some(seconds), Some(base), Some(p95), None) = (
            name.strip_prefix("recovery-"),
            baseline_p95,
            p95,
            &recovered_after,
        ) {
            if p95 <= (base * 1.5).max(base + 5.0) {
                recovered_after = Some(seconds.to_owned());
            }
        }
        let _ = writeln!(
            out,
            "| {name} | {target:.0} | {surge_vus:.0} | {:.0} | {} | {} | {failed:.0} | {refused:.0} |",
            number(summary, &format!("http_reqs{{phase:{name}}}"), "count").unwrap_or(0.0),
            ms(p95),
            ms(number(
                summary,
                &format!("http_req_duration{{phase:{name}}}"),
                "p(99)"
            )),
        );
    }
    let _ = writeln!(
        out,
        "\n**p95 back to baseline: {}** after the surge left (first 5 s window within 1.5x the baseline p95 of {}). Failures other than fast 429/503 refusals: **{other_failures:.0}**.\n",
        recovered_after.map_or("not within the run".to_owned(), |seconds| format!("{seconds} s")),
        ms(baseline_p95)
    );
}

pub(crate) fn render(input: &ReportInput<'_>) -> String {
    let summary = input.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# k6 `{}` report\n", input.scenario);
    let generated = summary
        .pointer("/suite/generatedAt")
        .and_then(Value::as_str)
        .unwrap_or("");
    let _ = writeln!(
        out,
        "Target `{}`; run {:.0} s; generated {generated}; k6 thresholds: **{}**.\n",
        input.base_url,
        run_seconds(summary),
        if input.k6_passed { "passed" } else { "FAILED" }
    );
    if let Some(warm_up) = input.warm_up {
        let _ = writeln!(out, "{warm_up}\n");
    }
    if let Some(limit) = input.store_limit {
        let _ = writeln!(
            out,
            "The store's own limit, measured in this run before the load: **{limit:.0} API requests/s** (the same journeys' DynamoDB operations straight through the store crate, closed loop at concurrency 16 and 32, best of both).\n"
        );
    }
    let _ = writeln!(
        out,
        "## Latency and throughput per endpoint\n\n{TABLE_HEADER}"
    );
    for endpoint in ENDPOINTS {
        if let Some(row) = latency_row(summary, endpoint, Some(&format!("endpoint:{endpoint}"))) {
            let _ = writeln!(out, "{row}");
        }
    }
    if let Some(row) = latency_row(summary, "**all**", None) {
        let _ = writeln!(out, "{row}");
    }
    let total = number(summary, "http_reqs", "count").unwrap_or(0.0);
    let rps = number(summary, "http_reqs", "rate").unwrap_or(0.0);
    let _ = writeln!(
        out,
        "\nTotal requests {total:.0}, {rps:.1} requests/s; VUs max {:.0}; data received {:.1} MB ({:.1} kB/s), sent {:.1} MB ({:.1} kB/s); unexpected errors {:.0}; dropped iterations {:.0}.\n",
        number(summary, "vus_max", "max").or_else(|| number(summary, "vus_max", "value")).unwrap_or(0.0),
        number(summary, "data_received", "count").unwrap_or(0.0) / 1e6,
        number(summary, "data_received", "rate").unwrap_or(0.0) / 1e3,
        number(summary, "data_sent", "count").unwrap_or(0.0) / 1e6,
        number(summary, "data_sent", "rate").unwrap_or(0.0) / 1e3,
        number(summary, "unexpected_errors", "count").unwrap_or(0.0),
        number(summary, "dropped_iterations", "count").unwrap_or(0.0),
    );
    thresholds_section(summary, &mut out);

    let _ = writeln!(
        out,
        "## Daily active users this rate supports\n\n**~{:.0} DAU** at the {rps:.1} requests/s sustained here.\n\nFormula: `DAU = RPS x 3600 / (peak-hour share x requests per user per day)`, assuming the busiest hour carries {:.0}% of a day's traffic and an active user makes two journeys a day ({:.1} requests). Both assumptions are stated so they can be replaced with measured ones.\n",
        daily_active_users(rps),
        DAU_PEAK_HOUR_SHARE * 100.0,
        DAU_REQUESTS_PER_USER
    );

    stress_section(summary, input.resources, input.store_limit, &mut out);
    spike_section(summary, &mut out);
    if let Some((start, end)) = input.latency_drift {
        let _ = writeln!(
            out,
            "## Drift\n\nThe functions' own p95 latency: {start:.2} ms over the first tenth of the run, {end:.2} ms over the last tenth ({:+.1}%). RSS drift per process is in the resource table (start vs end).\n",
            (end - start) / start.max(f64::EPSILON) * 100.0
        );
    }
    if let Some(check) = input.flash_check {
        let _ = writeln!(out, "## Flash sale\n\n{check}.\n");
    }
    if let Some(refusals) = input.refusals {
        store::section(refusals, input.store, &mut out);
    }
    if let Some(resources) = input.resources {
        let _ = writeln!(out, "## Resource usage ({} samples every {:.0} s)\n\n| process | instances | CPU avg % | CPU peak % | RSS start MiB | RSS end MiB | RSS peak MiB |\n|---|---:|---:|---:|---:|---:|---:|", resources.samples, resources.interval_seconds);
        for (group, usage) in &resources.groups {
            let _ = writeln!(
                out,
                "| {group} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                usage.processes,
                usage.cpu_avg_percent,
                usage.cpu_peak_percent,
                usage.rss_start_mb,
                usage.rss_end_mb,
                usage.rss_peak_mb
            );
        }
        let _ = writeln!(out, "\nCPU is percent of one core (the machine has 2).\n");
    }
    if let Some(seed) = input.seed {
        let _ = writeln!(
            out,
            "## Seed\n\n{} users with {} KRW each, {} products with {} units each, product-flash with {} units (sized from rate x duration).\n",
            seed.users, seed.balance, seed.products, seed.stock, seed.flash_stock
        );
    }
    match input.audit {
        Some(audit) if audit.is_clean() => {
            let _ = writeln!(
                out,
                "## Audit\n\n**clean**: {} orders ({:?}), money and stock exactly conserved across {} users and {} products.\n",
                audit.orders, audit.orders_by_status, audit.users, audit.products
            );
        }
        Some(audit) => {
            let _ = writeln!(
                out,
                "## Audit\n\n**VIOLATIONS** ({}):\n",
                audit.violations.len()
            );
            for violation in &audit.violations {
                let _ = writeln!(out, "- {violation}");
            }
            let _ = writeln!(out);
        }
        None => {
            let _ = writeln!(
                out,
                "## Audit\n\nNot run (the target is not the local stack).\n"
            );
        }
    }
    let _ = writeln!(out, "Files: `summary.json` (k6's full summary), `report.html` (k6 web dashboard: charts over time), `k6.log`.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> Value {
        json!({
            "state": {"testRunDurationMs": 10_000.0},
            "suite": {"p95Ms": 25, "stages": [
                {"stage": "100", "targetRate": 100, "durationMs": 10_000},
                {"stage": "200", "targetRate": 200, "durationMs": 10_000},
                {"stage": "300", "targetRate": 300, "durationMs": 10_000}
            ]},
            "metrics": {
                "http_reqs": {"values": {"count": 6000.0, "rate": 600.0}},
                "http_reqs{endpoint:create}": {"values": {"count": 2000.0}},
                "http_req_duration{endpoint:create}": {"values": {"avg": 4.0, "med": 3.0, "min": 1.0, "max": 40.0, "p(90)": 8.0, "p(95)": 12.5, "p(99)": 20.0}},
                "http_req_failed{endpoint:create}": {"values": {"rate": 0.0}},
                "http_reqs{stage:100}": {"values": {"count": 1000.0}},
                "http_req_duration{stage:100}": {"values": {"p(95)": 5.0}},
                "http_req_failed{stage:100}": {"values": {"passes": 0.0}},
                "http_reqs{stage:200}": {"values": {"count": 2000.0}},
                "http_req_duration{stage:200}": {"values": {"p(95)": 9.0}},
                "http_req_failed{stage:200}": {"values": {"passes": 0.0}},
                "http_reqs{stage:300}": {"values": {"count": 2500.0}},
                "http_req_duration{stage:300}": {"values": {"p(95)": 80.0}},
                "http_req_failed{stage:300}": {"values": {"passes": 3.0}},
                "refused_requests{stage:300}": {"values": {"count": 2.0}},
                "http_req_duration": {"thresholds": {"p(95)<25": {"ok": false}}, "values": {"p(95)": 30.5}}
            }
        })
    }

    #[test]
    fn drift_compares_the_first_and_last_tenth() {
        let mut log = String::new();
        for second in 0..100 {
            let latency = if second < 50 { 2.0 } else { 4.0 };
            log.push_str(&format!(
                "{{\"timestamp\":\"2026-11-25T21:00:{:02}.{:03}Z\",\"message\":\"request\",\"latencyMs\":{latency}}}\n",
                second / 2,
                second % 2 * 500
            ));
            log.push_str("{\"_aws\":{}}\n");
        }
        assert_eq!(latency_drift(&log, ""), Some((2.0, 4.0)));
        assert_eq!(latency_drift(&log, "2026-11-25T21:00:25"), Some((4.0, 4.0)));
        assert_eq!(latency_drift("nothing", ""), None);
    }

    #[test]
    fn the_knee_is_the_last_step_that_held() {
        let mut out = String::new();
        stress_section(&summary(), None, Some(400.0), &mut out);
        assert!(out.contains("**Knee: 200 req/s**"), "{out}");
        assert!(
            out.contains("the first step that broke: 300 req/s"),
            "{out}"
        );
        assert!(out.contains("the knee is **0.50** of it"), "{out}");
        // Two of the three failures at 300 were fast refusals, one was not.
        assert!(
            out.contains("| 300 | 250.0 | 80.00 | 3 | 2 | 0 | no |"),
            "{out}"
        );
        assert!(
            out.contains("failures other than fast 429/503 refusals: **1**"),
            "{out}"
        );
    }

    #[test]
    fn the_spike_reports_when_p95_returned_to_baseline_and_what_failed() {
        let summary = json!({
            "suite": {"phases": [
                {"phase": "baseline", "targetRate": 100, "surgeVus": 0},
                {"phase": "surge", "targetRate": 0, "surgeVus": 550},
                {"phase": "recovery-5", "targetRate": 100, "surgeVus": 0},
                {"phase": "recovery-10", "targetRate": 100, "surgeVus": 0},
                {"phase": "recovery-15", "targetRate": 100, "surgeVus": 0}
            ]},
            "metrics": {
                "http_req_duration{phase:baseline}": {"values": {"p(95)": 10.0}},
                "http_req_duration{phase:surge}": {"values": {"p(95)": 400.0}},
                "http_req_failed{phase:surge}": {"values": {"passes": 120.0}},
                "refused_requests{phase:surge}": {"values": {"count": 119.0}},
                "http_req_duration{phase:recovery-5}": {"values": {"p(95)": 90.0}},
                "http_req_duration{phase:recovery-10}": {"values": {"p(95)": 14.0}},
                "http_req_duration{phase:recovery-15}": {"values": {"p(95)": 9.0}}
            }
        });
        let mut out = String::new();
        spike_section(&summary, &mut out);
        assert!(out.contains("**p95 back to baseline: 10 s**"), "{out}");
        assert!(
            out.contains("Failures other than fast 429/503 refusals: **1**"),
            "{out}"
        );
    }

    #[test]
    fn a_failed_threshold_names_the_value_it_was_judged_on() {
        let failed = failed_thresholds(&summary());
        assert_eq!(
            failed,
            vec!["`http_req_duration`: `p(95)<25` (observed p(95) = 30.500)".to_owned()]
        );
    }

    #[test]
    fn the_report_has_the_endpoint_table_failed_thresholds_and_dau() {
        let summary = summary();
        let text = render(&ReportInput {
            scenario: "load",
            base_url: "http://127.0.0.1:9000",
            summary: &summary,
            seed: None,
            resources: None,
            audit: None,
            flash_check: None,
            latency_drift: None,
            k6_passed: false,
            warm_up: Some("DynamoDB Local was warmed before the measured window"),
            store_limit: Some(500.0),
            refusals: None,
            store: None,
        });
        assert!(text.contains("DynamoDB Local was warmed"), "{text}");
        assert!(text.contains("**500 API requests/s**"), "{text}");
        assert!(text.contains("| create | 2000 | 200.0 | 4.00 | 3.00 | 1.00 | 40.00 | 8.00 | 12.50 | 20.00 | 0.000% |"), "{text}");
        assert!(text.contains("`http_req_duration`: `p(95)<25`"), "{text}");
        assert!(text.contains("DAU"));
        assert_eq!(
            daily_active_users(200.0).round(),
            (200.0_f64 * 3_600.0 / 0.62).round()
        );
    }
}
