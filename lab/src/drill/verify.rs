//! After a drill: every write k6 saw acknowledged must be in the table, in a state at least
//! as advanced as the acknowledgement said.

use std::collections::{HashMap, HashSet};

use order_service::domain::{Order, OrderStatus};
use serde_json::Value;

/// One `LEDGER {json}` line of k6: an acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LedgerEntry {
    pub op: String,
    pub user_id: String,
    pub order_id: String,
    pub status: String,
    pub total_amount: Option<i64>,
}

impl LedgerEntry {
    pub(super) fn from_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            op: text("op")?,
            user_id: text("userId")?,
            order_id: text("orderId")?,
            status: text("status").unwrap_or_default(),
            total_amount: value.get("totalAmount").and_then(Value::as_i64),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LedgerCheck {
    pub entries: usize,
    pub creates: usize,
    pub pays: usize,
    pub cancels: usize,
    /// Acknowledged writes the table does not reflect, one line each.
    pub lost: Vec<String>,
}

impl LedgerCheck {
    pub(crate) fn lost_count(&self) -> usize {
        self.lost.len()
    }
}

/// Compares the acknowledged writes with the orders in the table:
/// - a 201 create: the order exists, for that user, with that total;
/// - a 200 pay: the order is PAID, or CANCELLED if a cancel of it was acknowledged too;
/// - a 200 cancel: the order is CANCELLED.
pub(super) fn check_ledger(entries: &[LedgerEntry], orders: &[Order]) -> LedgerCheck {
    let by_id: HashMap<String, &Order> = orders
        .iter()
        .map(|order| (order.order_id.to_string(), order))
        .collect();
    let cancelled: HashSet<&str> = entries
        .iter()
        .filter(|entry| entry.op == "cancel")
        .map(|entry| entry.order_id.as_str())
        .collect();
    let mut check = LedgerCheck {
        entries: entries.len(),
        ..LedgerCheck::default()
    };
    for entry in entries {
        match entry.op.as_str() {
            "create" => check.creates += 1,
            "pay" => check.pays += 1,
            "cancel" => check.cancels += 1,
            _ => {}
        }
        let Some(order) = by_id.get(&entry.order_id) else {
            check.lost.push(format!(
                "{} of order {} ({}) was acknowledged, but the order is not in the table",
                entry.op, entry.order_id, entry.user_id
            ));
            continue;
        };
        if order.user_id.as_str() != entry.user_id {
            check.lost.push(format!(
                "order {} was acknowledged for {} but belongs to {}",
                entry.order_id, entry.user_id, order.user_id
            ));
            continue;
        }
        if let Some(total) = entry.total_amount {
            if order.total_amount.won() != total {
                check.lost.push(format!(
                    "order {} was acknowledged with total {total} but holds {}",
                    entry.order_id,
                    order.total_amount.won()
                ));
                continue;
            }
        }
        let ok = match entry.op.as_str() {
            "create" => true,
            "pay" => {
                order.status == OrderStatus::Paid
                    || (order.status == OrderStatus::Cancelled
                        && cancelled.contains(entry.order_id.as_str()))
            }
            "cancel" => order.status == OrderStatus::Cancelled,
            _ => true,
        };
        if !ok {
            check.lost.push(format!(
                "{} of order {} was acknowledged ({}), but the order is {}",
                entry.op,
                entry.order_id,
                entry.status,
                order.status.as_str()
            ));
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_service::domain::{
        Money, OrderId, OrderLine, ProductId, Quantity, Timestamp, UserId,
    };

    fn order(id: &str, user: &str, status: OrderStatus) -> Order {
        let created = Timestamp::parse("2026-11-25T21:50:00.000Z").expect("timestamp");
        Order {
            order_id: OrderId::parse(id).expect("order id"),
            user_id: UserId::parse(user).expect("user id"),
            status,
            items: vec![OrderLine {
                product_id: ProductId::parse("product-1").expect("product"),
                quantity: Quantity::new(1).expect("quantity"),
                unit_price: Money::new(1_000).expect("money"),
            }],
            total_amount: Money::new(1_000).expect("money"),
            created_at: created,
            paid_at: (status == OrderStatus::Paid).then_some(created),
            refunded_items: vec![],
            refunded_amount: Money::ZERO,
            refunded_at: None,
            cancelled_at: (status == OrderStatus::Cancelled).then_some(created),
        }
    }

    fn entry(op: &str, id: &str, status: &str) -> LedgerEntry {
        LedgerEntry {
            op: op.to_owned(),
            user_id: "user-1".to_owned(),
            order_id: id.to_owned(),
            status: status.to_owned(),
            total_amount: Some(1_000),
        }
    }

    const A: &str = "01J0000000000000000000000A";
    const B: &str = "01J0000000000000000000000B";
    const C: &str = "01J0000000000000000000000C";

    #[test]
    fn a_table_that_reflects_every_acknowledged_write_loses_nothing() {
        // GIVEN acknowledged create+pay of A, create+cancel of B, create of C (later paid
        // by a write whose answer was lost)
        let ledger = vec![
            entry("create", A, "CREATED"),
            entry("pay", A, "PAID"),
            entry("create", B, "CREATED"),
            entry("cancel", B, "CANCELLED"),
            entry("create", C, "CREATED"),
        ];
        let table = vec![
            order(A, "user-1", OrderStatus::Paid),
            order(B, "user-1", OrderStatus::Cancelled),
            order(C, "user-1", OrderStatus::Paid),
        ];
        // WHEN they are compared
        let check = check_ledger(&ledger, &table);
        // THEN nothing is lost and the writes are counted
        assert!(check.lost.is_empty(), "{:?}", check.lost);
        assert_eq!((check.creates, check.pays, check.cancels), (3, 1, 1));
    }

    #[test]
    fn a_missing_order_or_a_rolled_back_payment_is_a_lost_write() {
        // GIVEN A acknowledged as paid but CREATED in the table, and B acknowledged but absent
        let ledger = vec![entry("pay", A, "PAID"), entry("create", B, "CREATED")];
        let table = vec![order(A, "user-1", OrderStatus::Created)];
        // WHEN they are compared
        let check = check_ledger(&ledger, &table);
        // THEN both are reported
        assert_eq!(check.lost_count(), 2, "{:?}", check.lost);
    }

    #[test]
    fn a_paid_order_may_only_be_cancelled_by_an_acknowledged_cancel() {
        // GIVEN a payment of A acknowledged, and A CANCELLED without any acknowledged cancel
        let ledger = vec![entry("pay", A, "PAID")];
        let table = vec![order(A, "user-1", OrderStatus::Cancelled)];
        // WHEN compared THEN the payment counts as lost
        assert_eq!(check_ledger(&ledger, &table).lost_count(), 1);
        // WHEN the cancel was acknowledged too THEN it is fine
        let ledger = vec![entry("pay", A, "PAID"), entry("cancel", A, "CANCELLED")];
        assert!(check_ledger(&ledger, &table).lost.is_empty());
    }

    #[test]
    fn ledger_lines_parse_from_k6_json() {
        // GIVEN a ledger line as k6 prints it
        let value: Value = serde_json::from_str(
            r#"{"op":"create","userId":"user-7","orderId":"01J0000000000000000000000A","status":"CREATED","totalAmount":1200}"#,
        )
        .expect("json");
        // WHEN parsed THEN every field is kept
        let parsed = LedgerEntry::from_json(&value).expect("entry");
        assert_eq!(parsed.user_id, "user-7");
        assert_eq!(parsed.total_amount, Some(1_200));
    }
}
