//! The HTTP boundary shared by every function: request parsing with limits, replies, and the
//! single mapping from `ServiceError` to an RFC 9457 problem response.

pub mod problem;
mod reply;
mod request;

pub use reply::{order_location, Reply};
pub use request::{
    idempotency_key, json_body, list_query, path_order_id, path_user_id, reject_oversized_body,
    DEFAULT_LIST_LIMIT, MAX_BODY_BYTES, MAX_LIST_LIMIT,
};
