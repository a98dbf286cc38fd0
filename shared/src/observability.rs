//! Logs and metrics. Logs are JSON lines from `tracing-subscriber`, one `request` line per
//! request with its outcome; every line logged during an invocation carries the runtime's
//! invocation span (`span.requestId`, `span.xrayTraceId`), so a log line leads to its X-Ray
//! trace. The request line also carries the keys Powertools for AWS Lambda users search by
//! (`service`, `cold_start`, `function_request_id`, `correlation_id` = the API Gateway request
//! id, `xray_trace_id`; see `Invocation`). Metrics are CloudWatch Embedded Metric Format lines
//! on stdout: in Lambda they become metrics without any API call, locally `cargo xtask monitor`
//! reads them.
//!
//! Every metric carries a `Stack` dimension (`STACK_NAME`, "local" when unset) so that two
//! stages in one account never feed each other's alarms, and server errors and latency are
//! also published per function `Version` (`AWS_LAMBDA_FUNCTION_VERSION`), so a canary's new
//! version can be told from the old one on a dashboard.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{json, Map, Value};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::operation::Operation;

pub const METRICS_NAMESPACE: &str = "OrderService";

/// The log filter from `RUST_LOG`: a level (`info`), or `target=level` directives separated by
/// commas (`info,aws_smithy_runtime=debug`). `info` when unset or unreadable. (`Targets`, not
/// `EnvFilter`: the same directives without span filters, and without the regex engine
/// `EnvFilter` links into every bootstrap.)
pub fn log_filter(text: Option<&str>) -> Targets {
    text.and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// The JSON log layer: one object per line, the event's fields at the top level and the
/// current span (the Lambda runtime's per-invocation span, with `requestId` and `xrayTraceId`)
/// under `span`. Public so that tests can read the lines exactly as a function writes them.
pub fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
}

/// Installs the JSON log subscriber once; `RUST_LOG` sets the level (default `info`).
pub fn init_tracing() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::registry()
        .with(json_layer(std::io::stdout))
        .with(filter)
        .try_init();
}

/// Whether the process has served an invocation yet: Lambda starts a new execution environment
/// (a cold start) for the first invocation it sends to a process, so exactly one invocation per
/// process is cold, whichever of `AWS_LAMBDA_MAX_CONCURRENCY` workers takes it.
#[derive(Debug)]
pub struct ColdStart(AtomicBool);

impl ColdStart {
    pub const fn new() -> Self {
        Self(AtomicBool::new(true))
    }

    /// True for the first call only.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Default for ColdStart {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's own cold-start flag.
static PROCESS_COLD_START: ColdStart = ColdStart::new();

/// Who served an invocation, under the keys Powertools for AWS Lambda logs carry, so a team's
/// saved Logs Insights queries and habits work on these logs too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `POWERTOOLS_SERVICE_NAME` when set (Powertools' own setting, to group functions under
    /// one name); otherwise the function's name (`AWS_LAMBDA_FUNCTION_NAME`: the deployed
    /// function's, or the binary's under `cargo lambda watch`).
    pub service: String,
    /// True only for the process's first invocation.
    pub cold_start: bool,
    /// The Lambda request id (also `requestId`, and `span.requestId` on every line).
    pub function_request_id: String,
    /// The API Gateway request id from the request context (HTTP API and REST alike): the
    /// `requestId` of the API's access log line, so the two logs join on it.
    pub correlation_id: Option<String>,
    /// The X-Ray trace id of the invocation (absent locally).
    pub xray_trace_id: Option<String>,
}

impl Invocation {
    /// The invocation `request` belongs to. The first call in a process is its cold start.
    pub fn of(request: &Request) -> Self {
        Self::with(
            request,
            &PROCESS_COLD_START,
            std::env::var("POWERTOOLS_SERVICE_NAME").ok(),
        )
    }

    /// As `of`, with the cold-start flag and the service override given (for tests).
    pub fn with(request: &Request, cold_start: &ColdStart, service: Option<String>) -> Self {
        let context = request.lambda_context_ref();
        let function_name = context
            .map(|context| context.env_config.function_name.clone())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
            .unwrap_or_default();
        Self {
            service: service
                .filter(|name| !name.trim().is_empty())
                .unwrap_or(function_name),
            cold_start: cold_start.take(),
            function_request_id: context
                .map(|context| context.request_id.clone())
                .unwrap_or_default(),
            correlation_id: request
                .request_context_ref()
                .and_then(api_request_id)
                .map(str::to_owned),
            xray_trace_id: context.and_then(|context| context.xray_trace_id.clone()),
        }
    }
}

/// The API Gateway request id of an HTTP API (payload 2.0) or REST API (payload 1.0) event.
fn api_request_id(context: &RequestContext) -> Option<&str> {
    match context {
        RequestContext::ApiGatewayV2(context) => context.request_id.as_deref(),
        RequestContext::ApiGatewayV1(context) => context.request_id.as_deref(),
        // Other event sources (ALB, WebSocket) are not routed to these functions.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Where a metric comes from: its stack (stage) and the function version that served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSource {
    pub stack: String,
    pub version: String,
}

impl MetricSource {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str, default: &str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            stack: read("STACK_NAME", "local"),
            version: read("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        }
    }

    /// The process's source, read from the environment once.
    pub fn current() -> &'static MetricSource {
        static SOURCE: OnceLock<MetricSource> = OnceLock::new();
        SOURCE.get_or_init(|| Self::from_lookup(|name| std::env::var(name).ok()))
    }
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
    /// The store throttled the items the request needed (a hot item): a capacity signal with
    /// its own metric, not a server error of this version (a canary must not be rolled back
    /// for a flash sale's hot product).
    pub throttled: bool,
    /// Answered from an Idempotency-Key's record: no new business event.
    pub replayed: bool,
}

/// The EMF document for one request: a latency sample per operation, an outcome counter,
/// a rejection count by code, and store error/retry counts; server errors and latency again
/// per function version.
pub fn emf_document(
    record: &RequestRecord<'_>,
    source: &MetricSource,
    timestamp_ms: u128,
) -> Value {
    let mut metrics = vec![json!({"Name": "Latency", "Unit": "Milliseconds"})];
    let mut values = Map::new();
    values.insert("Stack".into(), json!(source.stack));
    values.insert("Version".into(), json!(source.version));
    values.insert("Operation".into(), json!(record.operation));
    values.insert("Latency".into(), json!(record.latency_ms));
    // A business event: a new answer (not a replay) of one of these operations' success.
    let success_metric = [
        (Operation::CreateOrder, 201, "OrdersCreated"),
        (Operation::PayOrder, 200, "OrdersPaid"),
        (Operation::CancelOrder, 200, "OrdersCancelled"),
    ]
    .into_iter()
    .find(|(operation, status, _)| {
        !record.replayed && record.operation == operation.as_str() && record.status == *status
    })
    .map(|(_, _, name)| name);
    if let Some(name) = success_metric {
        metrics.push(json!({"Name": name, "Unit": "Count"}));
        values.insert(name.into(), json!(1));
    }
    if record.replayed {
        metrics.push(json!({"Name": "Replays", "Unit": "Count"}));
        values.insert("Replays".into(), json!(1));
    }
    if record.operation == Operation::PayOrder.as_str() && record.status >= 400 && !record.replayed
    {
        metrics.push(json!({"Name": "PaymentFailures", "Unit": "Count"}));
        values.insert("PaymentFailures".into(), json!(1));
    }
    metrics.push(json!({"Name": "StoreRetries", "Unit": "Count"}));
    values.insert("StoreRetries".into(), json!(record.store_retries));
    metrics.push(json!({"Name": "StoreErrors", "Unit": "Count"}));
    values.insert("StoreErrors".into(), json!(u32::from(record.store_error)));
    metrics.push(json!({"Name": "StoreThrottles", "Unit": "Count"}));
    values.insert("StoreThrottles".into(), json!(u32::from(record.throttled)));
    metrics.push(json!({"Name": "ServerErrors", "Unit": "Count"}));
    values.insert(
        "ServerErrors".into(),
        json!(u32::from(record.status >= 500 && !record.throttled)),
    );
    let mut directives = vec![
        json!({
            "Namespace": METRICS_NAMESPACE,
            // [Stack] alone is the stack-wide series that the alarms and the dashboard's
            // totals read; [Stack, Operation] the per-function one the canary alarms read.
            "Dimensions": [["Stack", "Operation"], ["Stack"]],
            "Metrics": metrics,
        }),
        json!({
            "Namespace": METRICS_NAMESPACE,
            "Dimensions": [["Stack", "Operation", "Version"]],
            "Metrics": [
                {"Name": "ServerErrors", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"},
            ],
        }),
    ];
    if let Some(code) = record.code.filter(|_| !record.replayed) {
        values.insert("Code".into(), json!(code));
        values.insert("Rejections".into(), json!(1));
        directives.push(json!({
            "Namespace": METRICS_NAMESPACE,
            "Dimensions": [["Stack", "Code"]],
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
    let line = emf_document(record, MetricSource::current(), timestamp_ms).to_string();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn staging() -> MetricSource {
        MetricSource {
            stack: "orders-staging".into(),
            version: "7".into(),
        }
    }

    #[test]
    fn a_throttled_hot_item_is_counted_apart_from_server_errors() {
        let record = |status, code, throttled| RequestRecord {
            operation: "create-order",
            status,
            code: Some(code),
            latency_ms: 2.0,
            store_retries: 9,
            store_error: false,
            throttled,
            replayed: false,
        };
        let throttled = emf_document(&record(503, "STORE_THROTTLED", true), &staging(), 0);
        assert_eq!(throttled["StoreThrottles"], 1);
        assert_eq!(throttled["ServerErrors"], 0);
        assert_eq!(throttled["Code"], "STORE_THROTTLED");
        let unavailable = emf_document(&record(503, "STORE_UNAVAILABLE", false), &staging(), 0);
        assert_eq!(unavailable["StoreThrottles"], 0);
        assert_eq!(unavailable["ServerErrors"], 1);
    }

    #[test]
    fn every_directive_names_the_stack_and_server_errors_name_the_version() {
        let document = emf_document(
            &RequestRecord {
                operation: "pay-order",
                status: 500,
                code: Some("INTERNAL"),
                latency_ms: 2.0,
                store_retries: 0,
                store_error: false,
                throttled: false,
                replayed: false,
            },
            &staging(),
            0,
        );
        assert_eq!(document["Stack"], "orders-staging");
        assert_eq!(document["Version"], "7");
        assert_eq!(document["ServerErrors"], 1);
        let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        for directive in directives {
            for set in directive["Dimensions"].as_array().unwrap() {
                let set: Vec<&str> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|name| name.as_str().unwrap())
                    .collect();
                assert_eq!(set.first(), Some(&"Stack"), "{set:?} lacks the stack");
                for name in set {
                    assert!(
                        document.get(name).is_some(),
                        "dimension {name} has no value"
                    );
                }
            }
        }
        let versioned = directives
            .iter()
            .find(|directive| directive["Dimensions"][0].as_array().unwrap().len() == 3)
            .expect("a per-version directive");
        let names: Vec<&str> = versioned["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|metric| metric["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ServerErrors", "Latency"]);
    }

    #[test]
    fn the_source_defaults_to_local_and_latest() {
        let source = MetricSource::from_lookup(|_| None);
        assert_eq!(source.stack, "local");
        assert_eq!(source.version, "$LATEST");
        let deployed = MetricSource::from_lookup(|name| match name {
            "STACK_NAME" => Some("orders-prod".into()),
            "AWS_LAMBDA_FUNCTION_VERSION" => Some("12".into()),
            _ => None,
        });
        assert_eq!(deployed.stack, "orders-prod");
        assert_eq!(deployed.version, "12");
    }

    #[test]
    fn every_line_of_an_invocation_carries_its_trace_id() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(json_layer(move || writer.clone()));
        let mut context = lambda_http::lambda_runtime::Context::default();
        context.request_id = "req-1".into();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        tracing::subscriber::with_default(subscriber, || {
            let span = lambda_http::lambda_runtime::layers::trace::request_span(&context);
            let _entered = span.enter();
            tracing::warn!(attempt = 2, "store retry");
            tracing::info!(status = 200, "request");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(
                line["span"]["xrayTraceId"],
                "Root=1-5759e988-bd862e3fe1be46a994272793"
            );
            assert_eq!(line["span"]["requestId"], "req-1");
        }
        assert_eq!(lines[0]["attempt"], 2);
    }

    #[test]
    fn only_the_first_invocation_is_cold_and_powertools_service_name_wins() {
        let cold_start = ColdStart::new();
        let request = lambda_http::request::from_str(include_str!("../../events/get-order.json"))
            .unwrap()
            .with_lambda_context(lambda_http::Context::default());
        let first = Invocation::with(&request, &cold_start, Some("orders".into()));
        assert!(first.cold_start);
        assert_eq!(first.service, "orders");
        assert_eq!(first.correlation_id.as_deref(), Some("events-get-order"));
        assert_eq!(
            first.xray_trace_id, None,
            "no trace locally: the key is left out"
        );
        let second = Invocation::with(&request, &cold_start, Some("  ".into()));
        assert!(!second.cold_start);
        assert_eq!(
            second.service,
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            "a blank override falls back to the function's name"
        );
    }

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
                throttled: false,
                replayed: false,
            },
            &staging(),
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
                throttled: false,
                replayed: false,
            },
            &staging(),
            0,
        );
        assert_eq!(document["OrdersCreated"], 1);
        assert!(document.get("Rejections").is_none());
        assert!(document.get("PaymentFailures").is_none());
    }

    #[test]
    fn each_success_counts_under_its_own_name_and_a_replay_counts_none() {
        let record = |operation: Operation, status, replayed| RequestRecord {
            operation: operation.as_str(),
            status,
            code: None,
            latency_ms: 1.0,
            store_retries: 0,
            store_error: false,
            throttled: false,
            replayed,
        };
        let metrics = ["OrdersCreated", "OrdersPaid", "OrdersCancelled"];
        let counted = |record: &RequestRecord<'_>| -> Vec<&str> {
            let document = emf_document(record, &staging(), 0);
            metrics
                .into_iter()
                .filter(|name| document.get(*name).is_some())
                .collect()
        };
        assert_eq!(
            counted(&record(Operation::PayOrder, 200, false)),
            ["OrdersPaid"]
        );
        assert_eq!(
            counted(&record(Operation::CancelOrder, 200, false)),
            ["OrdersCancelled"]
        );
        assert!(counted(&record(Operation::CreateOrder, 201, true)).is_empty());
        assert!(counted(&record(Operation::CreateOrder, 200, false)).is_empty());
        assert!(counted(&record(Operation::RefundOrder, 200, false)).is_empty());
    }
}
