//! A model-based test: random sequences of creates, payments, cancellations and retries, with
//! and without Idempotency-Keys (from a small pool, so keys get reused), run against a real
//! DynamoDB Local table and against a plain in-memory model of what the API promises. Every
//! answer's status must match the model's, every replay must be byte-identical to the key's
//! first answer, and after each sequence balances and stock equal the model's and the audit is
//! clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use lambda_http::{Body, Response};
use order_service::domain::{CreateOrderRequest, NewOrder, OrderId, ProductId, UserId};
use order_service::store::{seeded_price_of, SeedPlan};
use order_service::ServiceError;
use proptest::prelude::*;
use testkit::{answered, is_replayed, seeded_table, Action, TestTable};

const USERS: u32 = 2;
const PRODUCTS: u32 = 2;
const STOCK: i64 = 4;
const BALANCE: i64 = 60_000;

#[derive(Debug, Clone)]
enum Step {
    Create {
        user: u32,
        product: u32,
        quantity: u64,
        key: Option<u8>,
    },
    /// Pays the n-th order made so far (modulo), or a missing one when there is none.
    Pay {
        user: u32,
        nth: usize,
        key: Option<u8>,
    },
    Cancel {
        user: u32,
        nth: usize,
        key: Option<u8>,
    },
    /// Sends the n-th earlier request again, exactly as it was sent.
    Retry { nth: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let key = prop::option::of(0_u8..3);
    prop_oneof![
        3 => (1..=USERS, 1..=PRODUCTS, 1_u64..=3, key.clone()).prop_map(
            |(user, product, quantity, key)| Step::Create { user, product, quantity, key }
        ),
        3 => (1..=USERS, 0_usize..8, key.clone()).prop_map(|(user, nth, key)| Step::Pay { user, nth, key }),
        2 => (1..=USERS, 0_usize..8, key).prop_map(|(user, nth, key)| Step::Cancel { user, nth, key }),
        2 => (0_usize..16).prop_map(|nth| Step::Retry { nth }),
    ]
}

/// A request as sent, so that a retry can send it again.
#[derive(Debug, Clone)]
enum Sent {
    Create {
        user: u32,
        product: u32,
        quantity: u64,
        key: Option<String>,
    },
    Pay {
        user: u32,
        order: OrderId,
        key: Option<String>,
    },
    Cancel {
        user: u32,
        order: OrderId,
        key: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Created,
    Paid,
    Cancelled,
}

#[derive(Debug, Clone)]
struct ModelOrder {
    user: u32,
    product: u32,
    quantity: i64,
    total: i64,
    status: Status,
}

/// What the API promises, in memory.
#[derive(Debug, Default)]
struct Model {
    balances: HashMap<u32, i64>,
    stock: HashMap<u32, i64>,
    orders: Vec<(OrderId, ModelOrder)>,
    /// (user, key) -> (fingerprint, status, body of the first answer)
    answers: HashMap<(u32, String), (String, u16, Vec<u8>)>,
}

impl Model {
    fn new() -> Self {
        Self {
            balances: (1..=USERS).map(|user| (user, BALANCE)).collect(),
            stock: (1..=PRODUCTS).map(|product| (product, STOCK)).collect(),
            ..Self::default()
        }
    }

    fn order(&self, id: OrderId) -> Option<&ModelOrder> {
        self.orders
            .iter()
            .find(|(order_id, _)| *order_id == id)
            .map(|(_, order)| order)
    }

    /// The status the API must answer `sent` with, applying its effect to the model. For a
    /// created order the id comes from the response (`created`).
    fn execute(&mut self, sent: &Sent, created: Option<OrderId>) -> u16 {
        match sent {
            Sent::Create {
                user,
                product,
                quantity,
                ..
            } => {
                let quantity = *quantity as i64;
                let stock = self.stock.get_mut(product).unwrap();
                if *stock < quantity {
                    return 409;
                }
                *stock -= quantity;
                let total = seeded_price_of(*product) * quantity;
                self.orders.push((
                    created.expect("a 201 names its order"),
                    ModelOrder {
                        user: *user,
                        product: *product,
                        quantity,
                        total,
                        status: Status::Created,
                    },
                ));
                201
            }
            Sent::Pay { user, order, .. } => {
                let Some(found) = self.order(*order).filter(|found| found.user == *user) else {
                    return 404;
                };
                match found.status {
                    Status::Paid | Status::Cancelled => 409,
                    Status::Created if self.balances[user] < found.total => 409,
                    Status::Created => {
                        let total = found.total;
                        *self.balances.get_mut(user).unwrap() -= total;
                        self.set_status(*order, Status::Paid);
                        200
                    }
                }
            }
            Sent::Cancel { user, order, .. } => {
                let Some(found) = self
                    .order(*order)
                    .filter(|found| found.user == *user)
                    .cloned()
                else {
                    return 404;
                };
                match found.status {
                    Status::Cancelled => 409,
                    was => {
                        *self.stock.get_mut(&found.product).unwrap() += found.quantity;
                        if was == Status::Paid {
                            *self.balances.get_mut(user).unwrap() += found.total;
                        }
                        self.set_status(*order, Status::Cancelled);
                        200
                    }
                }
            }
        }
    }

    fn set_status(&mut self, id: OrderId, status: Status) {
        if let Some((_, order)) = self.orders.iter_mut().find(|(order_id, _)| *order_id == id) {
            order.status = status;
        }
    }
}

fn user_id(user: u32) -> UserId {
    UserId::parse(&format!("user-{user}")).unwrap()
}

fn new_order(product: u32, quantity: u64) -> NewOrder {
    let request: CreateOrderRequest = serde_json::from_str(&format!(
        r#"{{"items":[{{"productId":"product-{product}","quantity":{quantity}}}]}}"#
    ))
    .unwrap();
    NewOrder::try_from(request).unwrap()
}

fn fingerprint(sent: &Sent) -> String {
    match sent {
        Sent::Create {
            product, quantity, ..
        } => format!("create {product} {quantity}"),
        Sent::Pay { order, .. } => format!("pay {order}"),
        Sent::Cancel { order, .. } => format!("cancel {order}"),
    }
}

async fn send(table: &TestTable, sent: &Sent) -> Result<Response<Body>, ServiceError> {
    match sent {
        Sent::Create {
            user,
            product,
            quantity,
            key,
        } => {
            let order = new_order(*product, *quantity);
            answered(
                &table.store,
                &user_id(*user),
                key.as_deref(),
                Action::Create(&order),
            )
            .await
        }
        Sent::Pay { user, order, key } => {
            answered(
                &table.store,
                &user_id(*user),
                key.as_deref(),
                Action::Pay(*order),
            )
            .await
        }
        Sent::Cancel { user, order, key } => {
            answered(
                &table.store,
                &user_id(*user),
                key.as_deref(),
                Action::Cancel(*order),
            )
            .await
        }
    }
}

fn user_of(sent: &Sent) -> u32 {
    match sent {
        Sent::Create { user, .. } | Sent::Pay { user, .. } | Sent::Cancel { user, .. } => *user,
    }
}

fn key_of(sent: &Sent) -> Option<&String> {
    match sent {
        Sent::Create { key, .. } | Sent::Pay { key, .. } | Sent::Cancel { key, .. } => key.as_ref(),
    }
}

async fn run(steps: Vec<Step>) {
    let plan = SeedPlan {
        users: USERS,
        balance: BALANCE,
        products: PRODUCTS,
        stock: STOCK,
        ..SeedPlan::default()
    };
    let table = seeded_table(&plan).await;
    let mut model = Model::new();
    let mut history: Vec<Sent> = Vec::new();
    let missing = OrderId::random();
    for step in steps {
        let key = |key: Option<u8>| key.map(|key| format!("key-{key}"));
        let nth_order = |nth: usize| {
            if model.orders.is_empty() {
                missing
            } else {
                model.orders[nth % model.orders.len()].0
            }
        };
        let sent = match step {
            Step::Create {
                user,
                product,
                quantity,
                key: k,
            } => Sent::Create {
                user,
                product,
                quantity,
                key: key(k),
            },
            Step::Pay { user, nth, key: k } => Sent::Pay {
                user,
                order: nth_order(nth),
                key: key(k),
            },
            Step::Cancel { user, nth, key: k } => Sent::Cancel {
                user,
                order: nth_order(nth),
                key: key(k),
            },
            Step::Retry { nth } if !history.is_empty() => history[nth % history.len()].clone(),
            Step::Retry { .. } => continue,
        };
        let response = send(&table, &sent).await;
        let (status, body, replayed) = match &response {
            Ok(response) => (
                response.status().as_u16(),
                response.body().to_vec(),
                is_replayed(response),
            ),
            Err(error) => (
                order_service::http::problem::status_of(error).as_u16(),
                Vec::new(),
                false,
            ),
        };
        let answer_key = key_of(&sent).map(|key| (user_of(&sent), key.clone()));
        match answer_key.as_ref().and_then(|key| model.answers.get(key)) {
            Some((first_fingerprint, _, _)) if *first_fingerprint != fingerprint(&sent) => {
                assert_eq!(status, 422, "{sent:?}: a reused key");
            }
            Some((_, first_status, first_body)) => {
                assert!(replayed, "{sent:?}: expected a replay");
                assert_eq!(status, *first_status, "{sent:?}: the first answer's status");
                assert_eq!(body, *first_body, "{sent:?}: the first answer's body");
            }
            None => {
                assert!(!replayed, "{sent:?}: nothing to replay");
                let created = (status == 201).then(|| {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    OrderId::parse(json["orderId"].as_str().unwrap()).unwrap()
                });
                let expected = model.execute(&sent, created);
                assert_eq!(status, expected, "{sent:?}");
                if let Some(answer_key) = answer_key {
                    // Refusals come back as errors here: keep what the client was sent.
                    let sent_body = match response {
                        Ok(response) => response.body().to_vec(),
                        Err(error) => order_service::http::problem::problem_response(&error)
                            .body()
                            .to_vec(),
                    };
                    model
                        .answers
                        .insert(answer_key, (fingerprint(&sent), status, sent_body));
                }
            }
        }
        history.push(sent);
    }
    for user in 1..=USERS {
        assert_eq!(
            table.store.user_balance(&user_id(user)).await.unwrap(),
            Some(model.balances[&user]),
            "balance of user-{user}"
        );
    }
    for product in 1..=PRODUCTS {
        let id = ProductId::parse(&format!("product-{product}")).unwrap();
        assert_eq!(
            table.store.product_stock(&id).await.unwrap(),
            Some(model.stock[&product]),
            "stock of product-{product}"
        );
    }
    let report = table.store.audit().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.violations);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_api_behaves_like_its_model(steps in prop::collection::vec(step(), 1..30)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(steps));
    }
}
