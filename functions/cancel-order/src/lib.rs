//! `POST /users/{userId}/orders/{orderId}/cancel`: restores stock, and refunds a paid order,
//! in one transaction.

use lambda_http::{Body, Request, Response};
use order_service::app::{answer_once, App, Operation};
use order_service::auth::Access;
use order_service::domain::{Answer, Fingerprint};
use order_service::http::{self, Reply};
use order_service::store::{CancelOrders, KeepAnswers};
use order_service::ServiceError;

pub async fn handle<S: CancelOrders + KeepAnswers>(
    app: &App<S>,
    request: Request,
) -> Response<Body> {
    app.run(
        Operation::CancelOrder,
        &request,
        cancel_order(app, &request),
    )
    .await
}

async fn cancel_order<S: CancelOrders + KeepAnswers>(
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
        Fingerprint::cancel(order_id),
        Answer::Updated,
        |claim| async move { store.cancel_order(user_id, order_id, claim.as_ref()).await },
    )
    .await
}
