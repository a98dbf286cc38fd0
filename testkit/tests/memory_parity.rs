//! The in-memory store against DynamoDB Local: the same scenario (creates, including out of
//! stock and unknown products or users; payments, including an insufficient balance and an
//! order already paid; cancellations, including of a paid order; keyed replays, reused keys, a
//! key in flight, a lost claim, expired answers; gets and paged lists) runs step by step on
//! `MemoryStore` and on a `DynamoOrderStore` over a seeded table, the way the functions run it
//! (`answer_once`). Every step must give a client the same answer: status, problem code and
//! body, `Location`, `Retry-After`, the replay mark. Afterwards balances, stock and orders must
//! be the same. Unkeyed orders get random ids, so orders are compared by the names the
//! scenario gives them; timestamps are compared by presence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;
use testkit::UseCases;

use lambda_http::{Body, Response};
use order_service::app::stock;
use order_service::domain::{
    Claim, Fingerprint, IdempotencyKey, Order, OrderId, Prior, ProductId, Refusal, ShardCount,
    Timestamp, UserId,
};
use order_service::http::problem::problem_response;
use order_service::store::{
    ArrangeStock, ChangeOrders, DynamoOrderStore, PageRequest, PlaceOrders, SeedPlan, StoreSettings,
};
use order_service::ServiceError;
use serde_json::{json, Value};
use testkit::{
    answered, fresh_table_with, is_replayed, new_order, seeded_table, test_settings, Action,
    MemoryStore,
};

/// Every capability, and what the comparison reads back from a store.
trait Store: PlaceOrders + ChangeOrders + ArrangeStock {
    async fn balance(&self, user_id: &UserId) -> Option<i64>;
    async fn stock(&self, product_id: &ProductId) -> Option<i64>;
    async fn orders(&self) -> Vec<Order>;
    async fn violations(&self) -> Vec<String>;
}

impl Store for DynamoOrderStore {
    async fn balance(&self, user_id: &UserId) -> Option<i64> {
        self.user_balance(user_id).await.unwrap()
    }
    async fn stock(&self, product_id: &ProductId) -> Option<i64> {
        self.product_stock(product_id).await.unwrap()
    }
    async fn orders(&self) -> Vec<Order> {
        self.all_orders().await.unwrap()
    }
    async fn violations(&self) -> Vec<String> {
        self.audit().await.unwrap().violations
    }
}

impl Store for MemoryStore {
    async fn balance(&self, user_id: &UserId) -> Option<i64> {
        self.user_balance(user_id)
    }
    async fn stock(&self, product_id: &ProductId) -> Option<i64> {
        self.product_stock(product_id)
    }
    async fn orders(&self) -> Vec<Order> {
        self.all_orders()
    }
    async fn violations(&self) -> Vec<String> {
        self.conservation_violations()
    }
}

type Lines = &'static [(&'static str, u64)];

/// One step of a scenario. Orders and claims are named, because random ids differ between
/// the two stores.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A create as create-order runs it; a 201 names its order `name` (if not named yet).
    Create {
        user: u32,
        key: Option<&'static str>,
        lines: Lines,
        name: Option<&'static str>,
    },
    Pay {
        user: u32,
        key: Option<&'static str>,
        order: &'static str,
    },
    Cancel {
        user: u32,
        key: Option<&'static str>,
        order: &'static str,
    },
    Get {
        user: u32,
        order: &'static str,
    },
    /// Every page of a user's list, `limit` orders at a time.
    List {
        user: u32,
        limit: u16,
    },
    /// A request claims a create's key and has not answered yet (`KeepAnswers::claim`).
    Hold {
        user: u32,
        key: &'static str,
        lines: Lines,
        claim: &'static str,
    },
    Release {
        claim: &'static str,
    },
    /// The claim answers with a business refusal (`KeepAnswers::answer_refusal`).
    Refuse {
        claim: &'static str,
    },
    /// A create run under the named claim, whatever happened to the claim since.
    CreateUnder {
        claim: &'static str,
        lines: Lines,
    },
    /// Waits for answers made with a short TTL to expire.
    Sleep(Duration),
    /// An operator reshards a product to `count` shards, or rebalances it (`None`).
    Rearrange {
        product: &'static str,
        count: Option<u32>,
    },
}

/// One store and the names its orders and claims got in the scenario.
struct Side<S> {
    store: S,
    names: HashMap<&'static str, OrderId>,
    claims: HashMap<&'static str, (UserId, Claim)>,
}

const TIMESTAMPS: [&str; 3] = ["createdAt", "paidAt", "cancelledAt"];

fn user(number: u32) -> UserId {
    UserId::parse(&format!("user-{number}")).unwrap()
}

impl<S: Store> Side<S> {
    fn new(store: S, missing: OrderId) -> Self {
        Self {
            store,
            names: HashMap::from([("missing", missing)]),
            claims: HashMap::new(),
        }
    }

    fn order(&self, name: &str) -> OrderId {
        *self
            .names
            .get(name)
            .unwrap_or_else(|| panic!("no order is named {name}"))
    }

    /// Order ids by their names, timestamps by their presence.
    fn normalize(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.named(text)),
            Value::Array(values) => values.iter().map(|value| self.normalize(value)).collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(field, value)| {
                    let value = if TIMESTAMPS.contains(&field.as_str()) {
                        let valid = value.as_str().and_then(Timestamp::parse).is_some();
                        json!(if valid { "<timestamp>" } else { "<invalid>" })
                    } else {
                        self.normalize(value)
                    };
                    (field.clone(), value)
                })
                .collect(),
            other => other.clone(),
        }
    }

    fn named(&self, text: &str) -> String {
        self.names.iter().fold(text.to_owned(), |text, (name, id)| {
            text.replace(&id.to_string(), &format!("<order {name}>"))
        })
    }

    fn observe_response(&self, response: &Response<Body>) -> Value {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| self.named(value.to_str().unwrap()))
        };
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        json!({
            "status": response.status().as_u16(),
            "replayed": is_replayed(response),
            "contentType": header("content-type"),
            "location": header("location"),
            "retryAfter": header("retry-after"),
            "body": self.normalize(&body),
        })
    }

    fn observe_prior(&self, prior: Result<Option<Prior>, ServiceError>) -> Value {
        match prior {
            Ok(None) => json!("none"),
            // Tokens are random per claim: only whether they match is comparable, and the
            // scenarios' steps compare their own claims' records by fingerprint and answer.
            Ok(Some(Prior::InFlight { fingerprint, .. })) => {
                json!({"inFlight": fingerprint.as_str()})
            }
            Ok(Some(Prior::Answered {
                fingerprint,
                answer,
                ..
            })) => json!({
                "answered": fingerprint.as_str(),
                "answer": self.normalize(&serde_json::to_value(answer).unwrap()),
            }),
            Err(error) => json!({"error": error.code()}),
        }
    }

    /// The response a function gives for `change`.
    async fn respond(
        &self,
        user_number: u32,
        key: Option<&str>,
        change: Action<'_>,
    ) -> Response<Body> {
        match answered(&self.store, &user(user_number), key, change).await {
            Ok(response) => response,
            Err(error) => problem_response(&error),
        }
    }

    async fn change(&self, user_number: u32, key: Option<&str>, change: Action<'_>) -> Value {
        let response = self.respond(user_number, key, change).await;
        self.observe_response(&response)
    }

    async fn run(&mut self, step: Step) -> Value {
        match step {
            Step::Create {
                user: user_number,
                key,
                lines,
                name,
            } => {
                let order = new_order(lines);
                let response = self.respond(user_number, key, Action::Create(&order)).await;
                // Orders made in one millisecond list in id order, which is random: keep the
                // scenario's orders a few milliseconds apart on both stores.
                tokio::time::sleep(Duration::from_millis(3)).await;
                if let (Some(name), 201) = (name, response.status().as_u16()) {
                    if !self.names.contains_key(name) {
                        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
                        let id = OrderId::parse(body["orderId"].as_str().unwrap()).unwrap();
                        self.names.insert(name, id);
                    }
                }
                self.observe_response(&response)
            }
            Step::Pay { user, key, order } => {
                self.change(user, key, Action::Pay(self.order(order))).await
            }
            Step::Cancel { user, key, order } => {
                self.change(user, key, Action::Cancel(self.order(order)))
                    .await
            }
            Step::Get {
                user: user_number,
                order,
            } => match self
                .store
                .get_order(&user(user_number), self.order(order))
                .await
            {
                Ok(order) => self.normalize(&serde_json::to_value(order).unwrap()),
                Err(error) => json!({"error": error.code()}),
            },
            Step::List {
                user: user_number,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut request = PageRequest::new(limit, None).unwrap();
                for _ in 0..10 {
                    let page = match self.store.list_orders(&user(user_number), request).await {
                        Ok(page) => page,
                        Err(error) => {
                            pages.push(json!({"error": error.code()}));
                            break;
                        }
                    };
                    pages.push(json!({
                        "orders": self.normalize(&serde_json::to_value(&page.orders).unwrap()),
                        "more": page.next_cursor.is_some(),
                    }));
                    match page.next_cursor {
                        Some(cursor) => request = request.after(cursor),
                        None => break,
                    }
                }
                Value::Array(pages)
            }
            Step::Hold {
                user: user_number,
                key,
                lines,
                claim,
            } => {
                let held = Claim::new(
                    IdempotencyKey::parse(key).unwrap(),
                    Fingerprint::create(&new_order(lines)),
                );
                let prior = self.store.claim(&user(user_number), &held).await;
                self.claims.insert(claim, (user(user_number), held));
                self.observe_prior(prior)
            }
            Step::Release { claim } => {
                let (user_id, held) = &self.claims[claim];
                self.store.release(user_id, held).await;
                json!("released")
            }
            Step::Refuse { claim } => {
                let (user_id, held) = &self.claims[claim];
                let prior = self
                    .store
                    .answer_refusal(user_id, held, Refusal::OrderNotFound)
                    .await;
                self.observe_prior(prior)
            }
            Step::CreateUnder { claim, lines } => {
                let (user_id, held) = &self.claims[claim];
                match self
                    .store
                    .create_order(user_id, &new_order(lines), Some(held))
                    .await
                {
                    Ok(outcome) => json!({
                        "order": self.normalize(&serde_json::to_value(outcome.order).unwrap()),
                        "replayed": outcome.replayed,
                    }),
                    Err(error) => json!({"error": error.code()}),
                }
            }
            Step::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                json!("slept")
            }
            // Which shard holds what is chosen at random on each store: only the arrangement,
            // the total and the steps taken compare.
            Step::Rearrange { product, count } => {
                let target = count.map(|count| ShardCount::new(count).unwrap());
                let product = ProductId::parse(product).unwrap();
                match stock::rearrange(&self.store, &product, target, Duration::ZERO).await {
                    Ok(done) => json!({
                        "count": done.after.count.get(),
                        "span": done.after.span(),
                        "total": done.after.total(),
                        "before": done.before.total(),
                        // Each step's arrangements, not its changes: where units sit among
                        // the shards depends on each sale's random start.
                        "steps": done
                            .steps
                            .iter()
                            .map(|step| {
                                let (from, to) = (step.from, step.to);
                                let (from_count, to_count) = (from.count.get(), to.count.get());
                                json!([from_count, from.span, to_count, to.span, step.unseals])
                            })
                            .collect::<Vec<_>>(),
                        "retries": done.retries,
                    }),
                    Err(error) => json!({"error": error.code()}),
                }
            }
        }
    }

    /// What the scenario left: balances, stock, and every order by name.
    async fn ledger(&self, plan: &SeedPlan) -> Value {
        let mut balances = Vec::new();
        for number in 1..=plan.users + 1 {
            balances.push(self.store.balance(&user(number)).await);
        }
        let mut products: Vec<String> = (1..=plan.products)
            .map(|number| format!("product-{number}"))
            .chain(plan.extra_products.iter().map(|(name, _, _)| name.clone()))
            .collect();
        products.push("product-404".to_owned());
        let mut stock = serde_json::Map::new();
        for name in products {
            let units = self.store.stock(&ProductId::parse(&name).unwrap()).await;
            stock.insert(name, json!(units));
        }
        let mut orders: Vec<Value> = self
            .store
            .orders()
            .await
            .into_iter()
            .map(|order| self.normalize(&serde_json::to_value(order).unwrap()))
            .collect();
        orders.sort_by_key(Value::to_string);
        json!({
            "balances": balances,
            "stock": stock,
            "orders": orders,
            "violations": self.store.violations().await,
        })
    }
}

/// Runs `steps` on both stores in lockstep and compares every answer, then what they left.
async fn assert_same<A: Store, B: Store>(
    plan: &SeedPlan,
    real: &mut Side<A>,
    memory: &mut Side<B>,
    steps: &[Step],
) {
    for (index, step) in steps.iter().enumerate() {
        let expected = real.run(*step).await;
        let observed = memory.run(*step).await;
        assert_eq!(
            observed, expected,
            "step {index} ({step:?}) differs:\nmemory   {observed:#}\nDynamoDB {expected:#}"
        );
    }
    let expected = real.ledger(plan).await;
    let observed = memory.ledger(plan).await;
    assert_eq!(
        observed, expected,
        "the stores differ after the scenario:\nmemory   {observed:#}\nDynamoDB {expected:#}"
    );
    assert_eq!(
        expected["violations"],
        json!([]),
        "the scenario conserves money and stock"
    );
}

fn plan() -> SeedPlan {
    SeedPlan {
        users: 3,
        balance: 100_000,
        products: 3,
        stock: 5,
        extra_products: vec![
            ("product-scarce".into(), 1_000, 1),
            ("product-dear".into(), 60_000, 10),
            ("product-sharded".into(), 2_000, 6),
        ],
        sharded: vec![("product-sharded".into(), 3)],
    }
}

const P1_2: Lines = &[("product-1", 2)];
const P1_1: Lines = &[("product-1", 1)];
const P2_P3: Lines = &[("product-2", 1), ("product-3", 1)];
const SCARCE: Lines = &[("product-scarce", 1)];

fn create(user: u32, key: Option<&'static str>, lines: Lines, name: Option<&'static str>) -> Step {
    Step::Create {
        user,
        key,
        lines,
        name,
    }
}

fn pay(user: u32, key: Option<&'static str>, order: &'static str) -> Step {
    Step::Pay { user, key, order }
}

fn cancel(user: u32, key: Option<&'static str>, order: &'static str) -> Step {
    Step::Cancel { user, key, order }
}

#[tokio::test]
async fn the_memory_store_answers_as_dynamodb_local_does() {
    let plan = plan();
    let missing = OrderId::random();
    let mut real = Side::new(seeded_table(&plan).await.store, missing);
    let mut memory = Side::new(MemoryStore::seeded(&plan), missing);
    let steps = [
        // Creates: a success, a keyed success and its replay, the key with another body.
        create(1, None, P1_2, Some("a")),
        create(1, Some("k-b"), P2_P3, Some("b")),
        create(1, Some("k-b"), P2_P3, None),
        create(1, Some("k-b"), &[("product-2", 2)], None),
        // Refusals: out of stock (the first short line is named, nothing is reserved), an
        // unknown product, an unknown user, and a keyed refusal and its replay.
        create(1, None, &[("product-1", 4)], None),
        create(1, None, &[("product-1", 1), ("product-3", 9)], None),
        create(1, None, &[("product-1", 1), ("product-404", 1)], None),
        create(9, None, P1_1, None),
        create(1, Some("k-404"), &[("product-404", 1)], None),
        create(1, Some("k-404"), &[("product-404", 1)], None),
        // A keyed out-of-stock refusal stays the key's answer after the stock comes back.
        create(2, Some("k-c"), SCARCE, Some("c")),
        create(1, Some("k-oos"), SCARCE, None),
        cancel(2, None, "c"),
        create(1, Some("k-oos"), SCARCE, None),
        // Payments: once, its replay, already paid with and without keys.
        pay(1, Some("p-a"), "a"),
        pay(1, Some("p-a"), "a"),
        pay(1, None, "a"),
        pay(1, Some("p-a2"), "a"),
        pay(1, Some("p-a2"), "a"),
        // An insufficient balance, kept as the key's answer.
        create(1, None, &[("product-dear", 2)], Some("d")),
        pay(1, Some("p-d"), "d"),
        pay(1, Some("p-d"), "d"),
        pay(1, None, "b"),
        // Cancelling a paid order refunds it; the payment's retry still gets its 200.
        cancel(1, Some("c-a"), "a"),
        cancel(1, Some("c-a"), "a"),
        pay(1, Some("p-a"), "a"),
        cancel(1, None, "a"),
        pay(1, None, "a"),
        // Unknown orders, and orders of another user, are not found.
        pay(1, None, "missing"),
        pay(1, Some("p-missing"), "missing"),
        pay(1, Some("p-missing"), "b"),
        pay(2, None, "a"),
        cancel(2, None, "b"),
        cancel(1, None, "b"),
        // A key used on another route is refused.
        pay(1, Some("c-a"), "b"),
        // A key in flight: a retry is told to wait, another body is refused; once released
        // the retry runs, and then replays.
        Step::Hold {
            user: 3,
            key: "held",
            lines: P1_1,
            claim: "first",
        },
        create(3, Some("held"), P1_1, None),
        create(3, Some("held"), P1_2, None),
        Step::Release { claim: "first" },
        create(3, Some("held"), P1_1, Some("e")),
        create(3, Some("held"), P1_1, None),
        // A claim that lapsed and was taken by another request: its refusal is not kept (the
        // other answer is returned), and its create commits nothing.
        Step::Hold {
            user: 2,
            key: "lost",
            lines: P1_1,
            claim: "lost",
        },
        Step::Release { claim: "lost" },
        Step::Hold {
            user: 2,
            key: "lost",
            lines: P1_1,
            claim: "taken",
        },
        Step::CreateUnder {
            claim: "lost",
            lines: P1_1,
        },
        Step::Refuse { claim: "lost" },
        Step::Refuse { claim: "taken" },
        Step::Refuse { claim: "lost" },
        Step::Release { claim: "taken" },
        // Reads: an order, another user's, an unknown one; lists paged short, exact and long.
        Step::Get {
            user: 1,
            order: "b",
        },
        Step::Get {
            user: 2,
            order: "a",
        },
        Step::Get {
            user: 1,
            order: "missing",
        },
        Step::List { user: 1, limit: 2 },
        Step::List { user: 1, limit: 3 },
        Step::List {
            user: 1,
            limit: 100,
        },
        Step::List { user: 2, limit: 1 },
        Step::List { user: 3, limit: 5 },
        Step::List { user: 9, limit: 5 },
    ];
    assert_same(&plan, &mut real, &mut memory, &steps).await;
}

#[tokio::test]
async fn expired_answers_are_handled_alike() {
    // GIVEN answers kept for one second on both stores
    let plan = plan();
    let ttl = Duration::from_secs(1);
    let table = fresh_table_with(StoreSettings {
        answer_ttl: ttl,
        ..test_settings()
    })
    .await;
    order_service::app::stock::seed(&table.store, &plan)
        .await
        .unwrap();
    let missing = OrderId::random();
    let mut real = Side::new(table.store, missing);
    let mut memory = Side::new(MemoryStore::seeded_with_answer_ttl(&plan, ttl), missing);
    let steps = [
        create(1, Some("late"), P1_1, Some("a")),
        pay(1, Some("late-pay"), "a"),
        create(1, Some("reuse"), &[("product-2", 1)], Some("r")),
        pay(1, Some("late-refusal"), "missing"),
        // Records count as expired once `expiresAt < now`, in whole seconds.
        Step::Sleep(Duration::from_millis(2_100)),
        // WHEN a keyed create is retried after its answer expired THEN it finds its order (as
        // it is now: paid) and replays it, and again, without a second effect
        create(1, Some("late"), P1_1, None),
        create(1, Some("late"), P1_1, None),
        // AND an expired payment key runs again and is refused: the order is paid
        pay(1, Some("late-pay"), "a"),
        pay(1, Some("late-pay"), "a"),
        // AND an expired create key with another body finds a different request's order
        create(1, Some("reuse"), &[("product-2", 2)], None),
        create(1, Some("reuse"), &[("product-2", 1)], None),
        // AND an expired refusal is decided again
        pay(1, Some("late-refusal"), "missing"),
        Step::List { user: 1, limit: 10 },
    ];
    assert_same(&plan, &mut real, &mut memory, &steps).await;
}

#[tokio::test]
async fn sharded_stock_is_sold_given_back_and_resharded_alike() {
    let plan = plan();
    let missing = OrderId::random();
    let mut real = Side::new(seeded_table(&plan).await.store, missing);
    let mut memory = Side::new(MemoryStore::seeded(&plan), missing);
    const FIVE: Lines = &[("product-sharded", 5)];
    const TWO: Lines = &[("product-sharded", 2)];
    const ONE: Lines = &[("product-sharded", 1)];
    let rearrange = |count| Step::Rearrange {
        product: "product-sharded",
        count,
    };
    let steps = [
        // Six units over three shards (2, 2, 2): five come from several shards, two are more
        // than what is left, the last one is sold wherever it is, then none.
        create(1, None, FIVE, Some("s1")),
        create(2, None, TWO, None),
        create(2, Some("k-s"), ONE, Some("s2")),
        create(2, Some("k-s"), ONE, None),
        create(3, None, ONE, None),
        // That refusal sealed the sold-out shards: a reshard takes the seal off first (three
        // steps), and a cancel gives its five back over the shards its order saw, to the first
        // one where a shard is gone.
        rearrange(Some(2)),
        cancel(1, None, "s1"),
        // A reshard to one shard (two steps: stop selling from the other, then remove it);
        // the cancel of an order made on three shards gives back to the one left.
        rearrange(Some(1)),
        cancel(2, Some("c-s2"), "s2"),
        // Up to four shards, all six sold in one line, then none; a rebalance of nothing.
        rearrange(Some(4)),
        create(3, None, &[("product-sharded", 6)], Some("s3")),
        create(3, None, ONE, None),
        rearrange(None),
        // An unknown product has nothing to rearrange.
        Step::Rearrange {
            product: "product-404",
            count: Some(2),
        },
    ];
    assert_same(&plan, &mut real, &mut memory, &steps).await;
}
