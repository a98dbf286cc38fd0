//! The terminal dashboard.

use super::*;

pub(super) fn fmt_ms_opt(value: Option<f64>) -> String {
    match value {
        Some(value) if value >= 100.0 => format!("{value:.0}"),
        Some(value) => format!("{value:.1}"),
        None => "-".to_owned(),
    }
}

/// The dashboard text for the window ending at `now_ms`.
pub(crate) fn render_dashboard(
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
