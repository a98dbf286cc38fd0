//! IAM: each function may call exactly the DynamoDB actions its code needs, on the partition
//! keys it needs (`dynamodb:LeadingKeys`), and an index only where it queries one.

use super::*;

/// The user's partition: balance, orders, Idempotency-Key records.
const USER: &str = "USER#*";
/// A product's partition: price and stock.
const PRODUCT: &str = "PRODUCT#*";

/// What one statement grants: an action on items whose partition keys all match these patterns.
type Grant = (String, BTreeSet<&'static str>);

/// The grants of each function, from the store code it runs (shared/src/store/reads.rs,
/// writes.rs and idempotency.rs):
/// * create-order: BatchGetItem of the user and the products in one request (so one statement
///   must allow both patterns: IAM judges a batch's keys together), the transaction's Put
///   (order) and Update (stock; the key's answer), GetItem and PutItem/UpdateItem of the key's
///   record, GetItem of an existing order after a failed condition, and TransactGetItems of a
///   sharded product's shards (authorized per item, as GetItem);
/// * pay-order: the order, the balance and the key's record, all in the user's partition: never
///   a product;
/// * cancel-order and refund-order: as pay-order, plus UpdateItem of the stock they give back;
/// * get-order: GetItem of one order, Query of the list index.
///
/// `TransactWriteItems` is no IAM action: a transaction is authorized per contained item, as
/// the PutItem or UpdateItem it is. No function sends a ConditionCheck or deletes
/// (`store_code_calls_the_operations_the_policies_assume` notices when one starts to).
fn expected_grants(function: &str) -> BTreeSet<Grant> {
    let on = |patterns: &[&'static str]| patterns.iter().copied().collect::<BTreeSet<_>>();
    let own_items = [
        ("dynamodb:GetItem", on(&[USER])),
        ("dynamodb:PutItem", on(&[USER])),
        ("dynamodb:UpdateItem", on(&[USER])),
    ];
    let grants: Vec<(&str, BTreeSet<&'static str>)> = match function {
        "create-order" => own_items
            .into_iter()
            .chain([
                ("dynamodb:BatchGetItem", on(&[USER, PRODUCT])),
                ("dynamodb:GetItem", on(&[PRODUCT])),
                ("dynamodb:UpdateItem", on(&[PRODUCT])),
            ])
            .collect(),
        "pay-order" => own_items.into_iter().collect(),
        "cancel-order" | "refund-order" => own_items
            .into_iter()
            .chain([("dynamodb:UpdateItem", on(&[PRODUCT]))])
            .collect(),
        "get-order" => [
            ("dynamodb:GetItem", on(&[USER])),
            ("dynamodb:Query", on(&[USER])),
        ]
        .into_iter()
        .collect(),
        other => panic!("no IAM expectation for function {other}: add one here"),
    };
    grants
        .into_iter()
        .map(|(action, patterns)| (action.to_owned(), patterns))
        .collect()
}

/// Which part of the table a policy resource is: `Some(None)` for the table
/// (`!GetAtt OrdersTable.Arn`), `Some(Some(index))` for `!Sub "${OrdersTable.Arn}/index/<index>"`.
fn table_part(resource: &Value, table_id: &str) -> Option<Option<String>> {
    match tagged(resource) {
        Some((tag, value)) if tag == "GetAtt" => {
            let name = match value {
                Value::String(text) => text.clone(),
                Value::Sequence(parts) => parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("."),
                _ => return None,
            };
            (name == format!("{table_id}.Arn")).then_some(None)
        }
        Some((tag, value)) if tag == "Sub" => value
            .as_str()?
            .strip_prefix(&format!("${{{table_id}.Arn}}/index/"))
            .map(|index| Some(index.to_owned())),
        _ => None,
    }
}

/// The `dynamodb:LeadingKeys` patterns a statement confines its items to: its condition must
/// be `ForAllValues:StringLike` on that key and nothing else.
fn leading_keys(statement: &Value, context: &str) -> BTreeSet<&'static str> {
    let condition = statement["Condition"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{context}: no Condition: every item of the table is open"));
    assert_eq!(condition.len(), 1, "{context}: {condition:?}");
    let like = &statement["Condition"]["ForAllValues:StringLike"];
    let keys = like
        .as_mapping()
        .unwrap_or_else(|| panic!("{context}: the condition is not ForAllValues:StringLike"));
    assert_eq!(keys.len(), 1, "{context}: {keys:?}");
    strings(&like["dynamodb:LeadingKeys"])
        .into_iter()
        .map(|pattern| match text(pattern) {
            USER => USER,
            PRODUCT => PRODUCT,
            other => panic!("{context}: unknown partition pattern {other}"),
        })
        .collect()
}

#[test]
fn each_function_may_call_exactly_the_dynamodb_actions_its_code_needs_on_its_partitions() {
    let template = template();
    let table_id = resources(&template, "AWS::DynamoDB::Table")
        .into_keys()
        .next()
        .expect("a table");
    assert!(
        template["Globals"]["Function"]["Policies"].is_null(),
        "no policies in Globals: each function states its own"
    );
    let binaries = function_binaries(&template);
    for (id, resource) in resources(&template, "AWS::Serverless::Function") {
        let function = &binaries[&id];
        let policies = resource["Properties"]["Policies"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id} has no Policies list"));
        let mut granted = BTreeSet::new();
        for policy in policies {
            // Only inline documents: a SAM policy template (DynamoDBCrudPolicy ...) or a
            // managed policy would grant more than the code needs.
            let statements = policy["Statement"].as_sequence().unwrap_or_else(|| {
                panic!("{id}: only inline policy documents are allowed, got {policy:?}")
            });
            for statement in statements {
                let context = format!("{id} ({function}) {:?}", statement["Sid"]);
                let actions = allowed_actions(statement, &context);
                let parts: Vec<Option<String>> = strings(&statement["Resource"])
                    .into_iter()
                    .map(|resource| {
                        table_part(resource, &table_id).unwrap_or_else(|| {
                            panic!("{context}: {resource:?} is neither the table nor its index")
                        })
                    })
                    .collect();
                // An index only for a Query, and a Query only of the index it lists by: a
                // GetItem, PutItem or UpdateItem on an index does nothing.
                for part in &parts {
                    match part {
                        Some(index) => {
                            assert_eq!(
                                index,
                                order_service::store::schema::LIST_INDEX,
                                "{context}"
                            );
                            assert_eq!(actions, ["dynamodb:Query"], "{context}: index grant");
                        }
                        None => assert!(
                            !actions.contains(&"dynamodb:Query"),
                            "{context}: the store queries the list index, not the table"
                        ),
                    }
                }
                let patterns = leading_keys(statement, &context);
                for action in actions {
                    assert!(action.starts_with("dynamodb:"), "{context}: {action}");
                    assert!(!action.contains('*'), "{context}: wildcard action {action}");
                    for forbidden in ["Scan", "DeleteItem", "BatchWriteItem", "ConditionCheckItem"]
                    {
                        assert_ne!(action, format!("dynamodb:{forbidden}"), "{context}");
                    }
                    granted.insert((action.to_owned(), patterns.clone()));
                }
            }
        }
        if function == "pay-order" {
            assert!(
                granted
                    .iter()
                    .all(|(_, patterns)| !patterns.contains(PRODUCT)),
                "pay-order may touch a product: {granted:?}"
            );
        }
        assert_eq!(
            granted,
            expected_grants(function),
            "{function}: the grants differ from what its code needs"
        );
    }
    // No other IAM resource hands out DynamoDB access.
    for kind in [
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
    ] {
        for (id, resource) in resources(&template, kind) {
            let dumped = serde_yaml::to_string(resource).expect("serializable");
            assert!(
                !dumped.contains("dynamodb"),
                "{id} ({kind}) grants DynamoDB access"
            );
        }
    }
}

/// The tripwire of `expected_grants`: the store's request code uses exactly the operations
/// that table was written from. When this fails, update `expected_grants` and the policies.
#[test]
fn store_code_calls_the_operations_the_policies_assume() {
    let code = read("shared/src/store/reads.rs") + &read("shared/src/store/writes.rs");
    for used in [
        ".batch_get_item()",
        ".get_item()",
        ".query()",
        ".transact_write_items()",
        ".transact_get_items()",
        ".put(",
        ".update(",
    ] {
        assert!(
            code.contains(used),
            "orders.rs no longer calls {used}: revisit expected_grants"
        );
    }
    for unused in [
        ".condition_check(",
        ".delete(",
        ".delete_item()",
        ".scan()",
        ".put_item()",
        ".update_item()",
        ".batch_write_item()",
    ] {
        assert!(
            !code.contains(unused),
            "orders.rs now calls {unused}: revisit expected_grants and the policies"
        );
    }
    let records = read("shared/src/store/idempotency.rs");
    for used in [".put_item()", ".update_item()", ".get_item()", ".update("] {
        assert!(
            records.contains(used),
            "idempotency.rs no longer calls {used}: revisit expected_grants"
        );
    }
    for unused in [
        ".condition_check(",
        ".delete(",
        ".delete_item()",
        ".scan()",
        ".query()",
        ".batch_write_item()",
    ] {
        assert!(
            !records.contains(unused),
            "idempotency.rs now calls {unused}: revisit expected_grants and the policies"
        );
    }
}
