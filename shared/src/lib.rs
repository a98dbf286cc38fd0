//! The order service's domain crate: pure domain types, the DynamoDB store, the HTTP boundary
//! (problem+json, authentication) and observability, shared by the four Lambda functions.
//!
//! The layers depend inwards only: `domain` knows nothing of HTTP or DynamoDB, `store` owns every
//! line of DynamoDB code, and `http` is the single place where outcomes become status codes.

pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod observability;
pub mod operation;
pub mod store;

pub use error::ServiceError;
