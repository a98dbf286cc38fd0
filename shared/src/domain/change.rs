//! The changes an existing order allows, and what each comes to: paying it, cancelling it,
//! refunding part of a paid order. A decision is a `Transition` (the order after the change,
//! the stock it gives back, how it moves the balance, and the revision the order must still be
//! at when it is written) or a `Refusal`. The store writes a transition as one transaction,
//! conditioned on that revision, so a concurrent change makes it fail instead of both applying;
//! the application then reads the order again and decides anew.

use super::{
    give_back, Money, NewOrder, Order, OrderState, OrderStatus, ProductId, Quantity, Refusal,
    StockMove, Timestamp, Units,
};

/// A change to an existing order, with what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Pay,
    Cancel,
    /// Refund these units of a paid order (the create body's shape).
    Refund(NewOrder),
}

/// The kinds of change, for names and for the functions that serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Pay,
    Cancel,
    Refund,
}

impl ChangeKind {
    /// The operation's name, as in logs, metrics and idempotency fingerprints.
    pub const fn operation(self) -> &'static str {
        match self {
            ChangeKind::Pay => "pay-order",
            ChangeKind::Cancel => "cancel-order",
            ChangeKind::Refund => "refund-order",
        }
    }
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::Pay => ChangeKind::Pay,
            Change::Cancel => ChangeKind::Cancel,
            Change::Refund(_) => ChangeKind::Refund,
        }
    }

    /// The operation's name, as in logs, metrics and idempotency fingerprints.
    pub fn operation(&self) -> &'static str {
        self.kind().operation()
    }
}

/// How a change moves the user's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceMove {
    Untouched,
    /// A payment: the balance must cover it.
    Debit(Money),
    /// A cancellation or refund of money paid.
    Refund(Money),
}

/// A change the order allows, for the store to write in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The change this transition makes.
    pub change: ChangeKind,
    /// The write's condition: the order must still be at this revision.
    pub expected_revision: u64,
    /// The order after the change.
    pub order: Order,
    /// Units that go back to their products' stock, each to the shard the domain chose.
    pub restock: Vec<StockMove>,
    pub balance: BalanceMove,
}

impl Transition {
    /// The same transition without giving stock back to `gone` products: they no longer
    /// exist, and their stock has nowhere to go back to.
    pub fn without_restock_of(mut self, gone: &[ProductId]) -> Self {
        self.restock
            .retain(|units| !gone.contains(&units.product_id));
        self
    }

    /// The same transition giving the units of `products` back to their first shard (the
    /// product item): the shard chosen for them was removed by a reshard since the order was
    /// created, and the first shard exists while the product does.
    pub fn restocking_first_shard_of(mut self, products: &[ProductId]) -> Self {
        for units in &mut self.restock {
            if products.contains(&units.product_id) {
                units.shard = 0;
            }
        }
        self
    }
}

impl OrderState {
    /// What `change` at `at` comes to: the transition to write, or the refusal. Units given
    /// back go to a shard picked with `chance` among those the order's create saw.
    pub fn decide(
        &self,
        change: &Change,
        at: Timestamp,
        chance: &mut fastrand::Rng,
    ) -> Result<Transition, Refusal> {
        let order = &self.order;
        let (after, restock, balance) = match (change, order.status) {
            (_, OrderStatus::Cancelled) => return Err(Refusal::OrderCancelled),
            (Change::Pay, OrderStatus::Paid) => return Err(Refusal::OrderAlreadyPaid),
            (Change::Pay, OrderStatus::Created) => (
                Order {
                    status: OrderStatus::Paid,
                    paid_at: Some(at),
                    ..order.clone()
                },
                Vec::new(),
                BalanceMove::Debit(order.total_amount),
            ),
            (Change::Cancel, status) => {
                let refund = match status {
                    OrderStatus::Paid => order
                        .total_amount
                        .checked_sub(order.refunded_amount)
                        .filter(|left| !left.is_zero())
                        .map_or(BalanceMove::Untouched, BalanceMove::Refund),
                    _ => BalanceMove::Untouched,
                };
                (
                    Order {
                        status: OrderStatus::Cancelled,
                        cancelled_at: Some(at),
                        ..order.clone()
                    },
                    held_units(order),
                    refund,
                )
            }
            (Change::Refund(_), OrderStatus::Created) => return Err(Refusal::OrderNotPaid),
            (Change::Refund(lines), OrderStatus::Paid) => refund(order, lines, at)?,
        };
        let restock = restock
            .iter()
            .map(|units| give_back(units, self.shard_counts.of(&units.product_id), chance))
            .collect();
        Ok(Transition {
            change: change.kind(),
            expected_revision: self.revision,
            order: after,
            restock,
            balance,
        })
    }
}

/// The units an order still holds, as stock to give back.
fn held_units(order: &Order) -> Vec<Units> {
    order
        .units_held()
        .into_iter()
        .filter_map(|(product_id, held)| {
            Some(Units {
                product_id,
                quantity: Quantity::new(u64::from(held)).ok()?,
            })
        })
        .collect()
}

/// A partial refund of a paid order: every line must be of a product the order holds, for no
/// more units than remain unrefunded; the money is those units at the order's prices.
fn refund(
    order: &Order,
    lines: &NewOrder,
    at: Timestamp,
) -> Result<(Order, Vec<Units>, BalanceMove), Refusal> {
    let mut after = order.clone();
    let mut amount = Money::ZERO;
    let mut restock = Vec::with_capacity(lines.lines().len());
    for line in lines.lines() {
        let exceeds = || Refusal::RefundExceedsOrder {
            product_id: line.product_id.clone(),
        };
        let ordered = order
            .items
            .iter()
            .find(|item| item.product_id == line.product_id)
            .ok_or_else(exceeds)?;
        let refunded = order.refunded_units(&line.product_id);
        let left = ordered.quantity.get().saturating_sub(refunded);
        if line.quantity.get() > left {
            return Err(exceeds());
        }
        amount = ordered
            .unit_price
            .checked_times(line.quantity)
            .and_then(|money| amount.checked_add(money))
            .ok_or_else(exceeds)?;
        let total =
            Quantity::new(u64::from(refunded + line.quantity.get())).map_err(|_| exceeds())?;
        after
            .refunded_items
            .retain(|units| units.product_id != line.product_id);
        after.refunded_items.push(Units {
            product_id: line.product_id.clone(),
            quantity: total,
        });
        restock.push(Units {
            product_id: line.product_id.clone(),
            quantity: line.quantity,
        });
    }
    after
        .refunded_items
        .sort_by(|a, b| a.product_id.cmp(&b.product_id));
    after.refunded_amount = order
        .refunded_amount
        .checked_add(amount)
        .filter(|refunded| *refunded <= order.total_amount)
        .ok_or(Refusal::RefundExceedsOrder {
            product_id: lines.lines()[0].product_id.clone(),
        })?;
    after.refunded_at = Some(at);
    Ok((after, restock, BalanceMove::Refund(amount)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::tests::placed;
    use crate::domain::{ShardCount, ShardCounts};

    fn at() -> Timestamp {
        Timestamp::parse("2026-11-29T01:00:00Z").unwrap()
    }

    fn state(order: Order, revision: u64) -> OrderState {
        OrderState {
            order,
            revision,
            shard_counts: ShardCounts::default(),
        }
    }

    fn chance() -> fastrand::Rng {
        fastrand::Rng::with_seed(11)
    }

    /// Units given back to the first shard, as every unsharded product's are.
    fn given(product: &str, quantity: u64) -> StockMove {
        StockMove {
            product_id: ProductId::parse(product).unwrap(),
            shard: 0,
            quantity: Quantity::new(quantity).unwrap(),
        }
    }

    fn lines(lines: &[(&str, u64)]) -> NewOrder {
        let request: crate::domain::CreateOrderRequest = serde_json::from_value(serde_json::json!({
            "items": lines.iter().map(|(p, q)| serde_json::json!({"productId": p, "quantity": q})).collect::<Vec<_>>()
        }))
        .unwrap();
        NewOrder::try_from(request).unwrap()
    }

    fn units(product: &str, quantity: u64) -> Units {
        Units {
            product_id: ProductId::parse(product).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
        }
    }

    #[test]
    fn paying_and_cancelling_are_decided_by_the_status_at_a_revision() {
        let order = placed(&[("product-1", 2)], &[("product-1", 1_000)]).unwrap();
        let payment = state(order.clone(), 0)
            .decide(&Change::Pay, at(), &mut chance())
            .unwrap();
        assert_eq!(payment.expected_revision, 0);
        assert_eq!(payment.order.status, OrderStatus::Paid);
        assert_eq!(payment.order.paid_at, Some(at()));
        assert_eq!(
            payment.balance,
            BalanceMove::Debit(Money::new(2_000).unwrap())
        );
        assert!(payment.restock.is_empty());
        let paid = state(payment.order, 1);
        assert_eq!(
            paid.decide(&Change::Pay, at(), &mut chance()),
            Err(Refusal::OrderAlreadyPaid)
        );
        let cancellation = paid.decide(&Change::Cancel, at(), &mut chance()).unwrap();
        assert_eq!(cancellation.expected_revision, 1);
        assert_eq!(
            cancellation.balance,
            BalanceMove::Refund(Money::new(2_000).unwrap())
        );
        assert_eq!(cancellation.restock, vec![given("product-1", 2)]);
        let cancelled = state(cancellation.order, 2);
        for change in [
            Change::Pay,
            Change::Cancel,
            Change::Refund(lines(&[("product-1", 1)])),
        ] {
            assert_eq!(
                cancelled.decide(&change, at(), &mut chance()),
                Err(Refusal::OrderCancelled)
            );
        }
        // An unpaid order is cancelled without touching the balance, and cannot be refunded.
        let unpaid = state(order, 0);
        assert_eq!(
            unpaid
                .decide(&Change::Cancel, at(), &mut chance())
                .unwrap()
                .balance,
            BalanceMove::Untouched
        );
        assert_eq!(
            unpaid.decide(
                &Change::Refund(lines(&[("product-1", 1)])),
                at(),
                &mut chance()
            ),
            Err(Refusal::OrderNotPaid)
        );
    }

    #[test]
    fn a_refund_gives_back_units_and_their_price_never_more_than_paid() {
        let mut order = placed(
            &[("product-1", 3), ("product-2", 1)],
            &[("product-1", 1_000), ("product-2", 5_000)],
        )
        .unwrap();
        order.status = OrderStatus::Paid;
        let first = state(order, 1)
            .decide(
                &Change::Refund(lines(&[("product-1", 2)])),
                at(),
                &mut chance(),
            )
            .unwrap();
        assert_eq!(first.restock, vec![given("product-1", 2)]);
        assert_eq!(
            first.balance,
            BalanceMove::Refund(Money::new(2_000).unwrap())
        );
        assert_eq!(first.order.refunded_items, vec![units("product-1", 2)]);
        assert_eq!(first.order.refunded_amount, Money::new(2_000).unwrap());
        assert_eq!(first.order.status, OrderStatus::Paid);
        let after_first = state(first.order, 2);
        // Two more units of product-1 than remain: refused, nothing moves.
        assert_eq!(
            after_first.decide(
                &Change::Refund(lines(&[("product-1", 2)])),
                at(),
                &mut chance()
            ),
            Err(Refusal::RefundExceedsOrder {
                product_id: ProductId::parse("product-1").unwrap()
            })
        );
        // A product the order does not hold: refused.
        assert!(after_first
            .decide(
                &Change::Refund(lines(&[("product-9", 1)])),
                at(),
                &mut chance()
            )
            .is_err());
        // The rest, then a cancel refunds only what is left.
        let second = after_first
            .decide(
                &Change::Refund(lines(&[("product-1", 1), ("product-2", 1)])),
                at(),
                &mut chance(),
            )
            .unwrap();
        assert_eq!(
            second.balance,
            BalanceMove::Refund(Money::new(6_000).unwrap())
        );
        assert_eq!(second.order.refunded_amount, second.order.total_amount);
        let cancel = state(second.order, 3)
            .decide(&Change::Cancel, at(), &mut chance())
            .unwrap();
        assert_eq!(cancel.balance, BalanceMove::Untouched);
        assert!(cancel.restock.is_empty());
    }

    #[test]
    fn units_go_back_spread_over_the_shards_the_create_saw_or_to_the_first() {
        let mut order = placed(
            &[("product-flash", 2), ("product-1", 1)],
            &[("product-flash", 1_000), ("product-1", 1_000)],
        )
        .unwrap();
        order.status = OrderStatus::Paid;
        let flash = ProductId::parse("product-flash").unwrap();
        let mut shard_counts = ShardCounts::default();
        shard_counts.set(flash.clone(), ShardCount::new(4).unwrap());
        let sharded = OrderState {
            order,
            revision: 1,
            shard_counts,
        };
        let mut chance = chance();
        let mut shards = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let cancel = sharded.decide(&Change::Cancel, at(), &mut chance).unwrap();
            assert_eq!(cancel.restock.len(), 2);
            assert_eq!(
                cancel.restock[1],
                given("product-1", 1),
                "unsharded: shard 0"
            );
            assert_eq!(cancel.restock[0].quantity.get(), 2);
            shards.insert(cancel.restock[0].shard);
            let redirected = cancel.restocking_first_shard_of(std::slice::from_ref(&flash));
            assert_eq!(redirected.restock[0], given("product-flash", 2));
        }
        assert_eq!(shards.len(), 4, "give-backs spread over the shards");
    }
}
