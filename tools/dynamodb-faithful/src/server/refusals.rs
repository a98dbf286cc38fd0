//! How the proxy refuses what production would refuse: a conflicting transaction
//! (`TransactionCanceled` with a reason per item, or `TransactionConflict`), a throttled request,
//! and a batch's throttled keys set aside as unprocessed; each refusal counted and logged.

use std::collections::HashSet;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Map, Value};

use super::{locked, Shared};
use crate::events::Refused;
use crate::plan::{Kind, Plan};
use crate::protocol::{self, Reason};

/// The touches of a batch that were admitted, the rest set aside as unprocessed: returns the
/// request to forward (or `None` when nothing is left) and the unprocessed part.
pub(super) fn split_batch(
    operation: &str,
    body: &Value,
    refused: &HashSet<usize>,
) -> (Option<Value>, Value) {
    let mut forwarded = body.clone();
    let mut unprocessed = Map::new();
    let mut index = 0;
    let mut anything_left = false;
    if let Some(requests) = forwarded
        .get_mut("RequestItems")
        .and_then(Value::as_object_mut)
    {
        for (table, request) in requests.iter_mut() {
            let list = if operation == "BatchGetItem" {
                request.get_mut("Keys").and_then(Value::as_array_mut)
            } else {
                request.as_array_mut()
            };
            let Some(list) = list else { continue };
            let mut kept = Vec::new();
            let mut set_aside = Vec::new();
            for entry in list.drain(..) {
                if refused.contains(&index) {
                    set_aside.push(entry);
                } else {
                    kept.push(entry);
                }
                index += 1;
            }
            anything_left |= !kept.is_empty();
            *list = kept;
            if !set_aside.is_empty() {
                let entry = if operation == "BatchGetItem" {
                    let mut copy = body
                        .pointer(&format!(
                            "/RequestItems/{}",
                            table.replace('~', "~0").replace('/', "~1")
                        ))
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new()));
                    copy["Keys"] = Value::Array(set_aside);
                    copy
                } else {
                    Value::Array(set_aside)
                };
                unprocessed.insert(table.clone(), entry);
            }
        }
        requests.retain(|_, request| {
            let list = request
                .get("Keys")
                .and_then(Value::as_array)
                .or_else(|| request.as_array());
            list.is_some_and(|list| !list.is_empty())
        });
    }
    (
        anything_left.then_some(forwarded),
        Value::Object(unprocessed),
    )
}

impl Shared {
    pub(super) fn refuse_conflict(
        &self,
        plan: &Plan,
        conflicts: &[usize],
    ) -> Response<Full<Bytes>> {
        self.stats
            .operation(&plan.operation, |stats| stats.conflicts += 1);
        let item_indices: Vec<usize> = plan
            .touches
            .iter()
            .enumerate()
            .filter(|(_, touch)| touch.item.is_some())
            .map(|(index, _)| index)
            .collect();
        let mut reasons = vec![Reason::None; plan.touches.len()];
        for conflict in conflicts {
            if let Some(index) = item_indices.get(*conflict) {
                reasons[*index] = Reason::TransactionConflict;
                if let Some(partition) = &plan.touches[*index].partition {
                    self.stats
                        .partition(partition, |stats| stats.conflicts += 1);
                }
            }
        }
        // One event per refused request (DynamoDB's TransactionConflict metric), named by its
        // first conflicting item's partition.
        let first = conflicts
            .first()
            .and_then(|conflict| item_indices.get(*conflict))
            .and_then(|index| plan.touches[*index].partition.as_deref());
        self.events
            .record(Refused::Conflict, &plan.operation, first);
        match plan.kind {
            Kind::TransactWrite | Kind::TransactGet => protocol::transaction_cancelled(&reasons),
            _ => protocol::transaction_conflict(),
        }
    }

    pub(super) fn count_throttles(&self, plan: &Plan, indices: impl Iterator<Item = usize>) {
        self.stats
            .operation(&plan.operation, |stats| stats.throttled += 1);
        // One event per throttled request (DynamoDB's ThrottledRequests), named by its first
        // throttled partition.
        let mut recorded = false;
        for index in indices {
            let partition = plan
                .touches
                .get(index)
                .and_then(|touch| touch.partition.as_deref());
            if !recorded {
                self.events
                    .record(Refused::Throttle, &plan.operation, partition);
                recorded = true;
            }
            if let Some(partition) = partition {
                self.stats
                    .partition(partition, |stats| stats.throttled += 1);
            }
        }
    }

    pub(super) fn throttled(&self, plan: &Plan, writes: bool) -> Response<Full<Bytes>> {
        let table = plan
            .touches
            .first()
            .map(|touch| touch.table.clone())
            .unwrap_or_default();
        let arn = locked(&self.tables)
            .get(&table)
            .map(|info| info.arn.clone())
            .unwrap_or_else(|| format!("arn:aws:dynamodb:ddblocal:000000000000:table/{table}"));
        let reason = if writes {
            "TableWriteKeyRangeThroughputExceeded"
        } else {
            "TableReadKeyRangeThroughputExceeded"
        };
        protocol::throttled(reason, &arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_sets_aside_the_refused_keys() {
        let body = json!({"RequestItems": {
            "t": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}, {"pk": {"S": "c"}}], "ConsistentRead": true}
        }});
        let (forwarded, unprocessed) = split_batch("BatchGetItem", &body, &HashSet::from([1]));
        let forwarded = forwarded.unwrap();
        assert_eq!(
            forwarded["RequestItems"]["t"]["Keys"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(unprocessed["t"]["Keys"], json!([{"pk": {"S": "b"}}]));
        assert_eq!(unprocessed["t"]["ConsistentRead"], json!(true));
        let (nothing, _) = split_batch("BatchGetItem", &body, &HashSet::from([0, 1, 2]));
        assert!(nothing.is_none());
    }
}
