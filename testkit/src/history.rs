//! Concurrent histories, checked the way Jepsen checks databases.
//!
//! Several clients at once send random creates, payments, cancellations and reads, with
//! Idempotency-Keys reused and retried, to a store that conflicts and throttles as production
//! DynamoDB does (`dynamodb-faithful` in front of DynamoDB Local). Each operation is recorded
//! with the instants it was invoked and completed and what the client was told. The history is
//! then checked:
//!
//! - **linearizable per order**: each order's operations have some order consistent with
//!   real time (an operation that completed before another began comes first) in which the
//!   order's state machine and its keys' first answers explain every result
//!   ([`OrderSpec`], searched by [`crate::linearizability`]). An operation whose outcome the
//!   client cannot know (a 5xx, a timeout) may or may not have happened: it stays "in flight"
//!   for ever, as Jepsen's `:info` operations do, while its client goes on.
//!   An answer that says nothing was done (409 `REQUEST_IN_PROGRESS` or `CONCURRENT_REQUEST`)
//!   is left out: the rest of the history holds it to that. Such a request, and one whose
//!   outcome is unknown, may still have left its key's claim behind (the release is best
//!   effort): until its lease lapses, the key refuses a different request with 422. The
//!   checker models that claim and its lapse as two operations that may or may not have
//!   happened (`Op::Claim`, `Op::Lapse`), where the key is reused for another kind of request;
//! - **each key applied at most once, replayed byte for byte**: among the answers a key got,
//!   at most one was not a replay, and every answer is the same bytes;
//! - **conservation**, by the caller: the audit over the whole table after the run.
//!
//! Users have money and products stock to spare, so an order's results depend on that order
//! alone and each order can be checked on its own; running out is the flash sale's business.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use lambda_http::{Body, Response};
use order_service::domain::{IdempotencyKey, NewOrder, OrderId, ProductId, ShardCount, UserId};
use order_service::http::problem::problem_response;
use order_service::store::{ArrangeStock, ChangeOrders, PlaceOrders, SeedPlan};

use crate::{answered, new_order, Action};

mod check;
pub use check::{check, OrderSpec, Verdict, SEARCH_BUDGET};

/// Money and stock to spare: no order is refused for want of either. Two of the three
/// products keep their stock in shards (4 and 8), so that creates and cancellations take and
/// give back across shards, and a rearrangement run beside the clients (`with_rearrangements`)
/// moves units under them.
pub fn plan(users: u32) -> SeedPlan {
    SeedPlan {
        users,
        balance: 1_000_000_000_000,
        products: 3,
        stock: 1_000_000_000,
        sharded: vec![("product-2".to_owned(), 4), ("product-3".to_owned(), 8)],
        ..SeedPlan::default()
    }
}

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub clients: usize,
    pub operations_per_client: usize,
    pub users: u32,
    pub seed: u64,
}

/// What a client asks of one order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// A keyed create (the key names the order).
    Create {
        key: String,
    },
    Pay {
        key: Option<String>,
    },
    Cancel {
        key: Option<String>,
    },
    Get,
    /// Never sent: the checker's model of a claim that a request of `kind` left on `key`
    /// (its outcome unknown, or nothing done) and that outlived it.
    Claim {
        key: String,
        kind: &'static str,
    },
    /// Never sent: that claim's lease lapsing, so that another request may take the key.
    Lapse {
        key: String,
        kind: &'static str,
    },
}

impl Op {
    fn key(&self) -> Option<&str> {
        match self {
            Op::Create { key } | Op::Claim { key, .. } | Op::Lapse { key, .. } => Some(key),
            Op::Pay { key } | Op::Cancel { key } => key.as_deref(),
            Op::Get => None,
        }
    }

    /// What a key's record keeps of the request, beside the order (the fingerprint's parts).
    fn kind(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Pay { .. } => "pay",
            Op::Cancel { .. } => "cancel",
            Op::Get => "get",
            Op::Claim { kind, .. } | Op::Lapse { kind, .. } => kind,
        }
    }
}

/// What a client was told, as far as the order's state machine is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// 2xx with the order in this status.
    Order(&'static str),
    /// 404/409 with this business refusal.
    Refused(String),
    /// 422: the key belongs to another request.
    KeyReused,
    /// What `Op::Claim` and `Op::Lapse` answer (never checked: they never complete).
    Unobserved,
}

/// How an operation ended, for the checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A definite answer.
    Done(Ret),
    /// Nothing was done (409 REQUEST_IN_PROGRESS, CONCURRENT_REQUEST).
    NothingDone,
    /// Unknown whether it happened (5xx).
    Unknown,
    /// An answer no correct service gives here (a 400, a 500, an order in a status that
    /// does not exist): a violation in itself.
    Wrong(String),
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Event {
    /// The client that sent it (the checker orders operations by their instants alone).
    pub client: usize,
    pub user: UserId,
    pub order: OrderId,
    pub op: Op,
    pub invoked: Instant,
    pub completed: Instant,
    pub outcome: Outcome,
    pub status: u16,
    pub replayed: bool,
    pub body: Vec<u8>,
}

/// A recorded run.
#[derive(Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
}

const STATUSES: [&str; 3] = ["CREATED", "PAID", "CANCELLED"];

/// What a response tells the checker.
fn outcome_of(response: &Response<Body>) -> Outcome {
    let status = response.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
    let code = body["code"].as_str().unwrap_or("").to_owned();
    match status {
        200 | 201 => match STATUSES
            .iter()
            .find(|known| Some(**known) == body["status"].as_str())
        {
            Some(status) => Outcome::Done(Ret::Order(status)),
            None => Outcome::Wrong(format!("{status} without a known order status: {body}")),
        },
        404 | 409
            if matches!(
                code.as_str(),
                "ORDER_NOT_FOUND" | "ORDER_ALREADY_PAID" | "ORDER_CANCELLED"
            ) =>
        {
            Outcome::Done(Ret::Refused(code))
        }
        409 if matches!(code.as_str(), "REQUEST_IN_PROGRESS" | "CONCURRENT_REQUEST") => {
            Outcome::NothingDone
        }
        422 if code == "IDEMPOTENCY_KEY_REUSED" => Outcome::Done(Ret::KeyReused),
        501..=599 => Outcome::Unknown,
        other => Outcome::Wrong(format!("{other} {code}: {body}")),
    }
}

/// The order a client acts on.
#[derive(Debug, Clone)]
struct Known {
    user: UserId,
    order: OrderId,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `workload` against `store` and records what every client was told.
pub async fn run<S>(store: &S, workload: Workload) -> History
where
    S: PlaceOrders + ChangeOrders + Clone + Send + Sync + 'static,
{
    let orders: Arc<Mutex<Vec<Known>>> = Arc::default();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let mut tasks = Vec::new();
    for client in 0..workload.clients {
        let store = store.clone();
        let orders = orders.clone();
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(workload.seed ^ ((client as u64 + 1) * 0x9E37));
            let user = UserId::parse(&format!("user-{}", 1 + client as u32 % workload.users))
                .unwrap_or_else(|error| panic!("{error}"));
            // The client's last keyed operation, to retry it or reuse its key.
            let mut last: Option<(Known, Op)> = None;
            for number in 0..workload.operations_per_client {
                let shared: Vec<Known> = lock(&orders).clone();
                let roll = rng.u32(0..100);
                let pick = |rng: &mut fastrand::Rng| {
                    (!shared.is_empty()).then(|| shared[rng.usize(..shared.len())].clone())
                };
                let key = |rng: &mut fastrand::Rng, prefix: &str| {
                    (rng.u32(0..100) < 70).then(|| format!("{prefix}-{client}-{number}"))
                };
                let (known, op) = match (roll, pick(&mut rng), last.clone()) {
                    (0..=24, _, _) | (_, None, _) => {
                        let key = format!("create-{client}-{number}");
                        let order = IdempotencyKey::parse(&key)
                            .unwrap_or_else(|error| panic!("{error}"))
                            .order_id(&user);
                        let known = Known {
                            user: user.clone(),
                            order,
                        };
                        lock(&orders).push(known.clone());
                        (known, Op::Create { key })
                    }
                    (25..=44, Some(known), _) => {
                        let key = key(&mut rng, "pay");
                        (known, Op::Pay { key })
                    }
                    (45..=59, Some(known), _) => {
                        let key = key(&mut rng, "cancel");
                        (known, Op::Cancel { key })
                    }
                    (60..=74, Some(known), _) => (known, Op::Get),
                    (75..=89, _, Some((known, op))) => (known, op),
                    (_, _, Some((known, Op::Pay { key: Some(key) }))) => {
                        (known, Op::Cancel { key: Some(key) })
                    }
                    (_, _, Some((known, Op::Cancel { key: Some(key) }))) => {
                        (known, Op::Pay { key: Some(key) })
                    }
                    (_, _, Some((known, Op::Create { key }))) => {
                        (known, Op::Pay { key: Some(key) })
                    }
                    (_, Some(known), _) => (known, Op::Get),
                };
                let invoked = Instant::now();
                let response = perform(&store, &known, &op).await;
                let completed = Instant::now();
                let outcome = outcome_of(&response);
                let event = Event {
                    client,
                    user: known.user.clone(),
                    order: known.order,
                    op: op.clone(),
                    invoked,
                    completed,
                    status: response.status().as_u16(),
                    replayed: crate::is_replayed(&response),
                    body: response.body().to_vec(),
                    outcome: outcome.clone(),
                };
                lock(&events).push(event);
                if op.key().is_some() {
                    last = Some((known, op));
                }
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|error| panic!("a client failed: {error}"));
    }
    let events = std::mem::take(&mut *lock(&events));
    History { events }
}

/// Runs `work` while a nemesis troubles the store through `proxy`: every few hundred
/// milliseconds, for a short while, transactions are answered after `late_ms` (past the
/// clients' attempt timeout, so commits become ambiguous) or cancelled as conflicts.
pub async fn with_nemesis<F: std::future::Future>(
    proxy: &dynamodb_faithful::Handle,
    late_ms: u64,
    seed: u64,
    work: F,
) -> F::Output {
    use dynamodb_faithful::{Faults, Injected};
    let nemesis = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(rng.u64(150..400))).await;
                let faults = if rng.bool() {
                    // Mostly answers the store's own resends recover; sometimes ones so late
                    // that the request gives up and its outcome is unknown.
                    let late = if rng.u32(0..4) == 0 {
                        late_ms * 6
                    } else {
                        late_ms
                    };
                    Faults::late_answers(Some("TransactWriteItems"), late)
                } else {
                    Faults::injecting(Injected::Conflict, rng.u64(1..4))
                };
                proxy.update_faults(|current| *current = faults);
                tokio::time::sleep(std::time::Duration::from_millis(rng.u64(30..120))).await;
                proxy.update_faults(|current| *current = Faults::default());
            }
        })
    };
    let output = work.await;
    nemesis.abort();
    proxy.update_faults(|current| *current = dynamodb_faithful::Faults::default());
    output
}

/// Runs `work` while an operator rearranges the sharded products' stock under the clients, one
/// rearrangement after another: product-3 resharded to 2, 5 and 8 shards in turn (to fewer:
/// sales stop choosing the shards it removes, then they go; to more: new shards take their
/// share), product-2 rebalanced between them. Returns the work's output and how many
/// rearrangements completed, once the one under way when the work ended has finished; one
/// that failed (the nemesis may make it) is logged and left, as an operator would run it again.
pub async fn with_rearrangements<S, F>(store: &S, work: F) -> (F::Output, u32)
where
    S: ArrangeStock + Clone + Send + Sync + 'static,
    F: std::future::Future,
{
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let done = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let operator = {
        let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
        tokio::spawn(async move {
            let product =
                |name: &str| ProductId::parse(name).unwrap_or_else(|error| panic!("{error}"));
            let (resharded, rebalanced) = (product("product-3"), product("product-2"));
            let settle = std::time::Duration::from_millis(50);
            for count in [2, 5, 8].into_iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let target = ShardCount::new(count).unwrap_or_else(|error| panic!("{error}"));
                for (product, target) in [(&resharded, Some(target)), (&rebalanced, None)] {
                    match order_service::app::stock::rearrange(&store, product, target, settle)
                        .await
                    {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => eprintln!("a rearrangement of {product} failed: {error}"),
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    let output = work.await;
    // The operator finishes the rearrangement it is in, so the table is quiet for the audit.
    stop.store(true, Ordering::Relaxed);
    operator
        .await
        .unwrap_or_else(|error| panic!("the operator failed: {error}"));
    (output, done.load(Ordering::Relaxed))
}

/// One line of a product the create asks for: the order's key picks it, so that every
/// create with the same key is the same request.
fn order_for(key: &str) -> NewOrder {
    let digest: u32 = key.bytes().map(u32::from).sum();
    let product = format!("product-{}", 1 + digest % 3);
    new_order(&[(&product, u64::from(1 + digest % 3))])
}

async fn perform<S>(store: &S, known: &Known, op: &Op) -> Response<Body>
where
    S: PlaceOrders + ChangeOrders,
{
    let result = match op {
        Op::Create { key } => {
            let order = order_for(key);
            answered(store, &known.user, Some(key), Action::Create(&order)).await
        }
        Op::Pay { key } => {
            answered(store, &known.user, key.as_deref(), Action::Pay(known.order)).await
        }
        Op::Cancel { key } => {
            answered(
                store,
                &known.user,
                key.as_deref(),
                Action::Cancel(known.order),
            )
            .await
        }
        Op::Get => match order_service::app::read::get_order(store, &known.user, known.order).await
        {
            Ok(order) => order_service::http::Reply::ok(&order)
                .map(order_service::http::Reply::into_response),
            Err(error) => Err(error),
        },
        Op::Claim { .. } | Op::Lapse { .. } => {
            panic!("{op:?} is the checker's model, never a request")
        }
    };
    result.unwrap_or_else(|error| problem_response(&error))
}
