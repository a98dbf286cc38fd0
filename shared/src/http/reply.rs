//! Successful responses and the answers of Idempotency-Keys: JSON bodies with the headers a
//! client needs (`Location` on create, `Idempotent-Replayed` when a retry was answered from its
//! key's record).

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use super::problem::problem_response;
use crate::domain::{Answer, Order};
use crate::error::ServiceError;

#[derive(Debug)]
pub struct Reply {
    response: Response<Body>,
    /// The problem code of a replayed refusal (for the request's log line and metrics).
    code: Option<&'static str>,
    replayed: bool,
}

/// Where an order is addressed, as `Location` names it.
pub fn order_location(order: &Order) -> String {
    format!("/users/{}/orders/{}", order.user_id, order.order_id)
}

impl Reply {
    pub fn ok<T: Serialize>(value: &T) -> Result<Self, ServiceError> {
        Self::json(StatusCode::OK, value)
    }

    pub fn created<T: Serialize>(location: String, value: &T) -> Result<Self, ServiceError> {
        let mut reply = Self::json(StatusCode::CREATED, value)?;
        if let Ok(location) = HeaderValue::from_str(&location) {
            reply
                .response
                .headers_mut()
                .insert(header::LOCATION, location);
        }
        Ok(reply)
    }

    /// Renders a key's answer: 201 with `Location` for a created order, 200 for a changed one,
    /// the refusal's problem response for a refusal. The same answer always renders the same
    /// status, body and `Location`.
    pub fn answer(answer: &Answer) -> Result<Self, ServiceError> {
        match answer {
            Answer::Created(order) => Self::created(order_location(order), order),
            Answer::Updated(order) => Self::ok(order),
            Answer::Refused(refusal) => {
                let error = ServiceError::from(refusal.clone());
                Ok(Self {
                    response: problem_response(&error),
                    code: Some(error.code()),
                    replayed: false,
                })
            }
        }
    }

    fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self, ServiceError> {
        let body = serde_json::to_vec(value)
            .map_err(|error| ServiceError::internal(format!("cannot render a reply: {error}")))?;
        let mut response = Response::new(Body::Binary(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(Self {
            response,
            code: None,
            replayed: false,
        })
    }

    /// Marks the reply as a replay of an earlier request with the same Idempotency-Key.
    pub fn replayed(mut self, replayed: bool) -> Self {
        self.replayed = replayed;
        if replayed {
            self.response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        } else {
            self.response.headers_mut().remove("idempotent-replayed");
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub fn code(&self) -> Option<&'static str> {
        self.code
    }

    pub fn is_replayed(&self) -> bool {
        self.replayed
    }

    pub fn into_response(self) -> Response<Body> {
        self.response
    }

    /// The response for a request that addressed the API at `request_path`: a `Location` is
    /// put under the same prefix (the stage, `/v1`, or a custom domain's base path), so that
    /// following it reaches the order wherever the API is mounted.
    pub fn into_response_for(self, request_path: &str) -> Response<Body> {
        let mut response = self.response;
        let prefix = api_prefix(request_path);
        if !prefix.is_empty() {
            let located = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| HeaderValue::from_str(&format!("{prefix}{location}")).ok());
            if let Some(located) = located {
                response.headers_mut().insert(header::LOCATION, located);
            }
        }
        response
    }
}

/// What precedes the service's own path (`/users/...`) in the path a request arrived on:
/// lambda_http puts API Gateway's stage there (`/v1/users/...`), a gateway without stages
/// leaves it empty.
fn api_prefix(request_path: &str) -> &str {
    match request_path.find("/users/") {
        Some(at) if at > 0 => request_path[..at].trim_end_matches('/'),
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Money, OrderId, OrderStatus, Refusal, Timestamp, UserId};

    fn order() -> Order {
        Order {
            order_id: OrderId::random(),
            user_id: UserId::parse("user-1").unwrap(),
            status: OrderStatus::Created,
            items: vec![],
            total_amount: Money::ZERO,
            created_at: Timestamp::parse("2026-11-29T00:00:00Z").unwrap(),
            paid_at: None,
            cancelled_at: None,
            refunded_items: vec![],
            refunded_amount: Money::ZERO,
            refunded_at: None,
        }
    }

    #[test]
    fn an_answer_renders_the_same_response_every_time() {
        let created = Answer::Created(order());
        let first = Reply::answer(&created).unwrap().into_response();
        let again = Reply::answer(&created)
            .unwrap()
            .replayed(true)
            .into_response();
        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(first.status(), again.status());
        assert_eq!(first.body().as_ref(), again.body().as_ref());
        assert_eq!(
            first.headers()[header::LOCATION],
            again.headers()[header::LOCATION]
        );
        assert!(first.headers().get("idempotent-replayed").is_none());
        assert_eq!(again.headers()["idempotent-replayed"], "true");
    }

    #[test]
    fn location_keeps_the_stage_the_request_came_through() {
        let order = order();
        let bare = format!("/users/user-1/orders/{}", order.order_id);
        let located = |path: &str| {
            Reply::answer(&Answer::Created(order.clone()))
                .unwrap()
                .into_response_for(path)
                .headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(located("/users/user-1/orders"), bare);
        assert_eq!(located("/v1/users/user-1/orders"), format!("/v1{bare}"));
        assert_eq!(
            located("/prod/api/users/user-1/orders"),
            format!("/prod/api{bare}")
        );
        assert_eq!(api_prefix("/users/x/orders"), "");
        assert_eq!(api_prefix("/v1/users/x/orders"), "/v1");
        // A reply without Location is untouched.
        let updated = Reply::answer(&Answer::Updated(order))
            .unwrap()
            .into_response_for("/v1/users/user-1/orders/x/payment");
        assert!(updated.headers().get(header::LOCATION).is_none());
    }

    #[test]
    fn a_refusal_answers_with_its_problem() {
        let reply = Reply::answer(&Answer::Refused(Refusal::OrderCancelled))
            .unwrap()
            .replayed(true);
        assert_eq!(reply.status(), StatusCode::CONFLICT);
        assert_eq!(reply.code(), Some("ORDER_CANCELLED"));
        let response = reply.into_response();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()["idempotent-replayed"], "true");
    }
}
