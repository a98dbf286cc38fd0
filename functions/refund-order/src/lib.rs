//! `POST /users/{userId}/orders/{orderId}/refunds`: refunds part of a paid order (the create
//! body's shape, `{"items":[{"productId","quantity"}]}`), giving those units back to stock and
//! their price back to the balance in one transaction, as the domain decides (`app::change`),
//! once per Idempotency-Key. Never more than was paid, across any interleaving and retry: each
//! refund is written on condition that the order is still at the revision it was decided from.

use lambda_http::{Body, Request, Response};
use order_service::app::{change_once, App, Operation};
use order_service::domain::Change;
use order_service::store::ChangeOrders;

pub async fn handle<S: ChangeOrders>(app: &App<S>, request: Request) -> Response<Body> {
    app.handle(Operation::RefundOrder, &request, |call| async move {
        let order_id = call.order_id()?;
        let refund = Change::Refund(call.lines()?);
        change_once(&app.store, &call.user_id, call.key, order_id, &refund).await
    })
    .await
}
