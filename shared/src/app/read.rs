//! Reading orders: one order, or a page of a user's orders newest first.

use crate::domain::{Order, OrderId, Refusal, UserId};
use crate::error::ServiceError;
use crate::store::{OrderPage, PageRequest, ReadOrders};

/// One order of `user_id` (another user's order is not found).
pub async fn get_order<S: ReadOrders>(
    store: &S,
    user_id: &UserId,
    order_id: OrderId,
) -> Result<Order, ServiceError> {
    store
        .read_order(user_id, order_id)
        .await?
        .map(|state| state.order)
        .ok_or_else(|| Refusal::OrderNotFound.into())
}

/// A page of `user_id`'s orders; an empty first page of a user that does not exist is
/// `USER_NOT_FOUND`.
pub async fn list_orders<S: ReadOrders>(
    store: &S,
    user_id: &UserId,
    page: PageRequest,
) -> Result<OrderPage, ServiceError> {
    let page = store.list_orders(user_id, page).await?;
    if page.user_exists == Some(false) {
        return Err(Refusal::UserNotFound.into());
    }
    Ok(page)
}
