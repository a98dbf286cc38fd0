//! The table: the store's schema, and an idempotency claim that outlives any invocation.

use super::*;

/// (index name, key, projection type).
type Index = (String, Vec<(String, String)>, String);

#[test]
fn the_table_has_exactly_the_schema_of_the_store() {
    let template = template();
    let tables = resources(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table expected");
    let properties = &tables.values().next().expect("the table")["Properties"];
    let schema = order_service::store::schema::table_schema();
    let pairs = |list: &Value, name: &str, kind: &str| -> Vec<(String, String)> {
        list.as_sequence()
            .unwrap_or_else(|| panic!("expected a list, got {list:?}"))
            .iter()
            .map(|entry| (text(&entry[name]).to_owned(), text(&entry[kind]).to_owned()))
            .collect()
    };
    let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };

    let mut attributes = pairs(
        &properties["AttributeDefinitions"],
        "AttributeName",
        "AttributeType",
    );
    let mut expected_attributes = owned(&schema.attributes);
    attributes.sort();
    expected_attributes.sort();
    assert_eq!(attributes, expected_attributes, "AttributeDefinitions");

    // Key order matters: HASH first.
    assert_eq!(
        pairs(&properties["KeySchema"], "AttributeName", "KeyType"),
        owned(&schema.key),
        "KeySchema"
    );

    let indexes: Vec<Index> = properties["LocalSecondaryIndexes"]
        .as_sequence()
        .map(|indexes| {
            indexes
                .iter()
                .map(|index| {
                    (
                        text(&index["IndexName"]).to_owned(),
                        pairs(&index["KeySchema"], "AttributeName", "KeyType"),
                        text(&index["Projection"]["ProjectionType"]).to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected_indexes: Vec<Index> = schema
        .local_indexes
        .iter()
        .map(|(name, key, projection)| ((*name).to_owned(), owned(key), (*projection).to_owned()))
        .collect();
    assert_eq!(indexes, expected_indexes, "LocalSecondaryIndexes");
    assert!(
        properties["GlobalSecondaryIndexes"].is_null(),
        "the store uses no GSI"
    );
    assert_eq!(properties["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        properties["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(schema.ttl_attribute),
        "TTL expires the Idempotency-Key records"
    );
    assert_eq!(
        properties["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn an_idempotency_claim_outlives_any_invocation() {
    // A claim's lease must not lapse while its request can still be running, or a retry could
    // execute beside it: the lease is longer than every function's timeout.
    let template = template();
    let global = number(&template["Globals"]["Function"]["Timeout"]);
    let lease = order_service::domain::IN_FLIGHT_LEASE.as_secs_f64();
    assert!(
        global < lease,
        "Globals timeout {global} s >= lease {lease} s"
    );
    for (name, function) in resources(&template, "AWS::Serverless::Function") {
        let timeout = &function["Properties"]["Timeout"];
        if !timeout.is_null() {
            assert!(
                number(timeout) < lease,
                "{name}: timeout >= lease {lease} s"
            );
        }
    }
}
