//! Logs and metrics. Logs are JSON lines from `tracing-subscriber`, one `request` line per
//! request with its outcome. Metrics are CloudWatch Embedded Metric Format lines on stdout:
//! in Lambda they become metrics without any API call, locally `cargo xtask monitor` reads them.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const METRICS_NAMESPACE: &str = "OrderService";

/// The log filter from `RUST_LOG`: a level (`info`), or `target=level` directives separated by
/// commas (`info,aws_smithy_runtime=debug`). `info` when unset or unreadable. (`Targets`, not
/// `EnvFilter`: the same directives without span filters, and without the regex engine
/// `EnvFilter` links into every bootstrap.)
pub fn log_filter(text: Option<&str>) -> Targets {
    text.and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the JSON log subscriber once; `RUST_LOG` sets the level (default `info`).
pub fn init_tracing() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false),
        )
        .with(filter)
        .try_init();
}

/// What one request did, for its log line and its metrics.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    pub operation: &'a str,
    pub status: u16,
    pub code: Option<&'a str>,
    pub latency_ms: f64,
    pub store_retries: u32,
    pub store_error: bool,
    /// Answered from an Idempotency-Key's record: no new business event.
    pub replayed: bool,
}

/// The EMF document for one request: a latency sample per operation, an outcome counter,
/// a rejection count by code, and store error/retry counts.
pub fn emf_document(record: &RequestRecord<'_>, timestamp_ms: u128) -> Value {
    let mut metrics = vec![json!({"Name": "Latency", "Unit": "Milliseconds"})];
    let mut values = Map::new();
    values.insert("Operation".into(), json!(record.operation));
    values.insert("Latency".into(), json!(record.latency_ms));
    let success_metric = match (record.operation, record.status, record.replayed) {
        (_, _, true) => None,
        ("create-order", 201, _) => Some("OrdersCreated"),
        ("pay-order", 200, _) => Some("OrdersPaid"),
        ("cancel-order", 200, _) => Some("OrdersCancelled"),
        _ => None,
    };
    if let Some(name) = success_metric {
        metrics.push(json!({"Name": name, "Unit": "Count"}));
        values.insert(name.into(), json!(1));
    }
    if record.replayed {
        metrics.push(json!({"Name": "Replays", "Unit": "Count"}));
        values.insert("Replays".into(), json!(1));
    }
    if record.operation == "pay-order" && record.status >= 400 && !record.replayed {
        metrics.push(json!({"Name": "PaymentFailures", "Unit": "Count"}));
        values.insert("PaymentFailures".into(), json!(1));
    }
    metrics.push(json!({"Name": "StoreRetries", "Unit": "Count"}));
    values.insert("StoreRetries".into(), json!(record.store_retries));
    metrics.push(json!({"Name": "StoreErrors", "Unit": "Count"}));
    values.insert("StoreErrors".into(), json!(u32::from(record.store_error)));
    metrics.push(json!({"Name": "ServerErrors", "Unit": "Count"}));
    values.insert(
        "ServerErrors".into(),
        json!(u32::from(record.status >= 500)),
    );
    let mut directives = vec![json!({
        "Namespace": METRICS_NAMESPACE,
        // The empty set also publishes each metric without dimensions: the service-wide series
        // that the alarms and the dashboard's totals read.
        "Dimensions": [["Operation"], []],
        "Metrics": metrics,
    })];
    if let Some(code) = record.code.filter(|_| !record.replayed) {
        values.insert("Code".into(), json!(code));
        values.insert("Rejections".into(), json!(1));
        directives.push(json!({
            "Namespace": METRICS_NAMESPACE,
            "Dimensions": [["Code"]],
            "Metrics": [{"Name": "Rejections", "Unit": "Count"}],
        }));
    }
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms as u64, "CloudWatchMetrics": directives}),
    );
    document.extend(values);
    Value::Object(document)
}

/// Writes the request's EMF line to stdout.
pub fn emit_metrics(record: &RequestRecord<'_>) {
    let timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    let line = emf_document(record, timestamp_ms).to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_and_defaults_to_info() {
        let default = log_filter(None);
        assert!(default.would_enable("order_service", &Level::INFO));
        assert!(!default.would_enable("order_service", &Level::DEBUG));
        let tuned = log_filter(Some("warn,aws_smithy_runtime=debug"));
        assert!(!tuned.would_enable("order_service", &Level::INFO));
        assert!(tuned.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        // Garbage falls back to info rather than silencing the logs.
        assert!(log_filter(Some("=?!")).would_enable("x", &Level::INFO));
    }

    #[test]
    fn a_rejected_payment_counts_as_a_payment_failure_with_its_code() {
        let document = emf_document(
            &RequestRecord {
                operation: "pay-order",
                status: 409,
                code: Some("INSUFFICIENT_BALANCE"),
                latency_ms: 3.5,
                store_retries: 1,
                store_error: false,
                replayed: false,
            },
            1_700_000_000_000,
        );
        assert_eq!(document["PaymentFailures"], 1);
        assert_eq!(document["Rejections"], 1);
        assert_eq!(document["Code"], "INSUFFICIENT_BALANCE");
        assert_eq!(document["StoreRetries"], 1);
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "OrderService"
        );
        // Every metric a directive names has a value at the top level, as EMF requires.
        for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(document.get(name).is_some(), "{name} has no value");
            }
        }
    }

    #[test]
    fn a_created_order_counts_once() {
        let document = emf_document(
            &RequestRecord {
                operation: "create-order",
                status: 201,
                code: None,
                latency_ms: 1.0,
                store_retries: 0,
                store_error: false,
                replayed: false,
            },
            0,
        );
        assert_eq!(document["OrdersCreated"], 1);
        assert!(document.get("Rejections").is_none());
        assert!(document.get("PaymentFailures").is_none());
    }
}
