//! The request log line as a function writes it, from real API Gateway events (payload 2.0 and
//! REST's 1.0): the fields `cargo xtask monitor` parses, and the keys Powertools for AWS Lambda
//! users search by (`service`, `cold_start`, `function_request_id`, `correlation_id`,
//! `xray_trace_id`).
//!
//! One test in this file on purpose: `cold_start` is per process, and a test binary is one
//! process, so a second test calling `App::run` would race this one for the cold invocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_http::{Context, RequestExt};
use order_service::app::Operation;
use order_service::observability::json_layer;
use order_service::store::SeedPlan;
use order_service::ServiceError;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A saved event as the Lambda runtime hands it to a deployed function: its invocation context
/// names the request, the trace and the function.
fn invocation(event_file: &str, request_id: &str) -> lambda_http::Request {
    let path = format!("{}/../events/{event_file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let request = lambda_http::request::from_str(&text)
        .unwrap_or_else(|error| panic!("{path} does not parse: {error}"));
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.xray_trace_id =
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into());
    context.env_config = Arc::new(lambda_http::lambda_runtime::Config {
        function_name: "order-service-staging-GetOrderFunction-AbC123".into(),
        ..Default::default()
    });
    request.with_lambda_context(context)
}

#[test]
fn the_request_line_carries_the_monitor_fields_and_the_powertools_keys() {
    let (app, _store) = testkit::memory_app(&SeedPlan::default());
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(json_layer(move || writer.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // HTTP API (payload 2.0), then REST (payload 1.0): both name their API request id.
        for (event, request_id) in [
            ("get-order.json", "lambda-request-1"),
            ("v1/get-order.json", "lambda-request-2"),
        ] {
            let request = invocation(event, request_id);
            runtime.block_on(app.run(Operation::GetOrder, &request, async {
                Err(ServiceError::Refused(
                    order_service::domain::Refusal::OrderNotFound,
                ))
            }));
        }
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let requests: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{text}");

    let rest_request_id = {
        let path = format!("{}/../events/v1/get-order.json", env!("CARGO_MANIFEST_DIR"));
        let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        event["requestContext"]["requestId"]
            .as_str()
            .expect("the REST event names its API request id")
            .to_owned()
    };
    for (line, (lambda_request_id, api_request_id, cold)) in requests.iter().zip([
        ("lambda-request-1", "events-get-order", true),
        ("lambda-request-2", rest_request_id.as_str(), false),
    ]) {
        // What `cargo xtask monitor` and the drills read (lab/src/monitor/parse.rs).
        assert_eq!(line["operation"], "get-order", "{line}");
        assert_eq!(line["status"], 404, "{line}");
        assert_eq!(line["code"], "ORDER_NOT_FOUND", "{line}");
        assert!(line["latencyMs"].is_number(), "{line}");
        assert_eq!(line["storeRetries"], 0, "{line}");
        assert_eq!(line["userId"], "user-1", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["requestId"], lambda_request_id, "{line}");
        // Powertools' keys.
        assert_eq!(
            line["service"], "order-service-staging-GetOrderFunction-AbC123",
            "{line}"
        );
        assert_eq!(line["cold_start"], cold, "{line}");
        assert_eq!(line["function_request_id"], lambda_request_id, "{line}");
        assert_eq!(line["correlation_id"], api_request_id, "{line}");
        assert_eq!(
            line["xray_trace_id"],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "{line}"
        );
    }
}
