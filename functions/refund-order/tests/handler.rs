//! refund-order's handler on API Gateway v2 events, against the in-memory store (no Java): a
//! partial refund gives units and money back, never more than the order holds, and is answered
//! once per Idempotency-Key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::app::change::change_order;
use order_service::domain::{Change, ProductId, UserId};
use order_service::store::{seeded_price_of, SeedPlan};
use testkit::{assert_problem, memory_app, place_order, response_json, EventBuilder};

fn refund(user: &str, order_id: &str, body: &str) -> EventBuilder {
    EventBuilder::new("POST", "/users/{userId}/orders/{orderId}/refunds")
        .path("userId", user)
        .path("orderId", order_id)
        .as_user(user)
        .json(body)
}

fn plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 500_000,
        products: 2,
        stock: 10,
        ..SeedPlan::default()
    }
}

#[tokio::test]
async fn a_partial_refund_gives_back_units_and_their_price_never_more_than_paid() {
    let (app, store) = memory_app(&plan());
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&store, &user, &[("product-1", 3), ("product-2", 1)]).await;
    let id = order.order_id.to_string();
    let one = r#"{"items":[{"productId":"product-1","quantity":2}]}"#;
    // An unpaid order refunds nothing.
    let response = refund_order::handle(&app, refund("user-1", &id, one).build()).await;
    assert_problem(&response, 409, "ORDER_NOT_PAID");
    change_order(&store, &user, order.order_id, &Change::Pay, None)
        .await
        .unwrap();
    let paid_balance = store.user_balance(&user).unwrap();

    // WHEN two of its three units of product-1 are refunded, with a key
    let keyed = refund("user-1", &id, one).header("idempotency-key", "refund-1");
    let (status, body) = response_json(&refund_order::handle(&app, keyed.build()).await);
    // THEN the order says so, the units are back in stock and their price in the balance
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "PAID");
    assert_eq!(body["refundedItems"][0]["quantity"], 2);
    let price = seeded_price_of(1);
    assert_eq!(body["refundedAmount"], 2 * price);
    let product = ProductId::parse("product-1").unwrap();
    assert_eq!(store.product_stock(&product), Some(9));
    assert_eq!(store.user_balance(&user), Some(paid_balance + 2 * price));
    // AND the same request again is the same answer, not a second refund
    let again = refund("user-1", &id, one).header("idempotency-key", "refund-1");
    let replay = refund_order::handle(&app, again.build()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(store.user_balance(&user), Some(paid_balance + 2 * price));
    // AND two more units than remain are refused, whatever the key
    let response = refund_order::handle(&app, refund("user-1", &id, one).build()).await;
    assert_problem(&response, 409, "REFUND_EXCEEDS_ORDER");
    let absent = r#"{"items":[{"productId":"product-404","quantity":1}]}"#;
    let response = refund_order::handle(&app, refund("user-1", &id, absent).build()).await;
    assert_problem(&response, 409, "REFUND_EXCEEDS_ORDER");
    // AND a cancel refunds only what is left
    change_order(&store, &user, order.order_id, &Change::Cancel, None)
        .await
        .unwrap();
    assert_eq!(store.user_balance(&user), Some(500_000));
    assert_eq!(store.product_stock(&product), Some(10));
    assert_eq!(store.conservation_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn refund_mistakes_are_problems() {
    let (app, store) = memory_app(&plan());
    let user = UserId::parse("user-1").unwrap();
    let order = place_order(&store, &user, &[("product-1", 1)]).await;
    let id = order.order_id.to_string();
    let cases = [
        (
            refund("user-1", &id, r#"{"items":[]}"#),
            400,
            "VALIDATION_ERROR",
        ),
        (
            refund(
                "user-1",
                "not-an-order",
                r#"{"items":[{"productId":"product-1","quantity":1}]}"#,
            ),
            400,
            "VALIDATION_ERROR",
        ),
        (refund("user-1", &id, "not json"), 400, "VALIDATION_ERROR"),
        (
            EventBuilder::new("POST", "/users/{userId}/orders/{orderId}/refunds")
                .path("userId", "user-1")
                .path("orderId", &id)
                .as_user("user-2")
                .json(r#"{"items":[{"productId":"product-1","quantity":1}]}"#),
            403,
            "FORBIDDEN",
        ),
        (
            refund(
                "user-1",
                "01J0000000000000000000000A",
                r#"{"items":[{"productId":"product-1","quantity":1}]}"#,
            ),
            404,
            "ORDER_NOT_FOUND",
        ),
    ];
    for (event, status, code) in cases {
        assert_problem(
            &refund_order::handle(&app, event.build()).await,
            status,
            code,
        );
    }
}
