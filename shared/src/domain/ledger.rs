//! Conservation, the one rule both the audit and the in-memory store check: every unit of stock
//! and every won is either where it started or held by an order. For every product, its initial
//! stock equals its stock now plus the units its orders hold; for every user, the initial
//! balance equals the balance now plus the money its orders hold (`Order::holdings`). Nothing is
//! ever negative.

use std::collections::BTreeMap;

use super::{Order, ProductId, UserId};

/// Where units or money can be: a product's stock or a user's balance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    Stock(ProductId),
    Balance(UserId),
}

impl std::fmt::Display for Account {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Stock(product) => write!(formatter, "product {product}: stock"),
            Account::Balance(user) => write!(formatter, "user {user}: balance"),
        }
    }
}

/// What the orders hold, summed per account.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    held: BTreeMap<Account, i64>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what `order` holds.
    pub fn record(&mut self, order: &Order) {
        let holdings = order.holdings();
        for (product, units) in holdings.units {
            *self.held.entry(Account::Stock(product)).or_default() += i64::from(units);
        }
        if !holdings.money.is_zero() {
            *self
                .held
                .entry(Account::Balance(order.user_id.clone()))
                .or_default() += holdings.money.won();
        }
    }

    /// What the orders hold of `account`.
    pub fn held(&self, account: &Account) -> i64 {
        self.held.get(account).copied().unwrap_or(0)
    }

    /// The accounts orders hold something of.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.held.keys()
    }

    /// Why `account`, at `now` and started at `initial`, breaks conservation; `None` when it
    /// does not.
    pub fn violation(&self, account: &Account, now: i64, initial: i64) -> Option<String> {
        let held = self.held(account);
        if now < 0 {
            return Some(format!("{account} {now} < 0"));
        }
        (now.checked_add(held) != Some(initial))
            .then(|| format!("{account} {now} + held by orders {held} != initial {initial}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::tests::placed;
    use crate::domain::OrderStatus;

    #[test]
    fn money_and_stock_held_by_orders_close_the_books() {
        let mut order = placed(&[("product-1", 2)], &[("product-1", 1_000)]).unwrap();
        order.status = OrderStatus::Paid;
        let mut ledger = Ledger::new();
        ledger.record(&order);
        let stock = Account::Stock(ProductId::parse("product-1").unwrap());
        let balance = Account::Balance(order.user_id.clone());
        assert_eq!(ledger.violation(&stock, 8, 10), None);
        assert_eq!(ledger.violation(&balance, 98_000, 100_000), None);
        assert!(ledger.violation(&stock, 9, 10).is_some(), "a unit appeared");
        assert!(ledger.violation(&balance, -1, -2_001).is_some(), "negative");
        assert_eq!(ledger.accounts().count(), 2);
    }
}
