//! The HTTP boundary shared by every function: the request parsed in one place (`Call`),
//! request limits, replies, and the single mapping from `ServiceError` to an RFC 9457 problem
//! response.

mod call;
pub mod problem;
mod reply;
mod request;

pub use call::Call;
pub use reply::{order_location, Reply};
pub use request::{
    idempotency_key, json_body, list_query, path_order_id, path_user_id, reject_oversized_body,
    MAX_BODY_BYTES,
};
