//! pay-order's handler on API Gateway v2 events, against the in-memory store (no Java).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::domain::{OrderId, UserId};
use order_service::store::{PlaceOrders, SeedPlan};
use testkit::{assert_problem, memory_app, place_order, response_json, EventBuilder};

const ROUTE: &str = "/users/{userId}/orders/{orderId}/payment";

fn plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 60_000,
        products: 3,
        stock: 100,
        extra_products: vec![("product-dear".into(), 50_000, 10)],
        ..SeedPlan::default()
    }
}

/// The id of an order of `quantity` units of `product` placed for `user`.
async fn new_order(store: &impl PlaceOrders, user: &str, product: &str, quantity: u64) -> String {
    let user = UserId::parse(user).unwrap();
    let order = place_order(store, &user, &[(product, quantity)]).await;
    order.order_id.to_string()
}

fn pay(user: &str, order_id: &str) -> EventBuilder {
    EventBuilder::new("POST", ROUTE)
        .path("userId", user)
        .path("orderId", order_id)
        .as_user(user)
}

#[tokio::test]
async fn pays_once_then_refuses_a_second_payment() {
    let (app, store) = memory_app(&plan());
    let order_id = new_order(&store, "user-1", "product-1", 2).await;
    let (status, body) =
        response_json(&pay_order::handle(&app, pay("user-1", &order_id).build()).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "PAID");
    assert!(body["paidAt"].is_string());
    let total = body["totalAmount"].as_i64().unwrap();
    let balance = store.user_balance(&UserId::parse("user-1").unwrap());
    assert_eq!(balance, Some(60_000 - total));

    let response = pay_order::handle(&app, pay("user-1", &order_id).build()).await;
    assert_problem(&response, 409, "ORDER_ALREADY_PAID");
}

#[tokio::test]
async fn a_retry_with_the_paying_key_replays() {
    let (app, store) = memory_app(&plan());
    let order_id = new_order(&store, "user-1", "product-2", 1).await;
    let keyed = || pay("user-1", &order_id).header("idempotency-key", "pay-7");
    let first = pay_order::handle(&app, keyed().build()).await;
    let again = pay_order::handle(&app, keyed().build()).await;
    assert_eq!(
        (first.status().as_u16(), again.status().as_u16()),
        (200, 200)
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let total = response_json(&first).1["totalAmount"].as_i64().unwrap();
    let balance = store.user_balance(&UserId::parse("user-1").unwrap());
    assert_eq!(balance, Some(60_000 - total), "debited once");
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let (app, store) = memory_app(&plan());
    // 2 x 50,000 KRW exceeds the 60,000 KRW balance.
    let dear = new_order(&store, "user-2", "product-dear", 2).await;
    let response = pay_order::handle(&app, pay("user-2", &dear).build()).await;
    assert_problem(&response, 409, "INSUFFICIENT_BALANCE");

    let missing = OrderId::random().to_string();
    let response = pay_order::handle(&app, pay("user-1", &missing).build()).await;
    assert_problem(&response, 404, "ORDER_NOT_FOUND");

    let response = pay_order::handle(&app, pay("user-1", "not-an-id").build()).await;
    assert_problem(&response, 400, "VALIDATION_ERROR");

    // Paying another user's order with one's own token is forbidden.
    let theirs = EventBuilder::new("POST", ROUTE)
        .path("userId", "user-2")
        .path("orderId", &dear)
        .as_user("user-1");
    let response = pay_order::handle(&app, theirs.build()).await;
    assert_problem(&response, 403, "FORBIDDEN");
}
