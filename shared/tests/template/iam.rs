//! IAM: each function may call exactly the DynamoDB actions its code needs.

use super::*;

/// `(required, tolerated)` DynamoDB actions per function, from the store code each one runs
/// (shared/src/store/orders.rs):
/// * create-order: BatchGetItem (user + products), a transaction of Put (order) and Update
///   (stock), GetItem (the existing order after a failed condition, when the emulator does
///   not return it with the cancellation reasons);
/// * pay-order, cancel-order: GetItem (the order), a transaction of Updates (order, balance,
///   stock);
/// * get-order: GetItem (one order, the user of an empty list) and Query (the list index).
///
/// `TransactWriteItems` is no IAM action: a transaction is authorized per contained action.
/// No function sends a ConditionCheck, so none may hold ConditionCheckItem
/// (`store_code_calls_the_operations_the_policies_assume` notices when one starts to).
fn expected_actions(function: &str) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let set = |actions: &[&'static str]| actions.iter().copied().collect::<BTreeSet<_>>();
    match function {
        "create-order" => (
            set(&[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ]),
            set(&[]),
        ),
        // Idempotency-Key records: PutItem claims, UpdateItem answers or releases.
        "pay-order" | "cancel-order" => (
            set(&[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ]),
            set(&[]),
        ),
        "get-order" => (set(&["dynamodb:GetItem", "dynamodb:Query"]), set(&[])),
        other => panic!("no IAM expectation for function {other}: add one here"),
    }
}

/// Whether a policy resource is the table (`!GetAtt OrdersTable.Arn`) or its indexes
/// (`!Sub "${OrdersTable.Arn}/index/..."`).
fn is_table_or_index(resource: &Value, table_id: &str) -> bool {
    match tagged(resource) {
        Some((tag, value)) if tag == "GetAtt" => match value {
            Value::String(text) => *text == format!("{table_id}.Arn"),
            Value::Sequence(parts) => {
                parts.len() == 2
                    && parts[0].as_str() == Some(table_id)
                    && parts[1].as_str() == Some("Arn")
            }
            _ => false,
        },
        Some((tag, value)) if tag == "Sub" => value.as_str().is_some_and(|text| {
            text.strip_prefix(&format!("${{{table_id}.Arn}}/index/"))
                .is_some_and(|index| {
                    index == "*" || index == order_service::store::schema::LIST_INDEX
                })
        }),
        _ => false,
    }
}

#[test]
fn each_function_may_call_exactly_the_dynamodb_actions_its_code_needs() {
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
                assert_eq!(
                    statement["Effect"].as_str(),
                    Some("Allow"),
                    "{id}: {statement:?}"
                );
                assert!(
                    statement["NotAction"].is_null() && statement["NotResource"].is_null(),
                    "{id}: {statement:?}"
                );
                for action in strings(&statement["Action"]) {
                    let action = text(action);
                    assert!(
                        action.starts_with("dynamodb:"),
                        "{id} ({function}) is granted {action}"
                    );
                    granted.insert(action.to_owned());
                }
                for resource in strings(&statement["Resource"]) {
                    assert!(
                        is_table_or_index(resource, &table_id),
                        "{id} ({function}): resource {resource:?} is neither the table nor its indexes"
                    );
                }
            }
        }
        for forbidden in [
            "dynamodb:*",
            "dynamodb:Scan",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        ] {
            assert!(
                !granted.contains(forbidden),
                "{function} must not be granted {forbidden}"
            );
        }
        assert!(
            !granted.iter().any(|action| action.contains('*')),
            "{function}: wildcard action in {granted:?}"
        );
        let (required, tolerated) = expected_actions(function);
        let granted: BTreeSet<&str> = granted.iter().map(String::as_str).collect();
        let missing: Vec<&&str> = required.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{function} lacks {missing:?} (granted {granted:?})"
        );
        let allowed: BTreeSet<&str> = required.union(&tolerated).copied().collect();
        let extra: Vec<&&str> = granted.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{function} is granted more than its code needs: {extra:?}"
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

/// The tripwire of `expected_actions`: the store's request code uses exactly the operations
/// that table was written from. When this fails, update `expected_actions` and the policies.
#[test]
fn store_code_calls_the_operations_the_policies_assume() {
    let code = read("shared/src/store/orders.rs");
    for used in [
        ".batch_get_item()",
        ".get_item()",
        ".query()",
        ".transact_write_items()",
        ".put(",
        ".update(",
    ] {
        assert!(
            code.contains(used),
            "orders.rs no longer calls {used}: revisit expected_actions"
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
            "orders.rs now calls {unused}: revisit expected_actions and the policies"
        );
    }
    let records = read("shared/src/store/idempotency.rs");
    for used in [".put_item()", ".update_item()", ".get_item()", ".update("] {
        assert!(
            records.contains(used),
            "idempotency.rs no longer calls {used}: revisit expected_actions"
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
            "idempotency.rs now calls {unused}: revisit expected_actions and the policies"
        );
    }
}
