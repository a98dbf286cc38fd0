//! `POST /users/{userId}/orders/{orderId}/payment`: debits the balance and marks the order
//! PAID in one transaction.

use lambda_http::{Body, Request, Response};
use order_service::app::{answer_once, App, Operation};
use order_service::auth::Access;
use order_service::domain::{Answer, Fingerprint};
use order_service::http::{self, Reply};
use order_service::store::{KeepAnswers, PayOrders};
use order_service::ServiceError;

pub async fn handle<S: PayOrders + KeepAnswers>(app: &App<S>, request: Request) -> Response<Body> {
    app.run(Operation::PayOrder, &request, pay_order(app, &request))
        .await
}

async fn pay_order<S: PayOrders + KeepAnswers>(
    app: &App<S>,
    request: &Request,
) -> Result<Reply, ServiceError> {
    let user_id = app.authorized_user(request, Access::Other)?;
    let order_id = http::path_order_id(request)?;
    http::reject_oversized_body(request)?;
    let key = http::idempotency_key(request)?;
    let (store, user_id) = (&app.store, &user_id);
    answer_once(
        store,
        user_id,
        key,
        Fingerprint::pay(order_id),
        Answer::Updated,
        |claim| async move { store.pay_order(user_id, order_id, claim.as_ref()).await },
    )
    .await
}
