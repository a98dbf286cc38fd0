//! The consumed capacity of an answer: which operations report it, the units it reports, and
//! a transaction's units corrected where DynamoDB Local under-reports a table's own.

use serde_json::{Map, Value};

use crate::plan::Plan;

/// Which operations report `ConsumedCapacity` when asked.
pub(super) fn reports_capacity(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem"
            | "UpdateItem"
            | "DeleteItem"
            | "GetItem"
            | "Query"
            | "Scan"
            | "BatchGetItem"
            | "BatchWriteItem"
            | "TransactWriteItems"
            | "TransactGetItems"
    )
}

/// The units a DynamoDB answer reports consumed (every table and index summed).
pub(super) fn consumed_units(answer: &Value) -> Option<f64> {
    match answer.get("ConsumedCapacity")? {
        Value::Array(entries) => Some(
            entries
                .iter()
                .filter_map(|entry| entry.get("CapacityUnits")?.as_f64())
                .sum(),
        ),
        entry => entry.get("CapacityUnits")?.as_f64(),
    }
}

/// What one table's entry of a `ConsumedCapacity` reports: the table's own units and its
/// indexes' (the entry's total less the table's, when the answer breaks it down).
fn entry_units(entry: &Value) -> (f64, f64) {
    let total = entry
        .get("CapacityUnits")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    match entry
        .pointer("/Table/CapacityUnits")
        .and_then(Value::as_f64)
    {
        Some(table) => (table, (total - table).max(0.0)),
        None => (total, 0.0),
    }
}

/// A transaction's units per table, corrected where DynamoDB Local under-reports: the table's
/// own units at least what its items cost one by one, plus its indexes' units as reported (a
/// put of an indexed item writes the index too). `(table, corrected table units, total)`.
fn corrected_transaction_entries(answer: &Value, plan: &Plan) -> Vec<(String, f64, f64)> {
    let entries = match answer.get("ConsumedCapacity") {
        Some(Value::Array(entries)) => entries.iter().collect(),
        Some(entry) => vec![entry],
        None => Vec::new(),
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let table = entry.get("TableName").and_then(Value::as_str)?;
            let expected: f64 = plan
                .touches
                .iter()
                .filter(|touch| touch.table == table)
                .map(|touch| touch.units)
                .sum();
            let (own, indexes) = entry_units(entry);
            let own = own.max(expected);
            Some((table.to_owned(), own, own + indexes))
        })
        .collect()
}

/// A transaction's units, corrected (`corrected_transaction_entries`), summed over tables.
pub(super) fn transaction_units(answer: &Value, plan: &Plan) -> Option<f64> {
    answer.get("ConsumedCapacity")?;
    Some(
        corrected_transaction_entries(answer, plan)
            .iter()
            .map(|(_, _, total)| total)
            .sum(),
    )
}

/// Raises each table's reported units of a transaction to what its items cost one by one,
/// where DynamoDB Local reported less, keeping its indexes' units. Whether anything changed.
pub(super) fn correct_transaction_capacity(answer: &mut Map<String, Value>, plan: &Plan) -> bool {
    let corrected = corrected_transaction_entries(&Value::Object(answer.clone()), plan);
    let Some(Value::Array(entries)) = answer.get_mut("ConsumedCapacity") else {
        return false;
    };
    let mut changed = false;
    for entry in entries {
        let Some((_, own, total)) = corrected.iter().find(|(table, _, _)| {
            Some(table.as_str()) == entry.get("TableName").and_then(Value::as_str)
        }) else {
            continue;
        };
        let reported = entry
            .get("CapacityUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if *total > reported {
            entry["CapacityUnits"] = Value::from(*total);
            if let Some(table_units) = entry.pointer_mut("/Table/CapacityUnits") {
                *table_units = Value::from(*own);
            }
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Kind;
    use serde_json::json;

    #[test]
    fn a_transactions_table_units_are_corrected_and_its_index_units_kept() {
        let touch = |units: f64| crate::plan::Touch {
            table: "t".to_owned(),
            item: None,
            partition: None,
            units,
            written: None,
        };
        let plan = Plan {
            operation: "TransactWriteItems".to_owned(),
            kind: Kind::TransactWrite,
            touches: vec![touch(2.0), touch(2.0), touch(2.0)],
            token: None,
        };
        // DynamoDB Local: a put of an indexed item and two updates, the table under-reported.
        let mut answer = json!({"ConsumedCapacity": [{
            "TableName": "t",
            "CapacityUnits": 6.0,
            "Table": {"CapacityUnits": 4.0},
            "LocalSecondaryIndexes": {"byCreatedAt": {"CapacityUnits": 2.0}}
        }]});
        assert_eq!(transaction_units(&answer, &plan), Some(8.0));
        let object = answer.as_object_mut().unwrap();
        assert!(correct_transaction_capacity(object, &plan));
        assert_eq!(answer["ConsumedCapacity"][0]["CapacityUnits"], json!(8.0));
        assert_eq!(
            answer["ConsumedCapacity"][0]["Table"]["CapacityUnits"],
            json!(6.0)
        );
        // Without a breakdown (a client that asked for TOTAL) the total is raised as before.
        let total = json!({"ConsumedCapacity": [{"TableName": "t", "CapacityUnits": 2.0}]});
        assert_eq!(transaction_units(&total, &plan), Some(6.0));
    }

    #[test]
    fn consumed_units_sum_every_table() {
        assert_eq!(
            consumed_units(
                &json!({"ConsumedCapacity": [{"CapacityUnits": 2.0}, {"CapacityUnits": 4.0}]})
            ),
            Some(6.0)
        );
        assert_eq!(
            consumed_units(&json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}})),
            Some(0.5)
        );
        assert_eq!(consumed_units(&json!({})), None);
    }
}
