//! A drill's incident report and outputs: `incident.md` from runbooks/postmortem-template.md (its `{{fields}}`
//! filled, the ✍ sections left to people), the line for `reports/incidents.jsonl`, and the
//! summary printed at the end.

use std::collections::BTreeSet;

use crate::clock::{format_clock, format_ms};
use crate::incidents::{IncidentKind, IncidentRecord};
use crate::monitor::{percentile, Bucket};

use super::support::{metric, unexpected_by_code};
use super::Findings;

fn seconds_between(from: Option<i64>, to: Option<i64>) -> Option<f64> {
    Some((to? - from?) as f64 / 1_000.0)
}

fn opt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"))
}

fn mttd_text(findings: &Findings) -> String {
    match (&findings.detected, findings.mttd_ms()) {
        (Some(alert), Some(mttd)) => format!(
            "{:.1} s (T0 {} → ALERT {} {}); local alarm periods are the template's / 6",
            mttd as f64 / 1_000.0,
            format_clock(findings.injected.unwrap_or(0)),
            alert.alarm,
            format_clock(alert.at_ms)
        ),
        _ => "no alert after T0".to_owned(),
    }
}

fn mttr_text(findings: &Findings) -> String {
    let mitigated = seconds_between(findings.injected, findings.mitigated);
    let resolved = seconds_between(findings.injected, findings.resolved);
    match findings.mttr_ms() {
        Some(mttr) => {
            format!(
            "{:.1} s (T0 → first clean {} s of the request log); mitigated at T0+{}; alarms OK: {}",
            mttr as f64 / 1_000.0,
            super::RECOVERY_WINDOW_MS / 1_000,
            mitigated.map_or("-".to_owned(), |value| format!("{value:.1} s")),
            resolved.map_or("no alarm to clear".to_owned(), |value| format!("T0+{value:.1} s")),
        )
        }
        None => "not recovered within the drill".to_owned(),
    }
}

fn audit_text(findings: &Findings) -> String {
    match (&findings.audit, &findings.audit_error) {
        (Some(audit), _) if audit.is_clean() => format!(
            "clean: {} orders {:?}, {} users, {} products; money and stock exactly conserved",
            audit.orders, audit.orders_by_status, audit.users, audit.products
        ),
        (Some(audit), _) => format!(
            "**VIOLATED**: {} violation(s): {}",
            audit.violations.len(),
            audit.violations.join("; ")
        ),
        (None, Some(error)) => format!("could not run: {error}"),
        (None, None) => "not run".to_owned(),
    }
}

fn bucket_row(
    label: &str,
    fault: &Bucket,
    whole: &Bucket,
    baseline: &Bucket,
    value: impl Fn(&Bucket) -> String,
) -> String {
    format!(
        "| {label} | {} | {} | {} |\n",
        value(baseline),
        value(fault),
        value(whole)
    )
}

fn impact_table(findings: &Findings) -> String {
    let fault = &findings.fault_window;
    let whole = &findings.whole_run;
    let baseline = &findings.baseline;
    let mut out = String::new();
    out.push_str("From the function log (one `request` line per answered request; the detector's own numbers):\n\n");
    out.push_str("| | baseline (before T0) | fault window (T0 → recovered) | whole load |\n|---|---|---|---|\n");
    out.push_str(&bucket_row("requests", fault, whole, baseline, |b| {
        b.requests.to_string()
    }));
    out.push_str(&bucket_row("answers >= 500", fault, whole, baseline, |b| {
        b.server_errors.to_string()
    }));
    out.push_str(&bucket_row(
        "503 STORE_UNAVAILABLE (fast, breaker open)",
        fault,
        whole,
        baseline,
        |b| format!("{} ({})", b.store_unavailable, b.fast_store_unavailable),
    ));
    out.push_str(&bucket_row(
        "injected faults (fault=true)",
        fault,
        whole,
        baseline,
        |b| b.faults.to_string(),
    ));
    out.push_str(&bucket_row(
        "crashed invocations (platform lines)",
        fault,
        whole,
        baseline,
        |b| b.crashes.to_string(),
    ));
    out.push_str(&bucket_row(
        "store retries (conflicts)",
        fault,
        whole,
        baseline,
        |b| b.store_retries.to_string(),
    ));
    out.push_str(&bucket_row(
        "latency p95 / p99 / max (ms, in function)",
        fault,
        whole,
        baseline,
        |b| {
            format!(
                "{} / {} / {:.0}",
                opt_ms(percentile(&b.latencies, 95.0)),
                opt_ms(percentile(&b.latencies, 99.0)),
                b.max_latency_ms
            )
        },
    ));
    let keys: BTreeSet<&String> = fault
        .by_status
        .keys()
        .chain(whole.by_status.keys())
        .collect();
    out.push_str("\nAnswers by status and code:\n\n| status code | baseline | fault window | whole load |\n|---|---|---|---|\n");
    for key in keys {
        let count = |bucket: &Bucket| bucket.by_status.get(key).copied().unwrap_or(0);
        out.push_str(&format!(
            "| {key} | {} | {} | {} |\n",
            count(baseline),
            count(fault),
            count(whole)
        ));
    }
    if let Some(summary) = &findings.k6 {
        let value = |name: &str, field: &str| metric(summary, name, field);
        out.push_str("\nFrom k6 (the client's view, including requests that got no answer):\n\n| | value |\n|---|---|\n");
        out.push_str(&format!(
            "| requests | {} |\n| failed (unexpected status or no answer) | {} |\n| journeys completed / failed | {} / {} |\n| acknowledged writes | {} |\n| latency p95 / max (ms) | {} / {} |\n",
            value("http_reqs", "count").unwrap_or(0.0),
            value("http_req_failed", "passes").unwrap_or(0.0),
            value("journeys_completed", "count").unwrap_or(0.0),
            value("journeys_failed", "count").unwrap_or(0.0),
            value("acknowledged_writes", "count").unwrap_or(0.0),
            opt_ms(value("http_req_duration", "p(95)")),
            opt_ms(value("http_req_duration", "max")),
        ));
        let codes = unexpected_by_code(summary);
        let total = value("unexpected_errors", "count").unwrap_or(0.0) as u64;
        let listed: u64 = codes.values().sum();
        let mut parts: Vec<String> = codes
            .iter()
            .map(|(code, count)| format!("{code} {count}"))
            .collect();
        if total > listed {
            parts.push(format!(
                "other (HTTP_<status>, CONTRACT) {}",
                total - listed
            ));
        }
        out.push_str(&format!(
            "| unexpected errors by code | {} |\n",
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        ));
    }
    out.push_str(&format!(
        "\nLedger: {} acknowledged writes ({} creates, {} pays, {} cancels) compared with the table: **{} lost**.\n",
        findings.ledger.entries,
        findings.ledger.creates,
        findings.ledger.pays,
        findings.ledger.cancels,
        findings.ledger.lost_count()
    ));
    for lost in findings.ledger.lost.iter().take(10) {
        out.push_str(&format!("- {lost}\n"));
    }
    out
}

fn timeline_table(findings: &Findings) -> String {
    let injected = findings.injected;
    let mut out = String::from("| time (UTC) | T0 + | event | source |\n|---|---|---|---|\n");
    for entry in &findings.timeline {
        let offset = injected.map_or_else(String::new, |t0| {
            format!("{:+.1} s", (entry.at_ms - t0) as f64 / 1_000.0)
        });
        out.push_str(&format!(
            "| {} | {offset} | {} | {} |\n",
            format_ms(entry.at_ms),
            entry.event.replace('|', "\\|"),
            entry.source
        ));
    }
    out
}

fn summary_text(findings: &Findings) -> String {
    let verdict = if findings.passed() {
        "PASSED"
    } else {
        "FAILED"
    };
    let failed: u64 = findings.failed_by_status().values().sum();
    let mut out = format!(
        "Drill `{}` on the local stack under {} req/s of k6 load: {}. Result: **{verdict}** \
         ({} of {} expectations held). {} requests failed; {} acknowledged writes lost; audit {}.\n\n",
        findings.drill,
        findings.rate,
        findings.injects,
        findings.checks.iter().filter(|check| check.passed).count(),
        findings.checks.len(),
        failed,
        findings.ledger.lost_count(),
        if findings.audit_clean() { "clean" } else { "NOT clean" }
    );
    out.push_str("| expectation | result | measured |\n|---|---|---|\n");
    for check in &findings.checks {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            check.name,
            match (check.passed, check.advisory) {
                (true, _) => "✓",
                (false, false) => "✗ **failed**",
                (false, true) => "⚠ missed because of the local platform (does not fail the drill)",
            },
            check.detail.replace('|', "\\|")
        ));
    }
    out.push_str(&format!(
        "\nDetection runs the alarms of `ops/alarms.json` over the function log ({}).\n",
        crate::monitor::scale_note()
    ));
    out
}

fn resolution_text(findings: &Findings) -> String {
    let mut out = findings.resolution.clone();
    if !findings.notes.is_empty() {
        out.push_str("\n\nObserved during the drill:\n");
        for note in &findings.notes {
            out.push_str(&format!("- {note}\n"));
        }
    }
    out
}

/// Fills the template's `{{fields}}`; unknown fields say so.
pub(super) fn render_incident(findings: &Findings, template: &str) -> String {
    let title = format!(
        "Drill {}: {} ({})",
        findings.drill,
        findings.injects,
        format_ms(findings.injected.unwrap_or(findings.started))
    );
    let fields: Vec<(&str, String)> = vec![
        ("title", title),
        (
            "date",
            format_ms(findings.injected.unwrap_or(findings.started)),
        ),
        ("mttd", mttd_text(findings)),
        ("mttr", mttr_text(findings)),
        ("audit_result", audit_text(findings)),
        ("summary", summary_text(findings)),
        ("impact_table", impact_table(findings)),
        ("timeline_table", timeline_table(findings)),
        ("root_cause", findings.root_cause.clone()),
        ("trigger", findings.trigger.clone()),
        ("resolution", resolution_text(findings)),
    ];
    fill(template, &fields)
}

/// Replaces every `{{name}}` with its value; unknown names become a visible note.
pub(super) fn fill(template: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match fields.iter().find(|(key, _)| *key == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&format!("_(`{name}`: not filled by the drill)_")),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub(super) fn incident_record(findings: &Findings, report: &str) -> IncidentRecord {
    let at = |value: Option<i64>| value.map(format_ms);
    IncidentRecord {
        kind: IncidentKind::Drill,
        drill: Some(findings.drill.clone()),
        started: format_ms(findings.started),
        injected: format_ms(findings.injected.unwrap_or(findings.started)),
        detected: findings
            .detected
            .as_ref()
            .map(|alert| format_ms(alert.at_ms)),
        detected_by: findings.detected.as_ref().map(|alert| alert.alarm.clone()),
        mitigated: at(findings.mitigated),
        recovered: at(findings.recovered),
        resolved: at(findings.resolved),
        failed_requests: findings.failed_by_status(),
        acknowledged_writes: Some(findings.ledger.entries as u64),
        acknowledged_writes_lost: Some(findings.ledger.lost_count() as u64),
        audit_clean: Some(findings.audit_clean()),
        passed: Some(findings.passed()),
        failures: findings
            .checks
            .iter()
            .filter(|check| !check.passed && !check.advisory)
            .map(|check| check.name.clone())
            .collect(),
        rate: Some(findings.rate),
        report: Some(report.to_owned()),
        ..IncidentRecord::default()
    }
}

pub(super) fn print_summary(findings: &Findings, report: &str) {
    println!();
    println!(
        "== drill {}: {}",
        findings.drill,
        if findings.passed() {
            "PASSED"
        } else {
            "FAILED"
        }
    );
    println!("   MTTD  {}", mttd_text(findings));
    println!("   MTTR  {}", mttr_text(findings));
    println!(
        "   failed requests by status: {:?}",
        findings.failed_by_status()
    );
    println!(
        "   acknowledged writes: {} checked, {} lost; audit: {}",
        findings.ledger.entries,
        findings.ledger.lost_count(),
        if findings.audit_clean() {
            "clean"
        } else {
            "NOT clean"
        }
    );
    for check in findings.checks.iter().filter(|check| !check.passed) {
        let mark = if check.advisory { "⚠" } else { "✗" };
        println!("   {mark} {}: {}", check.name, check.detail);
    }
    println!("   report: {report}  (+ reports/incidents.jsonl)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_fields_and_marks_unknown_ones() {
        // GIVEN a template with two known fields, one unknown and an unclosed brace
        let template = "# {{title}}\nMTTD {{ mttd }} / {{mystery}} / {{open";
        // WHEN filled
        let out = fill(
            template,
            &[("title", "Drill x".to_owned()), ("mttd", "3 s".to_owned())],
        );
        // THEN known fields are replaced, the unknown is visible, the rest is kept
        assert_eq!(
            out,
            "# Drill x\nMTTD 3 s / _(`mystery`: not filled by the drill)_ / {{open"
        );
    }

    #[test]
    fn the_real_template_has_no_field_left_unfilled() {
        // GIVEN the post-mortem template and empty findings
        let template =
            std::fs::read_to_string(crate::paths::root().join("runbooks/postmortem-template.md"))
                .expect("template");
        let findings = Findings {
            drill: "store-outage".to_owned(),
            ..Findings::default()
        };
        // WHEN rendered THEN no {{field}} remains and none is unknown
        let out = render_incident(&findings, &template);
        assert!(!out.contains("{{"), "a field was left: {out}");
        assert!(
            !out.contains("not filled by the drill"),
            "an unknown field: {out}"
        );
    }
}
