//! `POST /users/{userId}/orders`: snapshots prices and reserves stock for every line, or none.

use lambda_http::{Body, Request, Response};
use order_service::app::{App, Operation};
use order_service::auth::Access;
use order_service::domain::{CreateOrderRequest, NewOrder};
use order_service::http::{self, Reply};
use order_service::store::CreateOrders;
use order_service::ServiceError;

pub async fn handle<S: CreateOrders>(app: &App<S>, request: Request) -> Response<Body> {
    app.run(
        Operation::CreateOrder,
        &request,
        create_order(app, &request),
    )
    .await
}

async fn create_order<S: CreateOrders>(
    app: &App<S>,
    request: &Request,
) -> Result<Reply, ServiceError> {
    let user_id = app.authorized_user(request, Access::Other)?;
    let key = http::idempotency_key(request)?;
    let body: CreateOrderRequest = http::json_body(request)?;
    let order = NewOrder::try_from(body)?;
    let outcome = app
        .store
        .create_order(&user_id, &order, key.as_ref())
        .await?;
    let location = format!("/users/{user_id}/orders/{}", outcome.order.order_id);
    Ok(Reply::created(location, &outcome.order)?.replayed(outcome.replayed))
}
