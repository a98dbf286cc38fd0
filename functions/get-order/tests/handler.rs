//! get-order's handler (one order, and the paginated list) on API Gateway v2 events, against
//! the in-memory store (no Java).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::domain::UserId;
use order_service::store::{PlaceOrders, SeedPlan};
use testkit::{assert_problem, memory_app, place_order, response_json, EventBuilder};

fn plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 100_000,
        products: 5,
        stock: 100,
        ..SeedPlan::default()
    }
}

async fn create_orders(store: &impl PlaceOrders, user: &str, count: u32) -> Vec<String> {
    let user = UserId::parse(user).unwrap();
    let mut ids = Vec::new();
    for number in 1..=count {
        let order = place_order(store, &user, &[(&format!("product-{number}"), 1)]).await;
        ids.push(order.order_id.to_string());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    ids
}

fn get(path_user: &str, token_user: &str, order_id: &str) -> EventBuilder {
    EventBuilder::new("GET", "/users/{userId}/orders/{orderId}")
        .path("userId", path_user)
        .path("orderId", order_id)
        .as_user(token_user)
}

fn list(user: &str) -> EventBuilder {
    EventBuilder::new("GET", "/users/{userId}/orders")
        .path("userId", user)
        .as_user(user)
}

#[tokio::test]
async fn gets_an_order_and_hides_other_users_orders() {
    let (app, store) = memory_app(&plan());
    let ids = create_orders(&store, "user-1", 1).await;
    let (status, body) =
        response_json(&get_order::handle(&app, get("user-1", "user-1", &ids[0]).build()).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderId"], ids[0].as_str());
    assert_eq!(body["userId"], "user-1");

    // user-2 asking for user-1's order by user-1's path: 404, no existence leak.
    let response = get_order::handle(&app, get("user-1", "user-2", &ids[0]).build()).await;
    assert_problem(&response, 404, "ORDER_NOT_FOUND");
    // user-2 asking for it under its own path: also 404.
    let response = get_order::handle(&app, get("user-2", "user-2", &ids[0]).build()).await;
    assert_problem(&response, 404, "ORDER_NOT_FOUND");
}

#[tokio::test]
async fn lists_newest_first_across_pages() {
    let (app, store) = memory_app(&plan());
    let mut ids = create_orders(&store, "user-1", 5).await;
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut event = list("user-1").query("limit", "2");
        if let Some(cursor) = &cursor {
            event = event.query("cursor", cursor);
        }
        let (status, body) = response_json(&get_order::handle(&app, event.build()).await);
        assert_eq!(status, 200, "{body}");
        for order in body["orders"].as_array().unwrap() {
            seen.push(order["orderId"].as_str().unwrap().to_owned());
        }
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn bad_list_queries_are_400s() {
    let (app, _store) = memory_app(&plan());
    for (name, value) in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("limit", "65536"),
        ("limit", "-1"),
        ("cursor", "tampered"),
        ("cursor", "eyJwayI6IlVTRVIjdXNlci0yIn0"),
    ] {
        let (status, body) = response_json(
            &get_order::handle(&app, list("user-1").query(name, value).build()).await,
        );
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{name}={value}"
        );
    }
    let forbidden = EventBuilder::new("GET", "/users/{userId}/orders")
        .path("userId", "user-1")
        .as_user("user-2");
    let (status, _) = response_json(&get_order::handle(&app, forbidden.build()).await);
    assert_eq!(status, 403);
}
