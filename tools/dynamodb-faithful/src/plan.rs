//! What a DynamoDB request touches, read from its JSON body before it is forwarded: which
//! items (for transaction conflicts), which partitions (for throughput limits) and roughly how
//! many capacity units it will consume (the estimate a partition's budget is checked against;
//! the units DynamoDB Local reports afterwards settle the account).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::size::{item_size, read_units, value_size, write_units};

/// A table's primary key: the partition (hash) key and the optional sort (range) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySchema {
    pub hash: String,
    pub range: Option<String>,
}

/// How a request takes part in DynamoDB's transaction conflict rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `TransactWriteItems`: conflicts with ongoing transactions on any of its items.
    TransactWrite,
    /// `TransactGetItems`: conflicts with ongoing writes of any kind on its items.
    TransactGet,
    /// `PutItem`, `UpdateItem`, `DeleteItem`: fails with `TransactionConflictException` on an
    /// item an ongoing `TransactWriteItems` holds.
    SingleWrite,
    /// `GetItem`, `Query`, `Scan`, `BatchGetItem`: read committed, never in conflict.
    Read,
    /// `BatchWriteItem`: throttled per partition, outside the conflict model.
    BatchWrite,
    /// Control-plane and anything else: forwarded untouched.
    Other,
}

impl Kind {
    /// Whether a request of this kind conflicts with an ongoing request of kind `holder` on the
    /// same item (the developer guide's "Transaction conflict handling").
    pub(crate) fn conflicts_with(self, holder: Kind) -> bool {
        matches!(
            (self, holder),
            (Kind::SingleWrite, Kind::TransactWrite)
                | (Kind::TransactWrite, Kind::TransactWrite | Kind::TransactGet)
                | (Kind::TransactGet, Kind::TransactWrite | Kind::SingleWrite)
        )
    }

    /// Whether requests of this kind hold their items while they run.
    pub(crate) fn holds(self) -> bool {
        matches!(
            self,
            Kind::TransactWrite | Kind::TransactGet | Kind::SingleWrite
        )
    }

    /// Whether the units a request of this kind consumes are write units.
    pub(crate) fn writes(self) -> bool {
        matches!(
            self,
            Kind::TransactWrite | Kind::SingleWrite | Kind::BatchWrite
        )
    }
}

/// One item a request reads or writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Touch {
    pub table: String,
    /// The item's identity (table and full key), when the request names one item.
    pub item: Option<String>,
    /// The partition (table and partition key value) the units are charged to; `None` for a
    /// whole-table scan.
    pub partition: Option<String>,
    /// The units expected, before the request runs.
    pub units: f64,
    /// For a write, the item's size after it (zero: deleted), to remember if it succeeds.
    pub written: Option<usize>,
}

/// What a request is and touches.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub operation: String,
    pub kind: Kind,
    /// In request order: for transactions, the order of `TransactItems` (and of the
    /// cancellation reasons).
    pub touches: Vec<Touch>,
    /// A transaction's `ClientRequestToken`, if it carries one.
    pub token: Option<String>,
}

/// The operation named by an `X-Amz-Target` header (`DynamoDB_20120810.PutItem`).
pub(crate) fn operation_of(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// The tables a request addresses, so that their key schemas can be known before planning.
pub(crate) fn tables_of(operation: &str, body: &Value) -> Vec<String> {
    let mut tables = Vec::new();
    match operation {
        "TransactWriteItems" | "TransactGetItems" => {
            for entry in array(body, "TransactItems") {
                if let Some(action) = entry
                    .as_object()
                    .and_then(|actions| actions.values().next())
                {
                    if let Some(table) = action.get("TableName").and_then(Value::as_str) {
                        tables.push(table.to_owned());
                    }
                }
            }
        }
        "BatchGetItem" | "BatchWriteItem" => {
            if let Some(requests) = body.get("RequestItems").and_then(Value::as_object) {
                tables.extend(requests.keys().cloned());
            }
        }
        _ => {
            if let Some(table) = body.get("TableName").and_then(Value::as_str) {
                tables.push(table.to_owned());
            }
        }
    }
    tables.sort();
    tables.dedup();
    tables
}

fn array<'a>(body: &'a Value, field: &str) -> &'a [Value] {
    body.get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The text of a scalar key value, for names in logs and summaries.
fn scalar_text(value: &Value) -> String {
    value
        .as_object()
        .and_then(|typed| typed.values().next())
        .map(|inner| match inner {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The item and partition of a key (or of a whole item, whose key attributes it holds).
fn locate(table: &str, attributes: &Map<String, Value>, schema: &KeySchema) -> (String, String) {
    let hash = attributes
        .get(&schema.hash)
        .map(scalar_text)
        .unwrap_or_default();
    let partition = format!("{table}/{hash}");
    let item = match schema
        .range
        .as_ref()
        .and_then(|range| attributes.get(range))
    {
        Some(range) => format!("{partition}/{}", scalar_text(range)),
        None => partition.clone(),
    };
    (item, partition)
}

/// The size a write leaves an item at, for the capacity it costs: a put's item, or an update's
/// item as it was (when known) plus the values it sets. (DynamoDB charges an update by the
/// larger of the item's size before and after.)
fn written_size(action: &str, request: &Value, before: Option<usize>) -> usize {
    match action {
        "Put" | "PutItem" => request
            .get("Item")
            .and_then(Value::as_object)
            .map_or(1, item_size),
        "Update" | "UpdateItem" => {
            let added: usize = request
                .get("ExpressionAttributeValues")
                .and_then(Value::as_object)
                .map_or(0, |values| values.values().map(value_size).sum());
            before.unwrap_or(0) + added
        }
        _ => before.unwrap_or(1),
    }
}

/// Plans a request. Tables without a known schema are assumed to be keyed `pk` (+ `sk`);
/// `size_of` gives the last known size of an item (by its identity), to estimate the units of
/// writes and reads that do not carry the item.
pub(crate) fn plan(
    operation: &str,
    body: &Value,
    schemas: &HashMap<String, KeySchema>,
    size_of: &dyn Fn(&str) -> Option<usize>,
) -> Plan {
    let fallback = KeySchema {
        hash: "pk".to_owned(),
        range: Some("sk".to_owned()),
    };
    let schema_of = |table: &str| schemas.get(table).unwrap_or(&fallback).clone();
    let table_of = |value: &Value| {
        value
            .get("TableName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let consistent = |value: &Value| {
        value
            .get("ConsistentRead")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    // One item of `table` named by `attributes` (its key, or the whole item), whose units
    // `units` works out from the item's last known size.
    let keyed = |table: String,
                 attributes: Option<&Map<String, Value>>,
                 units: &dyn Fn(Option<usize>) -> f64| {
        let located = attributes.map(|attributes| locate(&table, attributes, &schema_of(&table)));
        let known = located.as_ref().and_then(|(item, _)| size_of(item));
        let (item, partition) = located.map_or((None, None), |(item, partition)| {
            (Some(item), Some(partition))
        });
        Touch {
            table,
            item,
            partition,
            units: units(known),
            written: None,
        }
    };
    let write = |action: &str, request: &Value, transactional: bool| {
        let attributes = if matches!(action, "Put" | "PutItem") {
            request.get("Item")
        } else {
            request.get("Key")
        }
        .and_then(Value::as_object);
        let mut touch = keyed(table_of(request), attributes, &|before| {
            let after = written_size(action, request, before);
            write_units(after.max(before.unwrap_or(0)), transactional)
        });
        let before = touch.item.as_deref().and_then(size_of);
        touch.written = match action {
            "Delete" | "DeleteItem" => Some(0),
            "ConditionCheck" => None,
            _ => Some(written_size(action, request, before)),
        };
        touch
    };
    let token = body
        .get("ClientRequestToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (kind, touches) = match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" => {
            (Kind::SingleWrite, vec![write(operation, body, false)])
        }
        "GetItem" => {
            let key = body.get("Key").and_then(Value::as_object);
            let consistent = consistent(body);
            let touch = keyed(table_of(body), key, &|size| {
                read_units(size.unwrap_or(1), consistent, false)
            });
            (Kind::Read, vec![touch])
        }
        "TransactWriteItems" => {
            let touches = array(body, "TransactItems")
                .iter()
                .filter_map(|entry| entry.as_object()?.iter().next())
                .map(|(action, request)| write(action, request, true))
                .collect();
            (Kind::TransactWrite, touches)
        }
        "TransactGetItems" => {
            let touches = array(body, "TransactItems")
                .iter()
                .filter_map(|entry| entry.get("Get"))
                .map(|request| {
                    let key = request.get("Key").and_then(Value::as_object);
                    keyed(table_of(request), key, &|size| {
                        read_units(size.unwrap_or(1), true, true)
                    })
                })
                .collect();
            (Kind::TransactGet, touches)
        }
        "Query" => {
            let table = table_of(body);
            let partition =
                query_partition(body, &schema_of(&table)).map(|hash| format!("{table}/{hash}"));
            let units = read_units(1, consistent(body), false);
            (
                Kind::Read,
                vec![Touch {
                    table,
                    item: None,
                    partition,
                    units,
                    written: None,
                }],
            )
        }
        "Scan" => (
            Kind::Read,
            vec![Touch {
                table: table_of(body),
                item: None,
                partition: None,
                units: read_units(1, consistent(body), false),
                written: None,
            }],
        ),
        "BatchGetItem" => {
            let mut touches = Vec::new();
            if let Some(requests) = body.get("RequestItems").and_then(Value::as_object) {
                for (table, request) in requests {
                    let consistent = consistent(request);
                    for key in array(request, "Keys") {
                        touches.push(keyed(table.clone(), key.as_object(), &|size| {
                            read_units(size.unwrap_or(1), consistent, false)
                        }));
                    }
                }
            }
            (Kind::Read, touches)
        }
        "BatchWriteItem" => {
            let mut touches = Vec::new();
            if let Some(requests) = body.get("RequestItems").and_then(Value::as_object) {
                for (table, writes) in requests {
                    for entry in writes.as_array().map_or(&[][..], Vec::as_slice) {
                        let mut request = entry
                            .get("PutRequest")
                            .or_else(|| entry.get("DeleteRequest"))
                            .cloned()
                            .unwrap_or(Value::Null);
                        if let Value::Object(fields) = &mut request {
                            fields.insert("TableName".to_owned(), Value::from(table.as_str()));
                        }
                        let action = if entry.get("PutRequest").is_some() {
                            "Put"
                        } else {
                            "Delete"
                        };
                        touches.push(write(action, &request, false));
                    }
                }
            }
            (Kind::BatchWrite, touches)
        }
        _ => (Kind::Other, Vec::new()),
    };
    Plan {
        operation: operation.to_owned(),
        kind,
        touches,
        token,
    }
}

/// The items a request or an answer carries whole, by identity, with their sizes: what a put
/// writes, what a read returns. (Keys only are not whole items.)
pub(crate) fn whole_items(
    operation: &str,
    request: &Value,
    answer: &Value,
    schemas: &HashMap<String, KeySchema>,
) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut add = |table: &str, item: &Value| {
        if let (Some(item), Some(schema)) = (item.as_object(), schemas.get(table)) {
            if item.contains_key(&schema.hash) {
                found.push((locate(table, item, schema).0, item_size(item)));
            }
        }
    };
    let table = request
        .get("TableName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let projected =
        request.get("ProjectionExpression").is_some() || request.get("AttributesToGet").is_some();
    match operation {
        "PutItem" => add(table, request.get("Item").unwrap_or(&Value::Null)),
        "GetItem" if !projected => add(table, answer.get("Item").unwrap_or(&Value::Null)),
        "Query" | "Scan" if !projected => {
            for item in array(answer, "Items") {
                add(table, item);
            }
        }
        "BatchGetItem" => {
            if let Some(responses) = answer.get("Responses").and_then(Value::as_object) {
                for (table, items) in responses {
                    let projected = request
                        .pointer(&format!("/RequestItems/{table}/ProjectionExpression"))
                        .is_some();
                    if !projected {
                        for item in items.as_array().map_or(&[][..], Vec::as_slice) {
                            add(table, item);
                        }
                    }
                }
            }
        }
        "TransactWriteItems" => {
            for entry in array(request, "TransactItems") {
                if let Some(put) = entry.get("Put") {
                    let table = put
                        .get("TableName")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    add(table, put.get("Item").unwrap_or(&Value::Null));
                }
            }
        }
        _ => {}
    }
    found
}

/// The partition key value a query addresses: the equality on the partition key in its
/// `KeyConditionExpression` (through `ExpressionAttributeNames` when aliased), or the legacy
/// `KeyConditions`.
fn query_partition(body: &Value, schema: &KeySchema) -> Option<String> {
    if let Some(legacy) = body
        .pointer(&format!("/KeyConditions/{}", schema.hash))
        .and_then(|condition| condition.get("AttributeValueList"))
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return Some(scalar_text(legacy));
    }
    let expression = body.get("KeyConditionExpression")?.as_str()?;
    let names = body.get("ExpressionAttributeNames");
    let values = body.get("ExpressionAttributeValues")?;
    let upper = expression.to_ascii_uppercase();
    let mut start = 0;
    let mut clauses = Vec::new();
    while let Some(found) = upper[start..].find(" AND ") {
        clauses.push(&expression[start..start + found]);
        start += found + 5;
    }
    clauses.push(&expression[start..]);
    clauses.into_iter().find_map(|clause| {
        let clause = clause.trim().trim_start_matches('(').trim_end_matches(')');
        if clause.contains(['<', '>']) {
            return None;
        }
        let (name, placeholder) = clause.split_once('=')?;
        let name = name.trim();
        let resolved = if name.starts_with('#') {
            names?.get(name)?.as_str()?
        } else {
            name
        };
        (resolved == schema.hash)
            .then(|| values.get(placeholder.trim()).map(scalar_text))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> HashMap<String, KeySchema> {
        HashMap::from([(
            "orders".to_owned(),
            KeySchema {
                hash: "pk".to_owned(),
                range: Some("sk".to_owned()),
            },
        )])
    }

    #[test]
    fn a_transaction_names_each_item_in_order_at_twice_the_units() {
        let body = json!({
            "ClientRequestToken": "t-1",
            "TransactItems": [
                {"Put": {"TableName": "orders", "Item": {"pk": {"S": "USER#u"}, "sk": {"S": "ORDER#1"}}}},
                {"Update": {"TableName": "orders", "Key": {"pk": {"S": "PRODUCT#p"}, "sk": {"S": "PRODUCT"}}}},
            ]
        });
        assert_eq!(tables_of("TransactWriteItems", &body), vec!["orders"]);
        let plan = plan("TransactWriteItems", &body, &schemas(), &|_| None);
        assert_eq!(plan.kind, Kind::TransactWrite);
        assert_eq!(plan.token.as_deref(), Some("t-1"));
        let items: Vec<_> = plan
            .touches
            .iter()
            .map(|t| t.item.clone().unwrap())
            .collect();
        assert_eq!(items, ["orders/USER#u/ORDER#1", "orders/PRODUCT#p/PRODUCT"]);
        assert_eq!(
            plan.touches[1].partition.as_deref(),
            Some("orders/PRODUCT#p")
        );
        assert!(plan.touches.iter().all(|touch| touch.units == 2.0));
    }

    #[test]
    fn a_query_is_charged_to_the_partition_its_key_condition_names() {
        let body = json!({
            "TableName": "orders",
            "KeyConditionExpression": "#p = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeNames": {"#p": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": "USER#u"}, ":prefix": {"S": "ORDER#"}},
            "ConsistentRead": true
        });
        let plan = plan("Query", &body, &schemas(), &|_| None);
        assert_eq!(plan.touches[0].partition.as_deref(), Some("orders/USER#u"));
        assert_eq!(plan.touches[0].units, 1.0);
        let simple = json!({
            "TableName": "orders",
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "USER#v"}}
        });
        let plan = super::plan("Query", &simple, &schemas(), &|_| None);
        assert_eq!(plan.touches[0].partition.as_deref(), Some("orders/USER#v"));
        assert_eq!(plan.touches[0].units, 0.5);
    }

    #[test]
    fn an_update_is_charged_by_the_larger_of_the_item_before_and_after() {
        let body = json!({
            "TableName": "orders",
            "Key": {"pk": {"S": "USER#u"}, "sk": {"S": "ORDER#1"}},
            "UpdateExpression": "SET note = :note",
            "ExpressionAttributeValues": {":note": {"S": "x".repeat(1_500)}}
        });
        let unknown = plan("UpdateItem", &body, &schemas(), &|_| None);
        assert_eq!(unknown.touches[0].units, 2.0, "1.5 KB set: two units");
        let known = plan("UpdateItem", &body, &schemas(), &|item| {
            (item == "orders/USER#u/ORDER#1").then_some(3_000)
        });
        assert_eq!(known.touches[0].units, 5.0, "3 KB before + 1.5 KB set");
        let put = json!({"TableName": "orders", "Item": {"pk": {"S": "USER#u"}, "sk": {"S": "ORDER#2"}, "x": {"S": "y"}}});
        assert_eq!(
            whole_items("PutItem", &put, &json!({}), &schemas()),
            vec![("orders/USER#u/ORDER#2".to_owned(), 2 + 6 + 2 + 7 + 1 + 1)]
        );
    }

    #[test]
    fn conflicts_follow_the_developer_guide() {
        assert!(Kind::SingleWrite.conflicts_with(Kind::TransactWrite));
        assert!(!Kind::SingleWrite.conflicts_with(Kind::SingleWrite));
        assert!(Kind::TransactWrite.conflicts_with(Kind::TransactGet));
        assert!(!Kind::TransactWrite.conflicts_with(Kind::SingleWrite));
        assert!(Kind::TransactGet.conflicts_with(Kind::SingleWrite));
        assert!(!Kind::Read.conflicts_with(Kind::TransactWrite));
    }
}
