//! The conservation audit: exact accounting of money and stock over the whole table.
//!
//! - Conservation is the domain's one rule (`domain::Ledger`, which the in-memory store checks
//!   too): for every product, initial stock = stock + the units its orders hold; for every
//!   user, initial balance = balance + the money its orders hold; nothing negative. A sharded
//!   product's stock is the sum over its shards, so conservation holds across a reshard; a
//!   shard outside its product's shards (units no sale can reach), a missing one, a negative
//!   one, or a seal (sold out) on some shards only or over units is a violation.
//! - Every order is also checked against itself with plain types and arithmetic of the audit's
//!   own (strings and integers), not the domain's, so that a bug in the domain cannot hide
//!   itself in the check: its lines sum to its total; its unit prices are its products' prices
//!   (prices never change in this service: only `seed` writes them); what it refunded is at
//!   most what it ordered, at its prices; its user exists; its timestamps fit its status; it
//!   lives in its user's partition.
//! - Every Idempotency-Key answer names an existing order of the key's user.
//!
//! The scan is not a snapshot: run it on a quiet table (no requests in flight), as the load
//! tests and drills do after their load. Under traffic it can report a violation that a
//! transaction in flight is about to resolve; run it again once the traffic stops.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::items::{entity_of, OrderRecord, SHARD_ENTITY};
use super::DynamoOrderStore;
use crate::domain::{Account, Ledger, Order, ProductId, UserId, MAX_SHARDS};
use crate::error::ServiceError;

/// What the audit found. `violations` is empty when money and stock are exactly conserved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    pub users: u64,
    pub products: u64,
    pub orders: u64,
    pub orders_by_status: BTreeMap<String, u64>,
    pub total_balance: i64,
    pub total_paid: i64,
    pub total_stock: i64,
    pub total_reserved: i64,
    pub violations: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The most violations listed one by one; beyond that they are only counted.
const MAX_LISTED_VIOLATIONS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    user_id: String,
    balance: i64,
    initial_balance: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    product_id: String,
    price: i64,
    stock: i64,
    initial_stock: Option<i64>,
    shard_count: Option<i64>,
    shard_span: Option<i64>,
    sealed: Option<i64>,
}

impl Product {
    /// How many shards may hold its units: 0..span.
    fn span(&self) -> i64 {
        self.shard_span
            .unwrap_or(0)
            .max(self.shard_count.unwrap_or(1))
    }
}

/// A shard of a product's stock beyond the product item.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shard {
    product_id: String,
    shard: i64,
    stock: i64,
    sealed: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    product_id: String,
    quantity: i64,
    unit_price: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refunded {
    product_id: String,
    quantity: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem {
    pk: String,
    order_id: String,
    user_id: String,
    status: String,
    items: Vec<Line>,
    total_amount: i64,
    paid_at: Option<String>,
    cancelled_at: Option<String>,
    #[serde(default)]
    refunded_items: Vec<Refunded>,
    #[serde(default)]
    refunded_amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyRecord {
    user_id: String,
    /// `{"CREATED": order}`, `{"UPDATED": order}` or `{"REFUSED": ...}`, read as plain JSON.
    answer: Option<serde_json::Value>,
}

fn parse<T: for<'de> Deserialize<'de>>(
    item: super::items::Item,
    what: &str,
) -> Result<T, ServiceError> {
    serde_dynamo::from_item(item)
        .map_err(|error| ServiceError::internal(format!("cannot read {what}: {error}")))
}

/// An order's violations against itself and the products and users the scan found.
fn check_order(
    order: &OrderItem,
    products: &HashMap<String, Product>,
    users: &HashMap<String, User>,
    violations: &mut Vec<String>,
) {
    let id = &order.order_id;
    if order.items.is_empty() {
        violations.push(format!("order {id} has no lines"));
    }
    let sum: i128 = order
        .items
        .iter()
        .map(|line| i128::from(line.quantity) * i128::from(line.unit_price))
        .sum();
    if sum != i128::from(order.total_amount) {
        violations.push(format!(
            "order {id}: total {} != sum of its lines {sum}",
            order.total_amount
        ));
    }
    for line in &order.items {
        if line.quantity <= 0 || line.unit_price < 0 {
            violations.push(format!(
                "order {id}: line {} has quantity {} and unit price {}",
                line.product_id, line.quantity, line.unit_price
            ));
        }
        if let Some(product) = products.get(&line.product_id) {
            if product.price != line.unit_price {
                violations.push(format!(
                    "order {id}: unit price {} of {} is not its price {}",
                    line.unit_price, line.product_id, product.price
                ));
            }
        }
    }
    let mut refunded_money: i128 = 0;
    for refunded in &order.refunded_items {
        match order
            .items
            .iter()
            .find(|line| line.product_id == refunded.product_id)
        {
            Some(line) if (1..=line.quantity).contains(&refunded.quantity) => {
                refunded_money += i128::from(refunded.quantity) * i128::from(line.unit_price);
            }
            _ => violations.push(format!(
                "order {id} refunded {} units of {}, which it did not order",
                refunded.quantity, refunded.product_id
            )),
        }
    }
    if refunded_money != i128::from(order.refunded_amount) {
        violations.push(format!(
            "order {id}: refunded amount {} != its refunded units at its prices {refunded_money}",
            order.refunded_amount
        ));
    }
    let (paid, cancelled) = (order.paid_at.is_some(), order.cancelled_at.is_some());
    if order.refunded_amount > 0 && !paid {
        violations.push(format!("order {id} refunded money it was never paid"));
    }
    let fits = match order.status.as_str() {
        "CREATED" => !paid && !cancelled,
        "PAID" => paid && !cancelled,
        "CANCELLED" => cancelled,
        _ => false,
    };
    if !fits {
        violations.push(format!(
            "order {id} is {} with paidAt {:?} and cancelledAt {:?}",
            order.status, order.paid_at, order.cancelled_at
        ));
    }
    if order.pk != format!("USER#{}", order.user_id) {
        violations.push(format!("order {id} is stored outside its user's partition"));
    }
    if !users.contains_key(&order.user_id) {
        violations.push(format!(
            "order {id} belongs to user {}, who does not exist",
            order.user_id
        ));
    }
}

impl DynamoOrderStore {
    /// Checks exact conservation over the whole table (see the module's documentation; valid
    /// on a quiet table).
    pub async fn audit(&self) -> Result<AuditReport, ServiceError> {
        let mut users: HashMap<String, User> = HashMap::new();
        let mut products: HashMap<String, Product> = HashMap::new();
        let mut shards: Vec<Shard> = Vec::new();
        let mut orders: Vec<(OrderItem, Order)> = Vec::new();
        let mut answered: Vec<(String, String)> = Vec::new();
        let mut violations = Vec::new();
        for item in self.scan_all().await? {
            match entity_of(&item) {
                Some("USER") => {
                    let user: User = parse(item, "a user")?;
                    users.insert(user.user_id.clone(), user);
                }
                Some("PRODUCT") => {
                    let product: Product = parse(item, "a product")?;
                    products.insert(product.product_id.clone(), product);
                }
                Some(SHARD_ENTITY) => shards.push(parse(item, "a stock shard")?),
                Some("ORDER") => {
                    let plain: OrderItem = parse(item.clone(), "an order")?;
                    let record: OrderRecord = parse(item, "an order")?;
                    orders.push((plain, record.order));
                }
                Some("IDEMPOTENCY") => {
                    let record: KeyRecord = parse(item, "an Idempotency-Key record")?;
                    let order = record
                        .answer
                        .as_ref()
                        .and_then(|answer| answer.get("CREATED").or_else(|| answer.get("UPDATED")));
                    if let Some(order) = order {
                        let text = |field: &str| order[field].as_str().unwrap_or("").to_owned();
                        if text("userId") != record.user_id {
                            violations.push(format!(
                                "an Idempotency-Key record of user {} answers with order {} of user {}",
                                record.user_id,
                                text("orderId"),
                                text("userId")
                            ));
                        }
                        answered.push((text("userId"), text("orderId")));
                    }
                }
                other => violations.push(format!("an item of unknown entity {other:?}")),
            }
        }

        // A product's stock is the sum over its shards; a shard its product does not count
        // (beyond its span, or of no product) holds units no sale can reach.
        let mut shard_stock: HashMap<&str, i64> = HashMap::new();
        let mut present: HashSet<(&str, i64)> = HashSet::new();
        // A seal on any shard says every shard of the span is sealed and empty.
        let mut seals: HashMap<&str, Vec<Option<i64>>> = HashMap::new();
        for shard in &shards {
            let id = shard.product_id.as_str();
            present.insert((id, shard.shard));
            seals.entry(id).or_default().push(shard.sealed);
            if shard.stock < 0 {
                violations.push(format!(
                    "product {id}: shard {} holds {} units",
                    shard.shard, shard.stock
                ));
            }
            match products.get(id) {
                None => violations.push(format!(
                    "product {id} does not exist but its shard {} holds {} units",
                    shard.shard, shard.stock
                )),
                Some(product) if !(1..product.span()).contains(&shard.shard) => {
                    violations.push(format!(
                    "product {id}: shard {} is outside its {} shards and holds {} stranded units",
                    shard.shard,
                    product.span(),
                    shard.stock
                ))
                }
                Some(_) => *shard_stock.entry(id).or_default() += shard.stock,
            }
        }
        for (id, product) in &products {
            let count = product.shard_count.unwrap_or(1);
            if !(1..=i64::from(MAX_SHARDS)).contains(&count)
                || product.span() > i64::from(MAX_SHARDS)
            {
                violations.push(format!(
                    "product {id} has shard count {count} and span {}",
                    product.span()
                ));
            }
            if let Some(missing) =
                (1..count).find(|shard| !present.contains(&(id.as_str(), *shard)))
            {
                violations.push(format!("product {id}: its shard {missing} is missing"));
            }
            let mut sealed = seals.get(id.as_str()).cloned().unwrap_or_default();
            sealed.push(product.sealed);
            if sealed.iter().any(Option::is_some) {
                let stock = product.stock + shard_stock.get(id.as_str()).copied().unwrap_or(0);
                let whole = sealed.len() as i64 == product.span()
                    && sealed.iter().all(|seal| *seal == Some(product.span()));
                if !whole || stock != 0 {
                    violations.push(format!(
                        "product {id} is sealed as sold out, but {} of its {} shards carry the \
                         seal and they hold {stock} units",
                        sealed.iter().filter(|seal| seal.is_some()).count(),
                        product.span()
                    ));
                }
            }
        }

        let mut report = AuditReport::default();
        let mut ledger = Ledger::new();
        let mut order_ids: HashSet<(&str, &str)> = HashSet::new();
        for (plain, order) in &orders {
            report.orders += 1;
            *report
                .orders_by_status
                .entry(plain.status.clone())
                .or_default() += 1;
            order_ids.insert((&plain.user_id, &plain.order_id));
            check_order(plain, &products, &users, &mut violations);
            ledger.record(order);
        }
        for (user_id, order_id) in &answered {
            if !order_ids.contains(&(user_id.as_str(), order_id.as_str())) {
                violations.push(format!(
                    "an Idempotency-Key record of user {user_id} answers with order {order_id}, which does not exist"
                ));
            }
        }
        for account in ledger.accounts() {
            if let Account::Stock(product_id) = account {
                if !products.contains_key(product_id.as_str()) {
                    violations.push(format!(
                        "product {product_id} is held ({} units) but does not exist",
                        ledger.held(account)
                    ));
                }
            }
        }
        for (user_id, user) in &users {
            let account = UserId::parse(user_id).map(Account::Balance);
            let held = account.as_ref().map_or(0, |account| ledger.held(account));
            report.total_balance += user.balance;
            report.total_paid += held;
            match (user.initial_balance, &account) {
                (None, _) => violations.push(format!(
                    "user {user_id} has no initialBalance: their money cannot be checked"
                )),
                (Some(initial), Ok(account)) => {
                    violations.extend(ledger.violation(account, user.balance, initial));
                }
                (Some(_), Err(error)) => violations.push(format!("user {user_id:?}: {error}")),
            }
        }
        for (product_id, product) in &products {
            let account = ProductId::parse(product_id).map(Account::Stock);
            let held = account.as_ref().map_or(0, |account| ledger.held(account));
            let stock = product.stock + shard_stock.get(product_id.as_str()).copied().unwrap_or(0);
            report.total_stock += stock;
            report.total_reserved += held;
            match (product.initial_stock, &account) {
                (None, _) => violations.push(format!(
                    "product {product_id} has no initialStock: its stock cannot be checked"
                )),
                (Some(initial), Ok(account)) => {
                    violations.extend(ledger.violation(account, stock, initial));
                }
                (Some(_), Err(error)) => {
                    violations.push(format!("product {product_id:?}: {error}"))
                }
            }
        }
        report.users = users.len() as u64;
        report.products = products.len() as u64;
        violations.sort();
        if violations.len() > MAX_LISTED_VIOLATIONS {
            let more = violations.len() - MAX_LISTED_VIOLATIONS;
            violations.truncate(MAX_LISTED_VIOLATIONS);
            violations.push(format!("... and {more} more violations"));
        }
        report.violations = violations;
        Ok(report)
    }
}
