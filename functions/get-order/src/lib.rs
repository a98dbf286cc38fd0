//! `GET /users/{userId}/orders/{orderId}` (one order) and `GET /users/{userId}/orders`
//! (a page of orders, newest first, with an opaque cursor).

use lambda_http::{Body, Request, RequestExt, Response};
use order_service::app::{App, Operation};
use order_service::auth::Access;
use order_service::http::{self, Reply};
use order_service::store::ReadOrders;
use order_service::ServiceError;
use serde::Serialize;

pub async fn handle<S: ReadOrders>(app: &App<S>, request: Request) -> Response<Body> {
    let names_an_order = request
        .path_parameters_ref()
        .is_some_and(|parameters| parameters.first("orderId").is_some());
    if names_an_order {
        app.run(Operation::GetOrder, &request, get_order(app, &request))
            .await
    } else {
        app.run(Operation::ListOrders, &request, list_orders(app, &request))
            .await
    }
}

async fn get_order<S: ReadOrders>(app: &App<S>, request: &Request) -> Result<Reply, ServiceError> {
    // Someone else's order is "not found", so ids cannot be probed for existence.
    let user_id = app.authorized_user(request, Access::ReadOrder)?;
    let order_id = http::path_order_id(request)?;
    Reply::ok(&app.store.get_order(&user_id, order_id).await?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderList {
    orders: Vec<order_service::domain::Order>,
    next_cursor: Option<String>,
}

async fn list_orders<S: ReadOrders>(
    app: &App<S>,
    request: &Request,
) -> Result<Reply, ServiceError> {
    let user_id = app.authorized_user(request, Access::Other)?;
    let (limit, cursor) = http::list_query(request)?;
    let page = app
        .store
        .list_orders(&user_id, limit, cursor.as_ref())
        .await?;
    Reply::ok(&OrderList {
        orders: page.orders,
        next_cursor: page.next_cursor.map(|cursor| cursor.encode()),
    })
}
