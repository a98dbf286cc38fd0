//! cancel-order's handler on API Gateway v2 events, against the in-memory store (no Java).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::domain::{Change, ProductId, UserId};
use order_service::store::SeedPlan;
use testkit::UseCases;
use testkit::{assert_problem, memory_app, place_order, response_json, EventBuilder};

fn cancel(user: &str, order_id: &str) -> EventBuilder {
    EventBuilder::new("POST", "/users/{userId}/orders/{orderId}/cancel")
        .path("userId", user)
        .path("orderId", order_id)
        .as_user(user)
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_and_restocks_once() {
    let plan = SeedPlan {
        users: 1,
        balance: 200_000,
        products: 2,
        stock: 10,
        ..SeedPlan::default()
    };
    let (app, store) = memory_app(&plan);
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&store, &user, &[("product-1", 4)]).await;
    store
        .change_order(&user, order.order_id, Change::Pay, None)
        .await
        .unwrap();
    let id = order.order_id.to_string();

    let (status, body) =
        response_json(&cancel_order::handle(&app, cancel("user-1", &id).build()).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELLED");
    assert!(body["cancelledAt"].is_string());
    assert_eq!(store.user_balance(&user), Some(200_000));
    let product = ProductId::parse("product-1").unwrap();
    assert_eq!(store.product_stock(&product), Some(10));

    let response = cancel_order::handle(&app, cancel("user-1", &id).build()).await;
    assert_problem(&response, 409, "ORDER_CANCELLED");
    assert_eq!(store.user_balance(&user), Some(200_000), "refunded once");
    assert_eq!(store.conservation_violations(), Vec::<String>::new());
}
