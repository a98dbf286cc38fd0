//! A request as a handler sees it, parsed in one place: the path's user (and the caller's right
//! to it), the Idempotency-Key and the body limit of a change, then on demand the path's order,
//! the body's lines and the list query.

use lambda_http::{Request, RequestExt};

use super::request::{
    idempotency_key, json_body, list_query, path_order_id, path_user_id, reject_oversized_body,
};
use crate::auth::{Access, Authenticator};
use crate::domain::{CreateOrderRequest, IdempotencyKey, NewOrder, OrderId, UserId};
use crate::error::ServiceError;
use crate::store::PageRequest;

/// One request to a function, authorised for its user.
#[derive(Debug)]
pub struct Call<'r> {
    request: &'r Request,
    pub user_id: UserId,
    /// The Idempotency-Key of a change (never read for a read).
    pub key: Option<IdempotencyKey>,
}

impl<'r> Call<'r> {
    /// Authorises the caller for the path's user (`access`), and for a request that `changes`
    /// something reads its Idempotency-Key and refuses a body over the limit.
    pub fn parse(
        auth: &Authenticator,
        changes: bool,
        access: Access,
        request: &'r Request,
    ) -> Result<Self, ServiceError> {
        let user_id = path_user_id(request)?;
        auth.authorize(request, &user_id, access)?;
        let key = if changes {
            let key = idempotency_key(request)?;
            reject_oversized_body(request)?;
            key
        } else {
            None
        };
        Ok(Self {
            request,
            user_id,
            key,
        })
    }

    /// The path's `{orderId}`.
    pub fn order_id(&self) -> Result<OrderId, ServiceError> {
        path_order_id(self.request)
    }

    /// The body's `{"items": [...]}` (a create's lines, or a refund's), validated.
    pub fn lines(&self) -> Result<NewOrder, ServiceError> {
        let body: CreateOrderRequest = json_body(self.request)?;
        Ok(NewOrder::try_from(body)?)
    }

    /// The page the list route's `limit` and `cursor` ask for.
    pub fn list_query(&self) -> Result<PageRequest, ServiceError> {
        list_query(self.request)
    }

    /// Whether the route names one order (`/users/{userId}/orders/{orderId}`).
    pub fn names_an_order(request: &Request) -> bool {
        request
            .path_parameters_ref()
            .is_some_and(|parameters| parameters.first("orderId").is_some())
    }
}
