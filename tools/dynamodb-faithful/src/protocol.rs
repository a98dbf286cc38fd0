//! The answers the proxy gives itself, shaped as production DynamoDB shapes them (JSON 1.0
//! protocol: HTTP 400, `x-amzn-RequestId`, `x-amz-crc32`, a body whose `__type` names the
//! exception), so that the SDKs' error parsers and retry classifiers treat them as they treat
//! DynamoDB's: `ThrottlingException` and `TransactionInProgressException` are retried by the
//! SDK, `TransactionConflictException` and `TransactionCanceledException` are not.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TYPE_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// DynamoDB's message when a partition's throughput is exceeded (on-demand tables).
pub(crate) const THROTTLED_MESSAGE: &str =
    "Throughput exceeds the current capacity of your table or \
     index. DynamoDB is automatically scaling your table or index so please try again shortly. \
     If exceptions persist, check if you have a hot key: \
     https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";
pub(crate) const CONFLICT_MESSAGE: &str = "Transaction is ongoing for the item";

/// Why one item of a cancelled transaction failed, in `CancellationReasons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    None,
    TransactionConflict,
    ThrottlingError,
}

impl Reason {
    fn code(self) -> &'static str {
        match self {
            Reason::None => "None",
            Reason::TransactionConflict => "TransactionConflict",
            Reason::ThrottlingError => "ThrottlingError",
        }
    }

    fn value(self) -> Value {
        match self {
            Reason::None => json!({"Code": "None"}),
            Reason::TransactionConflict => {
                json!({"Code": self.code(), "Message": CONFLICT_MESSAGE})
            }
            Reason::ThrottlingError => json!({"Code": self.code(), "Message": THROTTLED_MESSAGE}),
        }
    }
}

/// A 400 answer with an exception of `type_name` and the given body fields.
pub(crate) fn exception(
    type_name: &str,
    mut fields: serde_json::Map<String, Value>,
) -> Response<Full<Bytes>> {
    fields.insert(
        "__type".to_owned(),
        Value::String(format!("{TYPE_PREFIX}{type_name}")),
    );
    respond(StatusCode::BAD_REQUEST, &Value::Object(fields))
}

fn message(key: &str, text: &str) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert(key.to_owned(), Value::String(text.to_owned()));
    fields
}

/// A single-item write on an item an ongoing transaction holds.
pub(crate) fn transaction_conflict() -> Response<Full<Bytes>> {
    exception(
        "TransactionConflictException",
        message("message", CONFLICT_MESSAGE),
    )
}

/// A transaction resent with a `ClientRequestToken` whose first request is still running.
pub(crate) fn transaction_in_progress() -> Response<Full<Bytes>> {
    exception(
        "TransactionInProgressException",
        message("message", "Transaction is in progress"),
    )
}

/// A transaction cancelled before it ran, with one reason per item in request order.
pub(crate) fn transaction_cancelled(reasons: &[Reason]) -> Response<Full<Bytes>> {
    let codes: Vec<&str> = reasons.iter().map(|reason| reason.code()).collect();
    let mut fields = message(
        "Message",
        &format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
    );
    fields.insert(
        "CancellationReasons".to_owned(),
        Value::Array(reasons.iter().map(|reason| reason.value()).collect()),
    );
    exception("TransactionCanceledException", fields)
}

/// A request refused because a partition's throughput is exceeded. `reason` is e.g.
/// `TableWriteKeyRangeThroughputExceeded`; `resource` the table's ARN.
pub(crate) fn throttled(reason: &str, resource: &str) -> Response<Full<Bytes>> {
    let mut fields = message("message", THROTTLED_MESSAGE);
    fields.insert(
        "ThrottlingReasons".to_owned(),
        json!([{"reason": reason, "resource": resource}]),
    );
    exception("ThrottlingException", fields)
}

/// A JSON answer with DynamoDB's headers.
pub(crate) fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let crc = crc32fast::hash(&bytes);
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert("x-amz-crc32", HeaderValue::from(crc));
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// A request id in DynamoDB's style (52 upper-case letters and digits).
fn request_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..52)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response<Full<Bytes>>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_cancellation_names_each_items_reason_in_order() {
        let response =
            transaction_cancelled(&[Reason::None, Reason::TransactionConflict, Reason::None]);
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
        let body = body_of(response).await;
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
        );
        assert_eq!(body["CancellationReasons"][0]["Code"], "None");
        assert_eq!(
            body["CancellationReasons"][1]["Code"],
            "TransactionConflict"
        );
        assert!(body["Message"]
            .as_str()
            .unwrap()
            .ends_with("[None, TransactionConflict, None]"));
    }

    #[tokio::test]
    async fn a_throttle_carries_its_reason_and_a_checksum() {
        let response = throttled(
            "TableWriteKeyRangeThroughputExceeded",
            "arn:aws:dynamodb:ddblocal:000000000000:table/orders",
        );
        let crc: u32 = response.headers()["x-amz-crc32"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(crc, crc32fast::hash(&bytes));
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body["ThrottlingReasons"][0]["reason"],
            "TableWriteKeyRangeThroughputExceeded"
        );
    }
}
