//! The saved events in events/: the router's routes, and the orders their keys create.

use super::*;

#[derive(Debug, serde::Deserialize)]
struct Expectation {
    event: String,
    function: String,
    status: u16,
}

/// Every saved event is a v2 event of a route of the router table, sent to that route's
/// function; the keyed creates produce the order ids the later events address.
#[test]
fn saved_events_use_the_routes_of_the_router_table() {
    use order_service::domain::{IdempotencyKey, UserId};

    let router = router();
    let expected: Vec<Expectation> =
        serde_json::from_str(&read("events/expected.json")).expect("events/expected.json");
    assert!(!expected.is_empty());
    let mut created = BTreeSet::new();
    for entry in &expected {
        let event: serde_json::Value =
            serde_json::from_str(&read(&format!("events/{}", entry.event)))
                .expect("an event is JSON");
        assert_eq!(event["version"], "2.0", "{}", entry.event);
        let route_key = event["routeKey"].as_str().expect("routeKey");
        assert_eq!(
            event["requestContext"]["routeKey"], route_key,
            "{}",
            entry.event
        );
        let (method, template_path) = route_key.split_once(' ').expect("METHOD /path");
        assert_eq!(
            event["requestContext"]["http"]["method"], method,
            "{}",
            entry.event
        );
        assert!(
            router.contains(&(
                method.to_owned(),
                template_path.to_owned(),
                entry.function.clone()
            )),
            "{}: {route_key} -> {} is not in the router table",
            entry.event,
            entry.function
        );
        // rawPath is the route with the path parameters filled in.
        let mut path = template_path.to_owned();
        if let Some(parameters) = event["pathParameters"].as_object() {
            for (name, value) in parameters {
                path = path.replace(&format!("{{{name}}}"), value.as_str().expect("a string"));
            }
        }
        assert_eq!(event["rawPath"], path.as_str(), "{}", entry.event);
        assert_eq!(
            event["requestContext"]["http"]["path"],
            path.as_str(),
            "{}",
            entry.event
        );

        let user = event["pathParameters"]["userId"].as_str().expect("userId");
        let key = event["headers"]["idempotency-key"].as_str();
        if method == "POST" && template_path == "/users/{userId}/orders" && entry.status == 201 {
            let key = key.unwrap_or_else(|| {
                panic!(
                    "{}: a create that later events use needs a key",
                    entry.event
                )
            });
            created.insert(
                IdempotencyKey::parse(key)
                    .unwrap()
                    .order_id(&UserId::parse(user).unwrap())
                    .to_string(),
            );
        }
        if let Some(order) = event["pathParameters"]["orderId"].as_str() {
            // Events that expect to find the order address one a keyed create made earlier.
            if entry.status == 200 || entry.status == 409 {
                assert!(
                    created.contains(order),
                    "{}: order {order} is not created by an earlier keyed create",
                    entry.event
                );
            }
        }
    }
}
