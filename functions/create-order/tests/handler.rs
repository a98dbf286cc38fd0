//! create-order's handler on API Gateway v2 events, against the in-memory store (no Java);
//! that client mistakes are never a 500 is also checked on DynamoDB Local through
//! `dynamodb-faithful`, where the store can conflict and throttle as production does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::app::App;
use order_service::domain::ProductId;
use order_service::store::SeedPlan;
use testkit::{
    assert_problem, memory_app, response_json, test_authenticator, EventBuilder, MemoryStore,
};

const ROUTE: &str = "/users/{userId}/orders";

fn plan() -> SeedPlan {
    SeedPlan {
        users: 3,
        balance: 100_000,
        products: 3,
        stock: 5,
        ..SeedPlan::default()
    }
}

/// A create for the orders of `user_path`, as yet without credentials or a body.
fn create_for(user_path: &str) -> EventBuilder {
    EventBuilder::new("POST", ROUTE).path("userId", user_path)
}

fn create(user_path: &str, token_user: &str, body: &str) -> EventBuilder {
    create_for(user_path).as_user(token_user).json(body)
}

/// A create by user-1 for its own orders.
fn own(body: &str) -> EventBuilder {
    create("user-1", "user-1", body)
}

/// The body of a create request for `quantity` units of one product.
fn one_line(product: &str, quantity: u64) -> String {
    format!(r#"{{"items":[{{"productId":"{product}","quantity":{quantity}}}]}}"#)
}

#[tokio::test]
async fn creates_an_order_with_location_and_snapshotted_prices() {
    let (app, _store) = memory_app(&plan());
    let event = own(&one_line("product-2", 3));
    let response = create_order::handle(&app, event.build()).await;
    let (status, body) = response_json(&response);
    assert_eq!(status, 201, "{body}");
    let order_id = body["orderId"].as_str().unwrap();
    assert_eq!(
        response.headers()["location"],
        format!("/users/user-1/orders/{order_id}").as_str()
    );
    assert_eq!(body["status"], "CREATED");
    let unit_price = order_service::store::seeded_price_of(2);
    assert_eq!(body["items"][0]["unitPrice"], unit_price);
    assert_eq!(body["totalAmount"], 3 * unit_price);
}

/// Requests with a client mistake each, and the problem each must get.
fn client_mistakes() -> Vec<(EventBuilder, u16, &'static str)> {
    // Bodies that are not a valid create: sent by user-1 for its own orders, each is a 400.
    let invalid_bodies = [
        "{not json".to_owned(),
        r#"{"items":[]}"#.to_owned(),
        r#"{"items":[{"productId":"product-1","quantity":1.5}]}"#.to_owned(),
        r#"{"items":[{"productId":"product-1","quantity":99999999999999999999}]}"#.to_owned(),
        r#"{"items":[{"productId":"product-1","quantity":1}],"extra":1}"#.to_owned(),
        format!("{}1{}", "[".repeat(500), "]".repeat(500)),
    ];
    let mut mistakes: Vec<_> = invalid_bodies
        .iter()
        .map(|body| (own(body), 400, "VALIDATION_ERROR"))
        .collect();
    // The rest, one a row: the request, then the problem it must get.
    let one = one_line("product-1", 1);
    let as_text = create_for("user-1")
        .as_user("user-1")
        .header("content-type", "text/plain");
    let too_large = format!(r#"{{"items":[],"pad":"{}"}}"#, "x".repeat(17_000));
    let forged = create_for("user-1").header("authorization", "Bearer not.a.token");
    // "user-1" with a Cyrillic e (U+0435): looks like the caller's own path, is not.
    let homoglyph = "us\u{0435}r-1";
    mistakes.extend([
        (as_text.body(&one), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (own(&too_large), 413, "PAYLOAD_TOO_LARGE"),
        (create_for("user-1").json(&one), 401, "UNAUTHORIZED"),
        (forged.json(&one), 401, "UNAUTHORIZED"),
        (create("user-1", "user-2", &one), 403, "FORBIDDEN"),
        (create(homoglyph, "user-1", &one), 400, "VALIDATION_ERROR"),
        (own(&one_line("product-404", 1)), 404, "PRODUCT_NOT_FOUND"),
        (own(&one_line("product-1", 6)), 409, "OUT_OF_STOCK"),
    ]);
    mistakes
}

/// Asserts that `response` is the problem `expected_status`/`expected_code` names.
fn assert_mistake(response: &lambda_http::Response<lambda_http::Body>, expected: (u16, &str)) {
    let (status, body) = response_json(response);
    assert_eq!(
        (status, body["code"].as_str()),
        (expected.0, Some(expected.1)),
        "{body}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(body["status"], expected.0);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
}

#[tokio::test]
async fn client_mistakes_are_problems_never_500s() {
    let (app, _store) = memory_app(&plan());
    for (event, expected_status, expected_code) in client_mistakes() {
        let response = create_order::handle(&app, event.build()).await;
        assert_mistake(&response, (expected_status, expected_code));
    }
}

#[tokio::test]
async fn client_mistakes_are_problems_never_500s_on_a_store_that_conflicts_and_throttles() {
    // GIVEN DynamoDB Local through dynamodb-faithful, with transactions holding their items
    // 50 ms longer and a partition limit a burst exceeds
    let (app, faithful) = testkit::faithful_app(&plan()).await;
    faithful
        .proxy
        .set_hold(std::time::Duration::from_millis(50));
    faithful.proxy.set_limits(dynamodb_faithful::Limits {
        write_units_per_second: 20.0,
        read_units_per_second: 60.0,
    });
    // WHEN every mistake is sent four times at once, beside valid orders of the same product
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for (event, expected_status, expected_code) in client_mistakes() {
        for copy in 0..4 {
            let app = app.clone();
            let request = event.build();
            let valid = create("user-2", "user-2", &one_line("product-1", 1))
                .header("idempotency-key", &format!("{expected_code}-{copy}"))
                .build();
            tasks.push(tokio::spawn(async move {
                let (mistake, _) = tokio::join!(
                    create_order::handle(&app, request),
                    create_order::handle(&app, valid)
                );
                (mistake, expected_status, expected_code)
            }));
        }
    }
    // THEN each mistake gets its problem; the two that reach the store may instead be told to
    // retry (contention, throttling), and nothing is ever a 500
    for task in tasks {
        let (response, expected_status, expected_code) = task.await.unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 500, "{expected_code}");
        let reaches_the_store = matches!(expected_code, "PRODUCT_NOT_FOUND" | "OUT_OF_STOCK");
        if reaches_the_store && (status == 503 || response.headers().get("retry-after").is_some()) {
            let (_, body) = response_json(&response);
            assert!(
                matches!(
                    body["code"].as_str(),
                    Some("STORE_THROTTLED" | "CONCURRENT_REQUEST")
                ),
                "{body}"
            );
        } else {
            assert_mistake(&response, (expected_status, expected_code));
        }
    }
    let total = faithful.proxy.summary().total();
    assert!(
        total.throttled + total.conflicts > 0,
        "the store neither throttled nor conflicted: the test proves nothing ({total:?})"
    );
}

#[tokio::test]
async fn an_unknown_user_is_404() {
    let (app, _store) = memory_app(&plan());
    let event = create("user-77", "user-77", &one_line("product-1", 1));
    let response = create_order::handle(&app, event.build()).await;
    assert_problem(&response, 404, "USER_NOT_FOUND");
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_a_different_body() {
    let (app, store) = memory_app(&plan());
    let body = one_line("product-1", 2);
    let keyed = |body: &str| own(body).header("idempotency-key", "order-42");
    let first = create_order::handle(&app, keyed(&body).build()).await;
    let second = create_order::handle(&app, keyed(&body).build()).await;
    let (first_status, first_body) = response_json(&first);
    let (second_status, second_body) = response_json(&second);
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first_body["orderId"], second_body["orderId"]);
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let stock = store.product_stock(&ProductId::parse("product-1").unwrap());
    assert_eq!(stock, Some(3), "the replay reserved nothing");

    let different = create_order::handle(&app, keyed(&one_line("product-1", 1)).build()).await;
    assert_problem(&different, 422, "IDEMPOTENCY_KEY_REUSED");
    let bad_key = own(&one_line("product-1", 1)).header("idempotency-key", "tab\tkey");
    let (status, _) = response_json(&create_order::handle(&app, bad_key.build()).await);
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_keyed_request_refused_as_invalid_can_be_fixed_and_sent_with_its_key() {
    let (app, store) = memory_app(&plan());
    // GIVEN a keyed create whose line is an array, not an object
    let invalid = own(r#"{"items":[["product-1",1]]}"#).header("idempotency-key", "fix-me");
    let response = create_order::handle(&app, invalid.build()).await;
    let (status, body) = response_json(&response);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    // WHEN the client fixes the body and sends it with the same key
    let fixed = own(&one_line("product-1", 1)).header("idempotency-key", "fix-me");
    let response = create_order::handle(&app, fixed.build()).await;
    let (status, body) = response_json(&response);
    // THEN it is executed: a validation error is no answer for the key
    assert_eq!(status, 201, "{body}");
    assert!(response.headers().get("idempotent-replayed").is_none());
    // AND sent again, it is the replay of that 201
    let replay = create_order::handle(&app, fixed.build()).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.body().as_ref(), response.body().as_ref());
    assert_eq!(store.all_orders().len(), 1);
}

// The budget must run out while a store call is in flight: every call of this store takes
// 100 ms (an in-memory call answers on its first poll, before the budget is looked at).
#[tokio::test]
async fn a_request_answers_before_its_invocation_deadline() {
    let store = MemoryStore::seeded(&plan()).with_latency(std::time::Duration::from_millis(100));
    let app = App::new(store.clone(), test_authenticator(), 0.0);
    let body = one_line("product-1", 1);
    // GIVEN an invocation with less time left than the reserve kept for answering
    let late = own(&body)
        .header("idempotency-key", "late")
        .deadline_in(200);
    let response = create_order::handle(&app, late.build()).await;
    let (status, problem) = response_json(&response);
    // THEN it answers at once with a problem+json 503 and Retry-After, not a gateway timeout
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "STORE_UNAVAILABLE");
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(store.all_orders().is_empty());
    // AND with time to spare a request goes through (another key: the late one's claim may
    // have reached the store before the budget ran out, and holds its key for the lease)
    let in_time = own(&body)
        .header("idempotency-key", "in-time")
        .deadline_in(10_000);
    let response = create_order::handle(&app, in_time.build()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(store.all_orders().len(), 1);
}
