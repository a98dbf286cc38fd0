//! The order aggregate and its lifecycle: CREATED -> PAID -> CANCELLED, or CREATED -> CANCELLED.
//! The order decides: how a new order is priced, whether a payment or a cancellation may
//! happen, and what each moves (money, stock). The store only writes a decided change
//! atomically, conditioned on the state it was decided from.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{Money, NewOrder, OrderId, ProductId, Quantity, Refusal, UserId, ValidationError};

/// Where an order is in its lifecycle. States only move forwards, which is what bounds every
/// retry loop over an order's state: at most two transitions can ever race a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Paid,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order still holds its stock reservation.
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Created | OrderStatus::Paid)
    }
}

/// One line of an order, with the unit price snapshotted when the order was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_times(self.quantity)
    }
}

/// An instant in UTC, written as RFC 3339 with millisecond precision
/// (`2026-11-25T21:50:00.123Z`), so that its text sorts in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let utc = instant.to_offset(UtcOffset::UTC);
        let millis = utc.millisecond();
        // Truncating to milliseconds keeps the text form and the value in step.
        Self(utc.replace_millisecond(millis).unwrap_or(utc))
    }

    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("invalid timestamp {value:?}"))
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total_amount: Money,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Timestamp>,
}

/// Why a new order cannot be placed at the current prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// A business refusal (a product that does not exist): the key keeps it as its answer.
    Refused(Refusal),
    /// The request itself is unacceptable (a total beyond what money can hold).
    Invalid(ValidationError),
}

/// How a change moves the user's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceMove {
    Untouched,
    /// A payment: the balance must cover it.
    Debit(Money),
    /// The cancellation of a paid order.
    Refund(Money),
}

/// A change the order allows, for the store to write in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The status the order must still have when the change is written: the write's
    /// condition, so that a concurrent change makes this one fail instead of both applying.
    pub from: OrderStatus,
    /// The order after the change.
    pub order: Order,
    pub balance: BalanceMove,
    /// Whether the lines' stock goes back to their products.
    pub restock: bool,
}

/// The changes an existing order allows: pay-order and cancel-order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Pay,
    Cancel,
}

impl Change {
    /// The operation's name, as in logs, metrics and idempotency fingerprints.
    pub const fn operation(self) -> &'static str {
        match self {
            Change::Pay => "pay-order",
            Change::Cancel => "cancel-order",
        }
    }
}

impl Order {
    /// The sum of the line totals, or `None` if it would overflow.
    pub fn compute_total(items: &[OrderLine]) -> Option<Money> {
        items
            .iter()
            .try_fold(Money::ZERO, |sum, line| sum.checked_add(line.line_total()?))
    }

    /// A new order for `user_id` from `request`, each line at its product's current price
    /// (`prices`), created at `at`.
    pub fn place(
        order_id: OrderId,
        user_id: UserId,
        request: &NewOrder,
        prices: &HashMap<ProductId, Money>,
        at: Timestamp,
    ) -> Result<Order, PlacementError> {
        let items = request
            .lines()
            .iter()
            .map(|line| {
                let unit_price = prices.get(&line.product_id).copied().ok_or_else(|| {
                    PlacementError::Refused(Refusal::ProductNotFound {
                        product_id: line.product_id.clone(),
                    })
                })?;
                Ok(OrderLine {
                    product_id: line.product_id.clone(),
                    quantity: line.quantity,
                    unit_price,
                })
            })
            .collect::<Result<Vec<_>, PlacementError>>()?;
        let total_amount = Order::compute_total(&items).ok_or_else(|| {
            PlacementError::Invalid(ValidationError::new("the order total is too large"))
        })?;
        Ok(Order {
            order_id,
            user_id,
            status: OrderStatus::Created,
            items,
            total_amount,
            created_at: at,
            paid_at: None,
            cancelled_at: None,
        })
    }

    /// What `change` at `at` comes to: the transition to write, or the refusal.
    pub fn decide(&self, change: Change, at: Timestamp) -> Result<Transition, Refusal> {
        match change {
            Change::Pay => self.pay(at),
            Change::Cancel => self.cancel(at),
        }
    }

    /// Paying the order at `at`: only a CREATED order can be paid, and it debits its total.
    fn pay(&self, at: Timestamp) -> Result<Transition, Refusal> {
        match self.status {
            OrderStatus::Paid => Err(Refusal::OrderAlreadyPaid),
            OrderStatus::Cancelled => Err(Refusal::OrderCancelled),
            OrderStatus::Created => Ok(Transition {
                from: OrderStatus::Created,
                order: Order {
                    status: OrderStatus::Paid,
                    paid_at: Some(at),
                    ..self.clone()
                },
                balance: BalanceMove::Debit(self.total_amount),
                restock: false,
            }),
        }
    }

    /// Cancelling the order at `at`: a CREATED or PAID order can be cancelled; its stock goes
    /// back, and a paid order is refunded.
    fn cancel(&self, at: Timestamp) -> Result<Transition, Refusal> {
        let balance = match self.status {
            OrderStatus::Cancelled => return Err(Refusal::OrderCancelled),
            OrderStatus::Created => BalanceMove::Untouched,
            OrderStatus::Paid => BalanceMove::Refund(self.total_amount),
        };
        Ok(Transition {
            from: self.status,
            order: Order {
                status: OrderStatus::Cancelled,
                cancelled_at: Some(at),
                ..self.clone()
            },
            balance,
            restock: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_sortable_utc_milliseconds() {
        let parsed = Timestamp::parse("2026-11-25T23:50:00.123456+02:00").unwrap();
        assert_eq!(parsed.to_string(), "2026-11-25T21:50:00.123Z");
        assert_eq!(Timestamp::parse(&parsed.to_string()), Some(parsed));
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn totals_sum_lines_and_detect_overflow() {
        let line = |price: i64, quantity: u64| OrderLine {
            product_id: ProductId::parse("product-1").unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(price).unwrap(),
        };
        assert_eq!(
            Order::compute_total(&[line(1_000, 2), line(2_500, 1)]),
            Some(Money::new(4_500).unwrap())
        );
        assert_eq!(Order::compute_total(&[line(i64::MAX, 2)]), None);
    }

    fn placed(lines: &[(&str, u64)], prices: &[(&str, i64)]) -> Result<Order, PlacementError> {
        let request: super::super::CreateOrderRequest = serde_json::from_value(serde_json::json!({
            "items": lines
                .iter()
                .map(|(product, quantity)| serde_json::json!({"productId": product, "quantity": quantity}))
                .collect::<Vec<_>>()
        }))
        .unwrap();
        let prices = prices
            .iter()
            .map(|(product, price)| {
                (
                    ProductId::parse(product).unwrap(),
                    Money::new(*price).unwrap(),
                )
            })
            .collect();
        Order::place(
            OrderId::random(),
            UserId::parse("user-1").unwrap(),
            &NewOrder::try_from(request).unwrap(),
            &prices,
            Timestamp::parse("2026-11-29T00:00:00Z").unwrap(),
        )
    }

    #[test]
    fn an_order_is_priced_at_the_current_prices() {
        let order = placed(
            &[("product-1", 2), ("product-2", 1)],
            &[("product-1", 1_000), ("product-2", 2_500), ("product-3", 9)],
        )
        .unwrap();
        assert_eq!(order.status, OrderStatus::Created);
        assert_eq!(order.total_amount, Money::new(4_500).unwrap());
        assert_eq!(order.items[0].unit_price, Money::new(1_000).unwrap());
        assert_eq!(
            placed(&[("product-9", 1)], &[("product-1", 1_000)]),
            Err(PlacementError::Refused(Refusal::ProductNotFound {
                product_id: ProductId::parse("product-9").unwrap()
            }))
        );
        assert!(matches!(
            placed(&[("product-1", 40)], &[("product-1", i64::MAX / 2)]),
            Err(PlacementError::Invalid(_))
        ));
    }

    #[test]
    fn paying_is_decided_by_the_status() {
        let order = placed(&[("product-1", 2)], &[("product-1", 1_000)]).unwrap();
        let at = Timestamp::parse("2026-11-29T01:00:00Z").unwrap();
        let payment = order
            .decide(Change::Pay, at)
            .expect("a created order can be paid");
        assert_eq!(payment.from, OrderStatus::Created);
        assert_eq!(payment.order.status, OrderStatus::Paid);
        assert_eq!(payment.order.paid_at, Some(at));
        assert_eq!(
            payment.balance,
            BalanceMove::Debit(Money::new(2_000).unwrap())
        );
        assert!(!payment.restock);
        let paid = payment.order;
        assert_eq!(paid.decide(Change::Pay, at), Err(Refusal::OrderAlreadyPaid));
        let cancellation = paid
            .decide(Change::Cancel, at)
            .expect("a paid order can be cancelled");
        assert_eq!(cancellation.from, OrderStatus::Paid);
        assert_eq!(
            cancellation.balance,
            BalanceMove::Refund(Money::new(2_000).unwrap())
        );
        assert!(cancellation.restock);
        let cancelled = cancellation.order;
        assert_eq!(
            cancelled.decide(Change::Pay, at),
            Err(Refusal::OrderCancelled)
        );
        assert_eq!(
            cancelled.decide(Change::Cancel, at),
            Err(Refusal::OrderCancelled)
        );
        // An unpaid order is cancelled without touching the balance.
        let unpaid = order
            .decide(Change::Cancel, at)
            .expect("a created order can be cancelled");
        assert_eq!(unpaid.balance, BalanceMove::Untouched);
    }

    #[test]
    fn statuses_use_the_api_spelling() {
        assert_eq!(
            serde_json::to_string(&OrderStatus::Paid).unwrap(),
            "\"PAID\""
        );
        assert!(OrderStatus::Paid.holds_stock());
        assert!(!OrderStatus::Cancelled.holds_stock());
    }
}
