//! Request parsing with limits: path parameters into domain ids, the JSON body (size, content
//! type, depth and shape), the Idempotency-Key header and the list query.

use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

use crate::domain::{IdempotencyKey, OrderId, UserId};
use crate::error::ServiceError;
use crate::store::{Cursor, PageRequest};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn path_parameter(request: &Request, name: &str) -> Result<String, ServiceError> {
    request
        .path_parameters_ref()
        .and_then(|parameters| parameters.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ServiceError::Validation(format!("the path parameter {name} is missing")))
}

pub fn path_user_id(request: &Request) -> Result<UserId, ServiceError> {
    Ok(UserId::parse(&path_parameter(request, "userId")?)?)
}

pub fn path_order_id(request: &Request) -> Result<OrderId, ServiceError> {
    Ok(OrderId::parse(&path_parameter(request, "orderId")?)?)
}

fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        #[allow(unreachable_patterns)]
        _ => &[],
    }
}

/// Refuses bodies over the limit (413), for routes that take no body.
pub fn reject_oversized_body(request: &Request) -> Result<(), ServiceError> {
    if body_bytes(request).len() > MAX_BODY_BYTES {
        return Err(ServiceError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

fn is_json_content_type(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let media_type = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Parses the JSON body: 413 over the size limit, 415 unless the content type is JSON, 400 for
/// anything serde rejects (malformed JSON, wrong types, unknown fields, numbers out of range,
/// nesting deeper than serde_json's recursion limit).
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ServiceError> {
    reject_oversized_body(request)?;
    let bytes = body_bytes(request);
    if bytes.is_empty() {
        return Err(ServiceError::Validation(
            "a JSON request body is required".to_owned(),
        ));
    }
    if !is_json_content_type(request) {
        return Err(ServiceError::UnsupportedMediaType);
    }
    // A body is an object: serde's derived structs would also take the array form.
    serde_json::from_slice::<crate::domain::Object<T>>(bytes)
        .map(|crate::domain::Object(value)| value)
        .map_err(|error| {
            ServiceError::Validation(format!("the request body is not valid: {error}"))
        })
}

/// The optional `Idempotency-Key` header.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ServiceError> {
    match request.headers().get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ServiceError::Validation(
                    "Idempotency-Key may contain only printable ASCII characters".to_owned(),
                )
            })?;
            Ok(Some(IdempotencyKey::parse(text)?))
        }
    }
}

/// The page the list route's `limit` (1..=100, default 20) and `cursor` ask for.
pub fn list_query(request: &Request) -> Result<PageRequest, ServiceError> {
    let query = request.query_string_parameters_ref();
    let limit = match query.and_then(|query| query.first("limit")) {
        None => PageRequest::DEFAULT_LIMIT,
        // Not a number, or past u16: as invalid as 0, which `PageRequest::new` refuses.
        Some(text) => text.parse::<u16>().unwrap_or(0),
    };
    let cursor = match query.and_then(|query| query.first("cursor")) {
        None => None,
        Some(text) => Some(Cursor::decode(text)?),
    };
    Ok(PageRequest::new(limit, cursor)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreateOrderRequest, NewOrder};
    use lambda_http::http::Request as HttpRequest;
    use proptest::prelude::*;

    fn request_with(content_type: Option<&str>, body: Vec<u8>) -> Request {
        let mut builder = HttpRequest::builder().method("POST").uri("/users/u/orders");
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        builder.body(Body::Binary(body)).unwrap()
    }

    /// The whole create-order parse: body -> request -> validated order.
    fn parse_create(request: &Request) -> Result<NewOrder, ServiceError> {
        let body: CreateOrderRequest = json_body(request)?;
        Ok(NewOrder::try_from(body)?)
    }

    fn is_client_error(error: &ServiceError) -> bool {
        matches!(
            error,
            ServiceError::Validation(_)
                | ServiceError::PayloadTooLarge { .. }
                | ServiceError::UnsupportedMediaType
        )
    }

    #[test]
    fn limits_come_before_parsing() {
        let big = request_with(Some("application/json"), vec![b' '; MAX_BODY_BYTES + 1]);
        assert!(matches!(
            parse_create(&big),
            Err(ServiceError::PayloadTooLarge { .. })
        ));
        let text = request_with(Some("text/plain"), b"{}".to_vec());
        assert!(matches!(
            parse_create(&text),
            Err(ServiceError::UnsupportedMediaType)
        ));
        let charset = request_with(
            Some("application/json; charset=utf-8"),
            br#"{"items":[{"productId":"p","quantity":1}]}"#.to_vec(),
        );
        assert!(parse_create(&charset).is_ok());
        let deep = request_with(
            Some("application/json"),
            format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(),
        );
        assert!(matches!(
            parse_create(&deep),
            Err(ServiceError::Validation(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_are_client_errors(body in proptest::collection::vec(any::<u8>(), 0..2_048)) {
            let request = request_with(Some("application/json"), body);
            if let Err(error) = parse_create(&request) {
                prop_assert!(is_client_error(&error), "{error:?}");
            }
        }

        #[test]
        fn arbitrary_json_shaped_text_is_accepted_or_a_400(
            product in ".{0,80}",
            quantity in prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|n| n.to_string()),
                Just("1e400".to_owned()),
                Just("99999999999999999999999".to_owned()),
                Just("\"7\"".to_owned()),
                Just("null".to_owned()),
            ],
        ) {
            let body = format!(
                r#"{{"items":[{{"productId":{},"quantity":{quantity}}}]}}"#,
                serde_json::Value::String(product)
            );
            let request = request_with(Some("application/json"), body.into_bytes());
            match parse_create(&request) {
                Ok(order) => {
                    let line = &order.lines()[0];
                    prop_assert!((1..=100).contains(&line.quantity.get()));
                    prop_assert!(line.product_id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                }
                Err(error) => prop_assert!(matches!(error, ServiceError::Validation(_)), "{error:?}"),
            }
        }

        #[test]
        fn arbitrary_path_ids_and_keys_never_panic(text in "\\PC{0,300}") {
            let _ = crate::domain::UserId::parse(&text);
            let _ = crate::domain::OrderId::parse(&text);
            let _ = crate::domain::IdempotencyKey::parse(&text);
        }
    }
}
