//! `POST /users/{userId}/orders/{orderId}/payment`: debits the balance and marks the order
//! PAID in one transaction.
//! The domain decides (`Order::decide`); `App::change_order` reads the request and writes the
//! decision under its Idempotency-Key.

use lambda_http::{Body, Request, Response};
use order_service::app::{App, Operation};
use order_service::domain::Change;
use order_service::store::{ChangeOrders, KeepAnswers};

pub async fn handle<S: ChangeOrders + KeepAnswers>(
    app: &App<S>,
    request: Request,
) -> Response<Body> {
    let change = Change::Pay;
    let work = app.change_order(&request, change);
    app.run(Operation::from(change), &request, work).await
}
