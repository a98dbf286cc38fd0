//! Successful responses: JSON bodies with the headers a client needs (`Location` on create,
//! `Idempotent-Replayed` when a retry was answered from the stored result).

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::ServiceError;

#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    location: Option<String>,
    replayed: bool,
}

impl Reply {
    pub fn ok<T: Serialize>(value: &T) -> Result<Self, ServiceError> {
        Self::json(StatusCode::OK, value)
    }

    pub fn created<T: Serialize>(location: String, value: &T) -> Result<Self, ServiceError> {
        let mut reply = Self::json(StatusCode::CREATED, value)?;
        reply.location = Some(location);
        Ok(reply)
    }

    fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self, ServiceError> {
        let body = serde_json::to_vec(value)
            .map_err(|error| ServiceError::internal(format!("cannot render a reply: {error}")))?;
        Ok(Self {
            status,
            body,
            location: None,
            replayed: false,
        })
    }

    /// Marks the reply as a replay of an earlier request with the same Idempotency-Key.
    pub fn replayed(mut self, replayed: bool) -> Self {
        self.replayed = replayed;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::Binary(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(location) = self
            .location
            .and_then(|location| HeaderValue::from_str(&location).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}
