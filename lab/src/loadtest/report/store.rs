//! The report's "What the store refused" section: per endpoint, the answers that were refusals
//! (409 and 503 by code, 429) and the store retries, from the functions' request lines; and,
//! from the stack's `dynamodb-faithful`, what production DynamoDB would have refused, per
//! DynamoDB operation and for the busiest partitions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dynamodb_faithful::Summary;

use crate::monitor::{self, LogEvent};

/// One endpoint's refusals over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Refusals {
    pub requests: u64,
    /// `409 CONCURRENT_REQUEST`, `503 STORE_THROTTLED`, `429 TOO_MANY_REQUESTS`, ... counts.
    pub by_answer: BTreeMap<String, u64>,
    /// storeRetries summed: transactions the store sent again after a conflict or throttle.
    pub store_retries: u64,
}

/// The request lines of a function log at or after `since_ms`, per operation.
pub(crate) fn refusals_since(log: &str, since_ms: i64) -> BTreeMap<String, Refusals> {
    let mut by_operation: BTreeMap<String, Refusals> = BTreeMap::new();
    for line in log.lines() {
        let Some(LogEvent::Request(record)) = monitor::parse_line(line, 0) else {
            continue;
        };
        if record.at_ms < since_ms {
            continue;
        }
        let entry = by_operation.entry(record.operation.clone()).or_default();
        entry.requests += 1;
        entry.store_retries += u64::from(record.store_retries);
        if matches!(record.status, 409 | 429 | 503) {
            let answer = format!("{} {}", record.status, record.code);
            *entry.by_answer.entry(answer.trim().to_owned()).or_default() += 1;
        }
    }
    by_operation
}

/// `3 x 503 STORE_THROTTLED, 1 x 409 CONCURRENT_REQUEST`, or `none`.
pub(crate) fn answer_counts(by_answer: &BTreeMap<String, u64>) -> String {
    if by_answer.is_empty() {
        return "none".to_owned();
    }
    by_answer
        .iter()
        .map(|(answer, count)| format!("{count} x {answer}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The section, or nothing when neither source has anything to say.
pub(crate) fn section(
    refusals: &BTreeMap<String, Refusals>,
    store: Option<&Summary>,
    out: &mut String,
) {
    if refusals.is_empty() && store.is_none() {
        return;
    }
    let _ = writeln!(out, "## What the store refused\n");
    if !refusals.is_empty() {
        let _ = writeln!(
            out,
            "Answers that were refusals, per function (the functions' request lines over the measured run). A 409 `CONCURRENT_REQUEST` is a transaction that lost its conflicts after the store's retries; a 503 `STORE_THROTTLED` a partition past its throughput after them; `storeRetries` counts the transactions the store sent again.\n\n| function | requests | refusals | storeRetries |\n|---|---:|---|---:|"
        );
        for (operation, seen) in refusals {
            let answers = answer_counts(&seen.by_answer);
            let _ = writeln!(
                out,
                "| {operation} | {} | {answers} | {} |",
                seen.requests, seen.store_retries
            );
        }
        let _ = writeln!(out);
    }
    match store {
        Some(summary) => render_store(summary, out),
        None => {
            let _ = writeln!(
                out,
                "The stack ran with `--store direct`: DynamoDB Local alone, which never conflicts or throttles.\n"
            );
        }
    }
}

fn render_store(summary: &Summary, out: &mut String) {
    let limits = summary
        .limits
        .map_or("no partition limit".to_owned(), |limits| {
            format!(
                "{} write units and {} read units per second per partition",
                limits.write_units_per_second, limits.read_units_per_second
            )
        });
    let _ = writeln!(
        out,
        "What production DynamoDB would have done, as `dynamodb-faithful` (in front of DynamoDB Local; {limits}) counted it over {:.0} s. Conflicts are requests cancelled because another transaction held an item; throttled, requests past a partition's throughput; both were answered with DynamoDB's own errors, which the SDK or the store retried.\n\n| DynamoDB operation | requests | conflicts | throttled | in progress | condition failed | write units | read units |\n|---|---:|---:|---:|---:|---:|---:|---:|",
        summary.seconds
    );
    let mut rows: Vec<(String, dynamodb_faithful::OperationStats)> = summary
        .operations
        .iter()
        .map(|(name, stats)| (name.clone(), stats.clone()))
        .collect();
    rows.push(("**all**".to_owned(), summary.total()));
    for (name, stats) in rows {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            stats.requests,
            stats.conflicts,
            stats.throttled,
            stats.in_progress,
            stats.condition_failures,
            stats.write_units,
            stats.read_units
        );
    }
    let mut busiest: Vec<(&String, &dynamodb_faithful::PartitionStats)> =
        summary.partitions.iter().collect();
    busiest.sort_by(|a, b| {
        (b.1.throttled + b.1.conflicts)
            .cmp(&(a.1.throttled + a.1.conflicts))
            .then(b.1.write_units.total_cmp(&a.1.write_units))
    });
    if !busiest.is_empty() {
        let seconds = summary.seconds.max(1.0);
        let _ = writeln!(
            out,
            "\nThe busiest partitions (by refusals, then write units):\n\n| partition key | write units/s | read units/s | conflicts | throttled |\n|---|---:|---:|---:|---:|"
        );
        for (partition, stats) in busiest.into_iter().take(5) {
            let _ = writeln!(
                out,
                "| `{partition}` | {:.1} | {:.1} | {} | {} |",
                stats.write_units / seconds,
                stats.read_units / seconds,
                stats.conflicts,
                stats.throttled
            );
        }
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at: &str, operation: &str, status: u16, code: &str, retries: u32) -> String {
        serde_json::json!({
            "timestamp": at,
            "level": "INFO",
            "message": "request",
            "operation": operation,
            "status": status,
            "code": code,
            "latencyMs": 3.0,
            "storeRetries": retries,
        })
        .to_string()
    }

    #[test]
    fn refusals_are_counted_per_function_from_the_start_of_the_run() {
        let log = [
            line(
                "2026-12-06T10:00:00.000Z",
                "create-order",
                503,
                "STORE_THROTTLED",
                9,
            ),
            line("2026-12-06T10:00:01.000Z", "create-order", 201, "", 2),
            line(
                "2026-12-06T10:00:01.500Z",
                "create-order",
                409,
                "CONCURRENT_REQUEST",
                9,
            ),
            line(
                "2026-12-06T10:00:02.000Z",
                "create-order",
                503,
                "STORE_THROTTLED",
                9,
            ),
            line("2026-12-06T10:00:02.000Z", "pay-order", 200, "", 0),
            line(
                "2026-12-06T10:00:03.000Z",
                "pay-order",
                409,
                "ORDER_ALREADY_PAID",
                0,
            ),
        ]
        .join("\n");
        let since = crate::clock::parse_rfc3339_ms("2026-12-06T10:00:01.000Z").unwrap();
        let seen = refusals_since(&log, since);
        let create = &seen["create-order"];
        assert_eq!(create.requests, 3);
        assert_eq!(create.store_retries, 20);
        assert_eq!(create.by_answer["503 STORE_THROTTLED"], 1);
        assert_eq!(create.by_answer["409 CONCURRENT_REQUEST"], 1);
        assert_eq!(seen["pay-order"].by_answer["409 ORDER_ALREADY_PAID"], 1);
        assert!(!seen["pay-order"].by_answer.contains_key("200"));

        let mut out = String::new();
        section(&seen, None, &mut out);
        assert!(
            out.contains(
                "| create-order | 3 | 1 x 409 CONCURRENT_REQUEST, 1 x 503 STORE_THROTTLED | 20 |"
            ),
            "{out}"
        );
        assert!(out.contains("--store direct"), "{out}");
    }
}
