//! The order aggregate: its lines at the prices they were placed at, its lifecycle (CREATED ->
//! PAID -> CANCELLED, or CREATED -> CANCELLED; a paid order may be refunded in part first), and
//! what it holds of the world at any moment (stock reserved, money paid), which the
//! conservation rule (`ledger`) sums.
//!
//! How a new order is priced is decided here (`Order::place`); how an existing one may change
//! is decided in `change`. The store only writes what was decided.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::{
    Money, NewOrder, OrderId, ProductId, Quantity, Refusal, ShardCounts, Timestamp, UserId,
};

/// Where an order is in its lifecycle. States only move forwards, which bounds every retry
/// loop over an order's state.
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

/// Units of one product: what a change gives back to stock, or what an order has refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Units {
    pub product_id: ProductId,
    pub quantity: Quantity,
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
    /// The units refunded so far, per product (a paid order's partial refunds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunded_items: Vec<Units>,
    /// The money refunded so far.
    #[serde(default, skip_serializing_if = "Money::is_zero")]
    pub refunded_amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<Timestamp>,
}

/// An order as it stands in the store, with its revision: how many changes it has had. Every
/// change is written on condition that the revision is still the one it was decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub order: Order,
    pub revision: u64,
    /// The shard counts of its sharded products as its create saw them: where a cancel or a
    /// refund spreads the units it gives back (empty for an order of ordinary products).
    pub shard_counts: ShardCounts,
}

/// Why a new order cannot be placed at the current prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// A business refusal (a product that does not exist): the key keeps it as its answer.
    Refused(Refusal),
    /// The request itself is unacceptable (a total beyond what money can hold).
    Invalid(ValidationError),
}

/// What an order holds of the world: the units of each product it keeps from stock, and the
/// money it took from its user's balance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holdings {
    pub units: Vec<(ProductId, u32)>,
    pub money: Money,
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
            refunded_items: Vec::new(),
            refunded_amount: Money::ZERO,
            refunded_at: None,
        })
    }

    /// The units of `product_id` refunded so far.
    pub fn refunded_units(&self, product_id: &ProductId) -> u32 {
        self.refunded_items
            .iter()
            .filter(|units| units.product_id == *product_id)
            .map(|units| units.quantity.get())
            .sum()
    }

    /// The units of each line still held: ordered, less refunded.
    pub fn units_held(&self) -> Vec<(ProductId, u32)> {
        self.items
            .iter()
            .map(|line| {
                let held = line
                    .quantity
                    .get()
                    .saturating_sub(self.refunded_units(&line.product_id));
                (line.product_id.clone(), held)
            })
            .collect()
    }

    /// What the order holds of the world: stock while CREATED or PAID (less what was
    /// refunded), money while PAID (less what was refunded).
    pub fn holdings(&self) -> Holdings {
        Holdings {
            units: if self.status.holds_stock() {
                self.units_held()
            } else {
                Vec::new()
            },
            money: if self.status == OrderStatus::Paid {
                self.total_amount
                    .checked_sub(self.refunded_amount)
                    .unwrap_or(Money::ZERO)
            } else {
                Money::ZERO
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn placed(
        lines: &[(&str, u64)],
        prices: &[(&str, i64)],
    ) -> Result<Order, PlacementError> {
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
    fn a_created_order_holds_stock_and_a_paid_one_money_too() {
        let mut order = placed(&[("product-1", 2)], &[("product-1", 1_000)]).unwrap();
        let product = ProductId::parse("product-1").unwrap();
        assert_eq!(
            order.holdings(),
            Holdings {
                units: vec![(product.clone(), 2)],
                money: Money::ZERO
            }
        );
        order.status = OrderStatus::Paid;
        order.refunded_items = vec![Units {
            product_id: product.clone(),
            quantity: Quantity::new(1).unwrap(),
        }];
        order.refunded_amount = Money::new(1_000).unwrap();
        assert_eq!(
            order.holdings(),
            Holdings {
                units: vec![(product, 1)],
                money: Money::new(1_000).unwrap()
            }
        );
        order.status = OrderStatus::Cancelled;
        assert_eq!(order.holdings(), Holdings::default());
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
