//! `POST /users/{userId}/orders/{orderId}/payment`: debits the balance and marks the order PAID
//! in one transaction, as the domain decides (`app::change`), once per Idempotency-Key.

use lambda_http::{Body, Request, Response};
use order_service::app::{change_once, App, Operation};
use order_service::domain::Change;
use order_service::store::ChangeOrders;

pub async fn handle<S: ChangeOrders>(app: &App<S>, request: Request) -> Response<Body> {
    app.handle(Operation::PayOrder, &request, |call| async move {
        let order_id = call.order_id()?;
        change_once(&app.store, &call.user_id, call.key, order_id, &Change::Pay).await
    })
    .await
}
