//! `POST /users/{userId}/orders`: places an order, snapshotting prices and reserving stock for
//! every line or for none (`app::place`), once per Idempotency-Key.

use lambda_http::{Body, Request, Response};
use order_service::app::{create_once, App, Operation};
use order_service::store::PlaceOrders;

pub async fn handle<S: PlaceOrders>(app: &App<S>, request: Request) -> Response<Body> {
    app.handle(Operation::CreateOrder, &request, |call| async move {
        let order = call.lines()?;
        create_once(&app.store, &call.user_id, call.key, &order).await
    })
    .await
}
