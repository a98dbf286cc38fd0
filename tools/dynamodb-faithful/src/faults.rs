//! Faults injected on purpose, beside production's own behaviour: late answers (the ambiguous
//! commit idempotency keys exist for), cancellations answered without forwarding, an outage,
//! and a planted bug (a condition stripped off a write) that a history checker must catch.
//! They can be changed while the proxy runs, through `Handle::update_faults` or
//! `PUT /_faithful/faults`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the next transactions are answered with, instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injected {
    /// `TransactionCanceledException` with `TransactionConflict` on the first item.
    Conflict,
    /// `TransactionCanceledException` with `ThrottlingError` on the first item.
    Throttling,
}

/// How the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outage {
    /// Every connection is closed as soon as it is accepted.
    Refuse,
    /// Requests are read and never answered.
    Hang,
}

/// The faults in force. The default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Milliseconds a request spends inside the store before it is applied: a slow request,
    /// holding its items (and its transaction token) meanwhile.
    pub request_delay_ms: u64,
    /// Milliseconds by which an answer is held back after DynamoDB Local gave it: the write
    /// has committed, only its answer is late.
    pub response_delay_ms: u64,
    /// The operations the two delays apply to (e.g. `["TransactWriteItems"]`); empty: all.
    pub delay_only: Vec<String>,
    /// Answer this many of the next `TransactWriteItems` with `inject`, without forwarding.
    pub inject_next: u64,
    pub inject: Option<Injected>,
    pub outage: Option<Outage>,
    /// A planted bug: transaction updates of items whose sort key starts with this prefix lose
    /// their condition (e.g. `ORDER#`: a payment or cancel no longer checks the order's status).
    pub strip_conditions_on: Option<String>,
}

impl Faults {
    /// Whether the delays apply to a request of `operation`.
    pub fn delays(&self, operation: &str) -> bool {
        self.delay_only.is_empty() || self.delay_only.iter().any(|only| only == operation)
    }

    /// Late answers to `operation` only (empty: to every request), `delay_ms` late.
    pub fn late_answers(operation: Option<&str>, delay_ms: u64) -> Self {
        Self {
            response_delay_ms: delay_ms,
            delay_only: operation.map(str::to_owned).into_iter().collect(),
            ..Self::default()
        }
    }

    /// The next `count` transactions answered with `kind`, without being forwarded.
    pub fn injecting(kind: Injected, count: u64) -> Self {
        Self {
            inject: Some(kind),
            inject_next: count,
            ..Self::default()
        }
    }
}

/// The planted bug: an update loses its condition, and the placeholders only it used.
fn strip_condition(update: &mut Map<String, Value>) {
    if update.remove("ConditionExpression").is_none() {
        return;
    }
    update.remove("ReturnValuesOnConditionCheckFailure");
    let expression = update
        .get("UpdateExpression")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    for field in ["ExpressionAttributeNames", "ExpressionAttributeValues"] {
        if let Some(Value::Object(placeholders)) = update.get_mut(field) {
            placeholders.retain(|name, _| {
                expression.match_indices(name.as_str()).any(|(at, _)| {
                    !expression[at + name.len()..]
                        .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            });
            if placeholders.is_empty() {
                update.remove(field);
            }
        }
    }
}

/// The planted bug at work (`Faults::strip_conditions_on`): every update of a transaction whose
/// item's sort key starts with `prefix` loses its condition.
pub(crate) fn strip_conditions(body: &mut Value, prefix: &str) {
    let Some(items) = body.get_mut("TransactItems").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in items {
        let Some(update) = entry.get_mut("Update").and_then(Value::as_object_mut) else {
            continue;
        };
        let matches = update
            .get("Key")
            .and_then(|key| key.pointer("/sk/S"))
            .and_then(Value::as_str)
            .is_some_and(|sk| sk.starts_with(prefix));
        if matches {
            strip_condition(update);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_planted_bug_strips_the_condition_and_its_placeholders() {
        let mut body = json!({"TransactItems": [
            {"Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "USER#u"}, "sk": {"S": "ORDER#1"}},
                "UpdateExpression": "SET #status = :status, cancelledAt = :at",
                "ConditionExpression": "#status = :expected",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":status": {"S": "CANCELLED"}, ":expected": {"S": "PAID"}, ":at": {"S": "x"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
            }},
            {"Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "PRODUCT#p"}, "sk": {"S": "PRODUCT"}},
                "UpdateExpression": "SET stock = stock + :q",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":q": {"N": "1"}}
            }}
        ]});
        strip_conditions(&mut body, "ORDER#");
        let order = &body["TransactItems"][0]["Update"];
        assert!(order.get("ConditionExpression").is_none());
        assert_eq!(
            order["ExpressionAttributeNames"],
            json!({"#status": "status"})
        );
        assert!(order["ExpressionAttributeValues"]
            .get(":expected")
            .is_none());
        assert!(order["ExpressionAttributeValues"].get(":status").is_some());
        let product = &body["TransactItems"][1]["Update"];
        assert!(
            product.get("ConditionExpression").is_some(),
            "other items keep theirs"
        );
    }
}
