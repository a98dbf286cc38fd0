//! `GET /users/{userId}/orders/{orderId}` (one order) and `GET /users/{userId}/orders` (a page of
//! orders, newest first, with an opaque cursor), through `app::read`.

use lambda_http::{Body, Request, Response};
use order_service::app::{read, App, Operation};
use order_service::http::{Call, Reply};
use order_service::store::ReadOrders;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderList {
    orders: Vec<order_service::domain::Order>,
    next_cursor: Option<String>,
}

pub async fn handle<S: ReadOrders>(app: &App<S>, request: Request) -> Response<Body> {
    if Call::names_an_order(&request) {
        app.handle(Operation::GetOrder, &request, |call| async move {
            // Someone else's order is "not found", so ids cannot be probed for existence.
            let order = read::get_order(&app.store, &call.user_id, call.order_id()?).await?;
            Reply::ok(&order)
        })
        .await
    } else {
        app.handle(Operation::ListOrders, &request, |call| async move {
            let page = read::list_orders(&app.store, &call.user_id, call.list_query()?).await?;
            Reply::ok(&OrderList {
                orders: page.orders,
                next_cursor: page.next_cursor.map(|cursor| cursor.encode()),
            })
        })
        .await
    }
}
