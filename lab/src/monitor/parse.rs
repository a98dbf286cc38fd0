//! Log lines: the functions' JSON request lines, failures, EMF lines and crashes, parsed into records.

use super::*;

/// One `message = "request"` line of a function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestRecord {
    pub at_ms: i64,
    pub operation: String,
    pub status: u16,
    pub code: String,
    pub latency_ms: f64,
    pub store_retries: u32,
    pub fault: bool,
    pub user_id: String,
    pub order_id: String,
}

/// What one log line tells the detector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LogEvent {
    Request(RequestRecord),
    /// A `request failed` line (every answer >= 500) with its error chain.
    Failure {
        at_ms: i64,
        operation: String,
        code: String,
        throttled: bool,
    },
    /// A failed invocation that has no request line: a panic, a runtime exit, an instance
    /// killed mid-request (AWS/Lambda `Errors`).
    Crash {
        at_ms: i64,
        function: String,
    },
    /// A request `dynamodb-faithful` refused, as DynamoDB would (its `TransactionConflict`
    /// and `ThrottledRequests` metrics).
    Store {
        at_ms: i64,
        refused: StoreRefusal,
    },
    /// An invocation the local gateway throttled because the function's queue was full
    /// (AWS/Lambda `Throttles`).
    Throttled {
        at_ms: i64,
        function: String,
    },
}

/// What `dynamodb-faithful` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreRefusal {
    Conflict,
    Throttle,
}

/// The local gateway's line for an invocation it throttled (`warn!` in
/// ops/upstream/cargo-lambda-watch-1.9.2.patch).
pub(crate) const GATEWAY_THROTTLE: &str = "invocation queue full, throttling";

impl LogEvent {
    pub(crate) fn at_ms(&self) -> i64 {
        match self {
            LogEvent::Request(record) => record.at_ms,
            LogEvent::Failure { at_ms, .. }
            | LogEvent::Crash { at_ms, .. }
            | LogEvent::Store { at_ms, .. }
            | LogEvent::Throttled { at_ms, .. } => *at_ms,
        }
    }
}

/// The message of the platform line a drill writes when an instance dies (the local stand-in
/// for Lambda's `Runtime exited with error: signal: killed`).
pub(crate) const CRASH_MESSAGE: &str = "instance crashed";

/// Parses one line of the function log. EMF lines (`_aws`) and anything unknown are `None`;
/// lines without a timestamp (cargo lambda's own output, panics) are stamped `fallback_ms`.
pub(crate) fn parse_line(line: &str, fallback_ms: i64) -> Option<LogEvent> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).ok()?;
        if value.get("_aws").is_some() {
            return None;
        }
        let at_ms = value
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339_ms)
            .unwrap_or(fallback_ms);
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        return match value.get("message").and_then(Value::as_str)? {
            "request" => Some(LogEvent::Request(RequestRecord {
                at_ms,
                operation: text("operation"),
                status: value.get("status").and_then(Value::as_u64).unwrap_or(0) as u16,
                code: text("code"),
                latency_ms: value
                    .get("latencyMs")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                store_retries: value
                    .get("storeRetries")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                fault: value.get("fault").and_then(Value::as_bool).unwrap_or(false),
                user_id: text("userId"),
                order_id: text("orderId"),
            })),
            "request failed" => {
                let error = text("error");
                Some(LogEvent::Failure {
                    at_ms,
                    operation: text("operation"),
                    code: text("code"),
                    throttled: is_throttling_text(&error),
                })
            }
            CRASH_MESSAGE => Some(LogEvent::Crash {
                at_ms,
                function: text("function"),
            }),
            dynamodb_faithful::EVENT_MESSAGE => Some(LogEvent::Store {
                at_ms,
                refused: match text("event").as_str() {
                    "conflict" => StoreRefusal::Conflict,
                    "throttle" => StoreRefusal::Throttle,
                    _ => return None,
                },
            }),
            _ => None,
        };
    }
    // The gateway's lines carry no time: they are stamped when read.
    if line.contains(GATEWAY_THROTTLE) {
        let function = line
            .split("function=")
            .nth(1)
            .map(|rest| rest.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        return Some(LogEvent::Throttled {
            at_ms: fallback_ms,
            function,
        });
    }
    // Plain text: cargo lambda's output, or a panic message on stderr.
    if line.contains("panicked at") {
        return Some(LogEvent::Crash {
            at_ms: fallback_ms,
            function: String::new(),
        });
    }
    if line.contains("ERROR") && line.contains("command killed") {
        return Some(LogEvent::Crash {
            at_ms: fallback_ms,
            function: String::new(),
        });
    }
    None
}

fn is_throttling_text(error: &str) -> bool {
    [
        "Throttl",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    ]
    .iter()
    .any(|needle| error.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_failure_emf_and_crash_lines() {
        // GIVEN the lines a function and the drill platform write
        let request = r#"{"timestamp":"2026-11-25T21:48:59.043714Z","level":"INFO","message":"request","requestId":"r","operation":"create-order","userId":"user-5","orderId":"","status":503,"code":"STORE_UNAVAILABLE","latencyMs":3001.5,"storeRetries":2,"fault":false}"#;
        let emf = r#"{"Latency":1.0,"_aws":{"Timestamp":1}}"#;
        let failed = r#"{"timestamp":"2026-11-25T21:48:59.1Z","level":"ERROR","message":"request failed","operation":"pay-order","code":"STORE_UNAVAILABLE","error":"DynamoDB GetItem failed: ThrottlingException: slow down"}"#;
        let crash = r#"{"timestamp":"2026-11-25T21:49:00Z","level":"ERROR","message":"instance crashed","function":"pay-order"}"#;
        // WHEN they are parsed
        // THEN each becomes the right event, EMF and cargo lambda INFO lines are skipped
        match parse_line(request, 0) {
            Some(LogEvent::Request(record)) => {
                assert_eq!(record.status, 503);
                assert_eq!(record.code, "STORE_UNAVAILABLE");
                assert_eq!(record.store_retries, 2);
                assert_eq!(record.operation, "create-order");
                assert_eq!(format_ms(record.at_ms), "2026-11-25T21:48:59.043Z");
            }
            other => panic!("not a request: {other:?}"),
        }
        assert_eq!(parse_line(emf, 0), None);
        assert!(matches!(
            parse_line(failed, 0),
            Some(LogEvent::Failure {
                throttled: true,
                ..
            })
        ));
        assert!(matches!(parse_line(crash, 0), Some(LogEvent::Crash { .. })));
        assert!(matches!(
            parse_line("thread 'main' panicked at src/lib.rs:1:1:", 42),
            Some(LogEvent::Crash { at_ms: 42, .. })
        ));
        assert_eq!(
            parse_line(" INFO spawning function instance function=\"get-order\"", 0),
            None
        );
        assert_eq!(parse_line("not json {", 0), None);
    }

    #[test]
    fn parses_the_stores_refusals_and_the_gateways_throttles() {
        let conflict = r#"{"timestamp":"2026-12-06T10:00:00.000Z","message":"dynamodb-faithful","event":"conflict","operation":"TransactWriteItems","partition":"orders/PRODUCT#p"}"#;
        assert_eq!(
            parse_line(conflict, 0),
            Some(LogEvent::Store {
                at_ms: parse_rfc3339_ms("2026-12-06T10:00:00.000Z").unwrap(),
                refused: StoreRefusal::Conflict
            })
        );
        let throttle = conflict.replace("conflict", "throttle");
        assert!(matches!(
            parse_line(&throttle, 0),
            Some(LogEvent::Store {
                refused: StoreRefusal::Throttle,
                ..
            })
        ));
        assert_eq!(
            parse_line(
                r#" WARN invocation queue full, throttling function="create-order""#,
                7
            ),
            Some(LogEvent::Throttled {
                at_ms: 7,
                function: "create-order".to_owned()
            })
        );
    }
}
