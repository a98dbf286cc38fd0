//! `POST /users/{userId}/orders`: snapshots prices and reserves stock for every line, or none.

use lambda_http::{Body, Request, Response};
use order_service::app::{create_once, App, Operation};
use order_service::auth::Access;
use order_service::domain::{CreateOrderRequest, NewOrder};
use order_service::http::{self, Reply};
use order_service::store::{CreateOrders, KeepAnswers};
use order_service::ServiceError;

pub async fn handle<S: CreateOrders + KeepAnswers>(
    app: &App<S>,
    request: Request,
) -> Response<Body> {
    app.run(
        Operation::CreateOrder,
        &request,
        create_order(app, &request),
    )
    .await
}

async fn create_order<S: CreateOrders + KeepAnswers>(
    app: &App<S>,
    request: &Request,
) -> Result<Reply, ServiceError> {
    let user_id = app.authorized_user(request, Access::Other)?;
    let key = http::idempotency_key(request)?;
    let body: CreateOrderRequest = http::json_body(request)?;
    let order = NewOrder::try_from(body)?;
    create_once(&app.store, &user_id, key, &order).await
}
