//! An in-memory implementation of every store capability (`KeepAnswers`, `ReadCatalog`,
//! `ReadOrders`, `WriteOrders`, `ArrangeStock`), so that handler tests run in milliseconds and
//! without Java. A product's stock is kept shard by shard, as the DynamoDB store keeps it.
//!
//! It only reads and writes: the application's use cases decide, as they do over DynamoDB.
//! (Building one from a seed plan spreads a sharded product's stock with the domain's `spread`,
//! the layout `app::stock::seed` leaves in DynamoDB; that is seeding, not a use case.) A
//! write checks the same conditions as the DynamoDB store's transaction, in its item order
//! (the order, then stock, then the balance, then the claim's answer), under one mutex in
//! place of one `TransactWriteItems`, and answers the same typed `Rejection`. Idempotency-Key
//! records keep DynamoDB's arithmetic too: epoch seconds, a claim's `IN_FLIGHT_LEASE`, and an
//! answer that counts as absent once `expiresAt < now`. `tests/memory_parity.rs` runs one
//! scenario on both stores and compares what a client would see.
//!
//! What it does not model: contention between transactions, throttling, the circuit breaker,
//! SDK timeouts and retries. Tests of those run on DynamoDB Local through `dynamodb-faithful`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use order_service::domain::{
    spread, Account, Answer, Arrangement, BalanceMove, Claim, ClaimTimes, Fingerprint, Ledger,
    Money, Order, OrderId, OrderState, Prior, ProductId, Rearrangement, Refusal, ShardChange,
    ShardCount, ShardCounts, StockLayout, Timestamp, UserId,
};
use order_service::error::IN_FLIGHT_RETRY_AFTER;
use order_service::store::{
    epoch_seconds, ArrangeStock, Catalog, KeepAnswers, NewOrderWrite, OrderPage, PageRequest,
    ReadCatalog, ReadOrders, Rejection, SeedPlan, SeenShard, StoreSettings, TransitionWrite,
    WriteError, WriteOrders,
};
use order_service::ServiceError;

/// Every store capability over maps in memory. Cheap to clone: clones share one state, so a
/// test keeps a handle to look at balances and stock while its `App` owns another.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    answer_ttl: Duration,
    /// How long every call takes before it touches the state (zero: none).
    latency: Duration,
}

#[derive(Debug)]
struct User {
    balance: i64,
    initial_balance: i64,
}

/// A product with its stock's shards, as the DynamoDB store keeps them: shard 0 is the
/// product item, `None` a shard whose item does not exist.
#[derive(Debug)]
struct Product {
    price: Money,
    shards: Vec<Option<i64>>,
    count: ShardCount,
    span: u32,
    initial_stock: i64,
    /// The seal of a sold-out product: on all its shards at once (the span it covers).
    sealed: Option<u32>,
}

impl Product {
    fn stock(&self) -> i64 {
        self.shards.iter().flatten().sum()
    }

    fn layout(&self, product_id: &ProductId) -> StockLayout {
        StockLayout {
            product_id: product_id.clone(),
            count: self.count,
            shards: (0..self.span as usize)
                .map(|shard| self.shards.get(shard).copied().flatten())
                .collect(),
            sealed: self.sealed.is_some(),
        }
    }

    fn shard_mut(&mut self, shard: u32) -> &mut Option<i64> {
        let index = shard as usize;
        if self.shards.len() <= index {
            self.shards.resize(index + 1, None);
        }
        &mut self.shards[index]
    }

    /// What a failed take's `ALL_OLD` returns of a shard.
    fn seen(&self, shard: u32) -> Option<SeenShard> {
        let stock = self.shards.get(shard as usize).copied().flatten()?;
        Some(SeenShard {
            stock,
            arrangement: (shard == 0).then_some(Arrangement {
                count: self.count,
                span: self.span,
            }),
            sealed: self.sealed.is_some(),
        })
    }
}

/// An order with its revision and the hash of the request that created it, as the DynamoDB
/// item keeps them.
#[derive(Debug)]
struct StoredOrder {
    order: Order,
    revision: u64,
    request_hash: Fingerprint,
    shard_counts: ShardCounts,
}

impl StoredOrder {
    fn state(&self) -> OrderState {
        OrderState {
            order: self.order.clone(),
            revision: self.revision,
            shard_counts: self.shard_counts.clone(),
        }
    }
}

/// An Idempotency-Key record, with the DynamoDB record's fields: `answer` is `None` while the
/// claim is in progress.
#[derive(Debug)]
struct KeyRecord {
    fingerprint: Fingerprint,
    claim_token: String,
    /// Epoch seconds until which an in-progress claim holds the key.
    locked_until: i64,
    /// Epoch seconds after which the record counts as absent.
    expires_at: i64,
    answer: Option<Answer>,
}

impl KeyRecord {
    fn prior(&self) -> Prior {
        match &self.answer {
            Some(answer) => Prior::Answered {
                fingerprint: self.fingerprint.clone(),
                answer: answer.clone(),
                token: self.claim_token.clone(),
            },
            None => Prior::InFlight {
                fingerprint: self.fingerprint.clone(),
                token: self.claim_token.clone(),
            },
        }
    }

    /// The DynamoDB store's `OWN_CLAIM` condition: this request's claim, not answered yet.
    fn is_claim_of(&self, claim: &Claim) -> bool {
        self.claim_token == claim.token && self.answer.is_none()
    }
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    products: HashMap<ProductId, Product>,
    orders: HashMap<(UserId, OrderId), StoredOrder>,
    /// Keyed by user and `IdempotencyKey::record_id`, as the records' sort keys are.
    keys: HashMap<(UserId, String), KeyRecord>,
}

impl State {
    /// Whether `claim` is still this request's: the condition of a claim's answer in every
    /// state change's transaction.
    fn claim_holds(&self, user_id: &UserId, claim: Option<&Claim>) -> bool {
        claim.is_none_or(|claim| {
            self.record(user_id, claim)
                .is_some_and(|record| record.is_claim_of(claim))
        })
    }

    /// Answers `claim` with `answer`; call only after `claim_holds`.
    fn answer_claim(
        &mut self,
        user_id: &UserId,
        claim: Option<&Claim>,
        answer: Answer,
        answer_ttl: Duration,
    ) {
        if let Some(claim) = claim {
            if let Some(record) = self.record_mut(user_id, claim) {
                record.answer = Some(answer);
                record.expires_at = ClaimTimes::answer_kept_until(epoch_seconds(), answer_ttl);
            }
        }
    }

    fn record(&self, user_id: &UserId, claim: &Claim) -> Option<&KeyRecord> {
        self.keys.get(&(user_id.clone(), claim.key.record_id()))
    }

    fn record_mut(&mut self, user_id: &UserId, claim: &Claim) -> Option<&mut KeyRecord> {
        self.keys.get_mut(&(user_id.clone(), claim.key.record_id()))
    }

    fn stored_order(&self, user_id: &UserId, order_id: OrderId) -> Option<&StoredOrder> {
        self.orders.get(&(user_id.clone(), order_id))
    }
}

/// The sort key of the DynamoDB store's list index (`<createdAt>#<orderId>`): lists are newest
/// first by this text, and a cursor starts after it.
fn list_key(created_at: Timestamp, order_id: OrderId) -> String {
    format!("{created_at}#{order_id}")
}

fn balance_overflow() -> ServiceError {
    ServiceError::internal("a balance beyond what the store can hold")
}

impl MemoryStore {
    /// A store holding what `DynamoOrderStore::seed` writes for `plan`: `user-1..user-N` with
    /// the plan's balance, `product-1..product-M` at `seeded_price_of` with the plan's stock,
    /// and the extra products. Answers are kept for `StoreSettings::default().answer_ttl`.
    pub fn seeded(plan: &SeedPlan) -> Self {
        Self::seeded_with_answer_ttl(plan, StoreSettings::default().answer_ttl)
    }

    /// As `seeded`, keeping Idempotency-Key answers for `answer_ttl`.
    pub fn seeded_with_answer_ttl(plan: &SeedPlan, answer_ttl: Duration) -> Self {
        let mut state = State::default();
        for number in 1..=plan.users {
            let user_id = UserId::parse(&format!("user-{number}"))
                .unwrap_or_else(|error| panic!("the seed plan's users: {error}"));
            state.users.insert(
                user_id,
                User {
                    balance: plan.balance,
                    initial_balance: plan.balance,
                },
            );
        }
        let shard_counts = plan
            .shard_counts()
            .unwrap_or_else(|error| panic!("the seed plan's shards: {error}"));
        for (name, price, stock) in plan.products() {
            let product_id = ProductId::parse(&name)
                .unwrap_or_else(|error| panic!("the seed plan's product {name:?}: {error}"));
            let price = Money::new(price)
                .unwrap_or_else(|error| panic!("the seed plan's price of {name}: {error}"));
            let count = shard_counts.of(&product_id);
            state.products.insert(
                product_id,
                Product {
                    price,
                    shards: spread(stock, count).into_iter().map(Some).collect(),
                    count,
                    span: count.get(),
                    initial_stock: stock,
                    sealed: None,
                },
            );
        }
        Self {
            state: Arc::new(Mutex::new(state)),
            answer_ttl,
            latency: Duration::ZERO,
        }
    }

    /// The same store, each call taking `latency` before it acts: for tests of what the
    /// service does while a store call is still in flight (deadlines, budgets).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    async fn pause(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so a poisoned lock still holds a whole state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current stock of a product, if it exists: the sum over its shards.
    pub fn product_stock(&self, product_id: &ProductId) -> Option<i64> {
        self.lock().products.get(product_id).map(Product::stock)
    }

    /// The current balance of a user, if it exists.
    pub fn user_balance(&self, user_id: &UserId) -> Option<i64> {
        self.lock().users.get(user_id).map(|user| user.balance)
    }

    /// Every order of every user, in no particular order.
    pub fn all_orders(&self) -> Vec<Order> {
        self.lock()
            .orders
            .values()
            .map(|stored| stored.order.clone())
            .collect()
    }

    /// Where money or stock is not conserved, by the domain's one rule (`Ledger`, which the
    /// DynamoDB store's audit applies too). Empty when conserved.
    pub fn conservation_violations(&self) -> Vec<String> {
        let state = self.lock();
        let mut ledger = Ledger::new();
        for stored in state.orders.values() {
            ledger.record(&stored.order);
        }
        let products = state.products.iter().map(|(id, product)| {
            (
                Account::Stock(id.clone()),
                product.stock(),
                product.initial_stock,
            )
        });
        let users = state.users.iter().map(|(id, user)| {
            (
                Account::Balance(id.clone()),
                user.balance,
                user.initial_balance,
            )
        });
        products
            .chain(users)
            .filter_map(|(account, now, initial)| ledger.violation(&account, now, initial))
            .collect()
    }
}

impl KeepAnswers for MemoryStore {
    async fn claim(&self, user_id: &UserId, claim: &Claim) -> Result<Option<Prior>, ServiceError> {
        self.pause().await;
        let now = epoch_seconds();
        let mut state = self.lock();
        let slot = (user_id.clone(), claim.key.record_id());
        if let Some(record) = state.keys.get(&slot) {
            // DynamoDB's claim condition: absent, expired, or an in-progress claim whose
            // lease lapsed. Anything else is the key's live record.
            let lapsed = record.answer.is_none() && record.locked_until < now;
            if record.expires_at >= now && !lapsed {
                return Ok(Some(record.prior()));
            }
        }
        let times = ClaimTimes::starting(now, self.answer_ttl);
        state.keys.insert(
            slot,
            KeyRecord {
                fingerprint: claim.fingerprint.clone(),
                claim_token: claim.token.clone(),
                locked_until: times.locked_until,
                expires_at: times.expires_at,
                answer: None,
            },
        );
        Ok(None)
    }

    async fn answer_refusal(
        &self,
        user_id: &UserId,
        claim: &Claim,
        refusal: Refusal,
    ) -> Result<Option<Prior>, ServiceError> {
        self.pause().await;
        let mut state = self.lock();
        match state.record_mut(user_id, claim) {
            Some(record) if record.is_claim_of(claim) => {
                record.answer = Some(Answer::Refused(refusal));
                record.expires_at = ClaimTimes::answer_kept_until(epoch_seconds(), self.answer_ttl);
                Ok(None)
            }
            Some(record) => Ok(Some(record.prior())),
            // The DynamoDB store's answer when the record is gone: the key is free, but this
            // request did not claim it.
            None => Err(ServiceError::RequestInProgress {
                retry_after: IN_FLIGHT_RETRY_AFTER,
            }),
        }
    }

    async fn release(&self, user_id: &UserId, claim: &Claim) {
        self.pause().await;
        let mut state = self.lock();
        if let Some(record) = state.record_mut(user_id, claim) {
            if record.is_claim_of(claim) {
                record.locked_until = 0;
            }
        }
    }
}

impl ReadCatalog for MemoryStore {
    async fn read_catalog(
        &self,
        user_id: &UserId,
        products: &[ProductId],
    ) -> Result<Catalog, ServiceError> {
        self.pause().await;
        let state = self.lock();
        let mut shard_counts = ShardCounts::default();
        for id in products {
            if let Some(product) = state.products.get(id) {
                shard_counts.set(id.clone(), product.count);
            }
        }
        Ok(Catalog {
            user_exists: state.users.contains_key(user_id),
            prices: products
                .iter()
                .filter_map(|id| Some((id.clone(), state.products.get(id)?.price)))
                .collect(),
            shard_counts,
        })
    }

    async fn read_stock(
        &self,
        product_id: &ProductId,
        _hint: ShardCount,
    ) -> Result<Option<StockLayout>, ServiceError> {
        self.pause().await;
        Ok(self
            .lock()
            .products
            .get(product_id)
            .map(|product| product.layout(product_id)))
    }

    async fn read_stock_at_once(
        &self,
        product_id: &ProductId,
        hint: ShardCount,
    ) -> Result<Option<StockLayout>, ServiceError> {
        self.read_stock(product_id, hint).await
    }
}

impl ArrangeStock for MemoryStore {
    async fn write_rearrangement(&self, step: &Rearrangement) -> Result<(), WriteError> {
        self.pause().await;
        let mut state = self.lock();
        let moved = || {
            WriteError::Rejected(Rejection::StockMoved {
                product_id: step.product_id.clone(),
            })
        };
        let Some(product) = state.products.get_mut(&step.product_id) else {
            return Err(moved());
        };
        // An unsealing step only takes the seal off; every other step needs none on.
        if step.unseals {
            return match product.sealed {
                Some(span) if span == step.from.span => {
                    product.sealed = None;
                    Ok(())
                }
                _ => Err(moved()),
            };
        }
        if product.sealed.is_some() {
            return Err(moved());
        }
        // The transaction's conditions: the product item's arrangement, then each change's.
        if product.count != step.from.count || product.span != step.from.span {
            return Err(moved());
        }
        let holds = |product: &Product, change: &ShardChange| {
            let now = product
                .shards
                .get(change.shard() as usize)
                .copied()
                .flatten();
            match (*change, now) {
                (ShardChange::Take { units, .. }, Some(now)) => now >= units,
                (ShardChange::Give { .. }, Some(_)) | (ShardChange::Create { .. }, None) => true,
                (ShardChange::Remove { seen, .. }, Some(now)) => now == seen,
                _ => false,
            }
        };
        if !step.changes.iter().all(|change| holds(product, change)) {
            return Err(moved());
        }
        for change in &step.changes {
            let slot = product.shard_mut(change.shard());
            *slot = match change {
                ShardChange::Remove { .. } => None,
                other => Some(slot.unwrap_or(0) + other.delta()),
            };
        }
        product.count = step.to.count;
        product.span = step.to.span;
        Ok(())
    }
}

impl WriteOrders for MemoryStore {
    async fn seal_stock(&self, layout: &StockLayout) -> Result<bool, ServiceError> {
        self.pause().await;
        let mut state = self.lock();
        let Some(product) = state.products.get_mut(&layout.product_id) else {
            return Ok(false);
        };
        // The seal's conditions: the arrangement read, every shard there, empty, unsealed.
        let empty = (0..layout.span() as usize)
            .all(|shard| product.shards.get(shard).copied().flatten() == Some(0));
        if product.sealed.is_some()
            || product.count != layout.count
            || product.span != layout.span()
            || !empty
        {
            return Ok(false);
        }
        product.sealed = Some(layout.span());
        Ok(true)
    }

    async fn unseal_stock(&self, product_id: &ProductId, span: u32) -> Result<bool, ServiceError> {
        self.pause().await;
        let mut state = self.lock();
        match state.products.get_mut(product_id) {
            Some(product) if product.sealed == Some(span) => {
                product.sealed = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn write_new_order(&self, write: NewOrderWrite<'_>) -> Result<(), WriteError> {
        self.pause().await;
        let order = write.order;
        let mut state = self.lock();
        // The transaction's conditions, in its item order: the order is new, every line has
        // its stock, the claim is still this request's.
        if let Some(existing) = state.stored_order(&order.user_id, order.order_id) {
            return Err(WriteError::Rejected(Rejection::OrderExists {
                existing: existing.state(),
                request: existing.request_hash.clone(),
            }));
        }
        let short = write.takes.iter().find(|take| {
            state.products.get(&take.product_id).is_none_or(|product| {
                product
                    .shards
                    .get(take.shard as usize)
                    .copied()
                    .flatten()
                    .is_none_or(|stock| stock < i64::from(take.quantity.get()))
            })
        });
        if let Some(take) = short {
            return Err(WriteError::Rejected(Rejection::StockShort {
                product_id: take.product_id.clone(),
                shard: take.shard,
                seen: state
                    .products
                    .get(&take.product_id)
                    .and_then(|product| product.seen(take.shard)),
            }));
        }
        if !state.claim_holds(&order.user_id, write.claim) {
            return Err(WriteError::Rejected(Rejection::ClaimLost));
        }
        for take in write.takes {
            if let Some(product) = state.products.get_mut(&take.product_id) {
                if let Some(stock) = product.shard_mut(take.shard) {
                    *stock -= i64::from(take.quantity.get());
                }
            }
        }
        state.orders.insert(
            (order.user_id.clone(), order.order_id),
            StoredOrder {
                order: order.clone(),
                revision: 0,
                request_hash: write.request.clone(),
                shard_counts: write.shard_counts.clone(),
            },
        );
        state.answer_claim(
            &order.user_id,
            write.claim,
            Answer::Created(order.clone()),
            self.answer_ttl,
        );
        Ok(())
    }

    async fn write_transition(&self, write: TransitionWrite<'_>) -> Result<(), WriteError> {
        self.pause().await;
        let transition = write.transition;
        let order = &transition.order;
        let user_id = &order.user_id;
        let mut state = self.lock();
        // The transaction's conditions, in its item order: the order is at the expected
        // revision, every product stock goes back to exists, the balance move is possible,
        // the claim is still this request's.
        match state.stored_order(user_id, order.order_id) {
            Some(stored) if stored.revision == transition.expected_revision => {}
            current => {
                return Err(WriteError::Rejected(Rejection::OrderMoved {
                    current: current.map(StoredOrder::state),
                }))
            }
        }
        // Each give-back, in order: its shard must exist and carry no seal.
        let refused = transition.restock.iter().find_map(|units| {
            let product_id = units.product_id.clone();
            let product = state.products.get(&product_id);
            let exists = product
                .and_then(|product| product.shards.get(units.shard as usize).copied().flatten())
                .is_some();
            match (product, exists) {
                (_, false) if units.shard == 0 => Some(Rejection::ProductGone { product_id }),
                (_, false) => Some(Rejection::ShardGone {
                    product_id,
                    shard: units.shard,
                }),
                (Some(product), true) => product
                    .sealed
                    .map(|span| Rejection::StockSealed { product_id, span }),
                (None, true) => None,
            }
        });
        if let Some(rejection) = refused {
            return Err(WriteError::Rejected(rejection));
        }
        let balance = state.users.get(user_id).map(|user| user.balance);
        let new_balance = match (transition.balance, balance) {
            (BalanceMove::Untouched, _) => balance,
            (_, None) => return Err(WriteError::Rejected(Rejection::Balance { balance: None })),
            (BalanceMove::Debit(amount), Some(now)) if now < amount.won() => {
                return Err(WriteError::Rejected(Rejection::Balance { balance }))
            }
            (BalanceMove::Debit(amount), Some(now)) => Some(now - amount.won()),
            (BalanceMove::Refund(amount), Some(now)) => {
                Some(now.checked_add(amount.won()).ok_or_else(balance_overflow)?)
            }
        };
        if !state.claim_holds(user_id, write.claim) {
            return Err(WriteError::Rejected(Rejection::ClaimLost));
        }
        for units in &transition.restock {
            if let Some(product) = state.products.get_mut(&units.product_id) {
                if let Some(stock) = product.shard_mut(units.shard) {
                    *stock += i64::from(units.quantity.get());
                }
            }
        }
        if let (Some(balance), Some(user)) = (new_balance, state.users.get_mut(user_id)) {
            user.balance = balance;
        }
        if let Some(stored) = state.orders.get_mut(&(user_id.clone(), order.order_id)) {
            stored.order = order.clone();
            stored.revision += 1;
        }
        state.answer_claim(
            user_id,
            write.claim,
            Answer::Updated(order.clone()),
            self.answer_ttl,
        );
        Ok(())
    }
}

impl ReadOrders for MemoryStore {
    async fn read_order(
        &self,
        user_id: &UserId,
        order_id: OrderId,
    ) -> Result<Option<OrderState>, ServiceError> {
        self.pause().await;
        Ok(self
            .lock()
            .stored_order(user_id, order_id)
            .map(StoredOrder::state))
    }

    async fn list_orders(
        &self,
        user_id: &UserId,
        page: PageRequest,
    ) -> Result<OrderPage, ServiceError> {
        self.pause().await;
        let (limit, cursor) = (page.limit(), page.cursor());
        let state = self.lock();
        let start = cursor.map(|cursor| list_key(cursor.created_at, cursor.order_id));
        let mut mine: Vec<(String, &Order)> = state
            .orders
            .iter()
            .filter(|((owner, _), _)| owner == user_id)
            .map(|(_, stored)| {
                let order = &stored.order;
                (list_key(order.created_at, order.order_id), order)
            })
            .filter(|(key, _)| start.as_ref().is_none_or(|start| key < start))
            .collect();
        mine.sort_by(|(a, _), (b, _)| b.cmp(a));
        let stopped_at_limit = mine.len() >= usize::from(limit);
        let orders: Vec<Order> = mine
            .into_iter()
            .take(usize::from(limit))
            .map(|(_, order)| order.clone())
            .collect();
        let first_page_is_empty = orders.is_empty() && cursor.is_none();
        // DynamoDB returns a LastEvaluatedKey whenever a query stops at its limit, even when
        // nothing follows: a full last page still has a cursor, to an empty page.
        let mut page = OrderPage::new(orders, stopped_at_limit);
        if first_page_is_empty {
            page.user_exists = Some(state.users.contains_key(user_id));
        }
        Ok(page)
    }
}
