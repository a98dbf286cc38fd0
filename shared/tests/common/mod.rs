//! What the tests that put a misbehaving network between the store and DynamoDB Local share
//! (tests/exactly_once.rs, tests/store_faults.rs): one proxy that can hold back the answers to
//! `TransactWriteItems`, answer chosen ones itself with a cancellation, and count them all.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use order_service::domain::{NewOrder, ProductId};
use order_service::store::{build_local_client, DynamoOrderStore, SeedPlan, StoreSettings};
use testkit::{new_order, TestTable};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The cancellation the proxy answers with instead of DynamoDB.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cancel {
    Conflict,
    Throttling,
}

/// What the proxy does to `TransactWriteItems`, changeable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Milliseconds by which a forwarded transaction's answer is held back: the write reaches
    /// DynamoDB and commits, only its answer is late.
    pub delay_ms: AtomicU64,
    /// What the next `budget` transactions are answered with, without being forwarded.
    pub cancel: Option<Cancel>,
    pub budget: AtomicU64,
    /// `TransactWriteItems` requests seen, answered by the proxy or forwarded.
    pub transacts: AtomicU64,
}

impl Faults {
    pub(crate) fn delaying() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub(crate) fn cancelling(kind: Cancel, budget: u64) -> Arc<Self> {
        Arc::new(Self {
            cancel: Some(kind),
            budget: AtomicU64::new(budget),
            ..Self::default()
        })
    }

    pub(crate) fn transacts(&self) -> u64 {
        self.transacts.load(Ordering::Relaxed)
    }

    /// Whether this transaction is answered by the proxy (and uses up one of the budget).
    fn cancels(&self) -> Option<Cancel> {
        let kind = self.cancel?;
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .ok()
            .map(|_| kind)
    }
}

fn cancellation(kind: Cancel) -> Vec<u8> {
    let code = match kind {
        Cancel::Conflict => "TransactionConflict",
        Cancel::Throttling => "ThrottlingError",
    };
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{code}]","CancellationReasons":[{{"Code":"{code}","Message":"injected"}},{{"Code":"None"}},{{"Code":"None"}}]}}"#
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nx-amzn-RequestId: injected\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) off the client connection.
async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut length = 0_usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
        request.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body).await.ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

/// Starts the proxy in front of `upstream` (host:port); returns its port.
async fn proxy(upstream: String, faults: Arc<Faults>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let faults = faults.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let client_write = Arc::new(Mutex::new(client_write));
                let answers = client_write.clone();
                let pending_transact = Arc::new(AtomicBool::new(false));
                let answers_transact = pending_transact.clone();
                let delays = faults.clone();
                let responses = tokio::spawn(async move {
                    let mut buffer = vec![0_u8; 64 * 1024];
                    while let Ok(read) = server_read.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        let delay = delays.delay_ms.load(Ordering::Relaxed);
                        if answers_transact.swap(false, Ordering::Relaxed) && delay > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        }
                        if answers
                            .lock()
                            .await
                            .write_all(&buffer[..read])
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                // HTTP/1.1 without pipelining: a client sends its next request only after the
                // answer to the last, so an injected answer never overtakes a forwarded one.
                let mut reader = BufReader::new(client_read);
                while let Some(request) = read_request(&mut reader).await {
                    let transact = request
                        .windows(18)
                        .any(|window| window == b"TransactWriteItems");
                    if transact {
                        faults.transacts.fetch_add(1, Ordering::Relaxed);
                    }
                    let sent = match transact.then(|| faults.cancels()).flatten() {
                        Some(kind) => {
                            client_write
                                .lock()
                                .await
                                .write_all(&cancellation(kind))
                                .await
                        }
                        None => {
                            pending_transact.store(transact, Ordering::Relaxed);
                            server_write.write_all(&request).await
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                responses.abort();
            });
        }
    });
    port
}

/// A store on `table` that reaches DynamoDB Local through a proxy doing `faults`.
pub(crate) async fn store_through(
    table: &TestTable,
    faults: Arc<Faults>,
    settings: StoreSettings,
) -> DynamoOrderStore {
    let upstream = table.endpoint.trim_start_matches("http://").to_owned();
    let port = proxy(upstream, faults).await;
    let client = build_local_client(&settings, &format!("http://127.0.0.1:{port}")).await;
    DynamoOrderStore::new(client, table.table.clone(), settings)
}

/// Two users with 100,000 KRW, two products with 10 units.
pub(crate) fn small_plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 100_000,
        products: 2,
        stock: 10,
        extra_products: vec![],
    }
}

pub(crate) fn one_unit() -> NewOrder {
    new_order(&[("product-1", 1)])
}

pub(crate) async fn stock(table: &TestTable, product: &str) -> i64 {
    table
        .store
        .product_stock(&ProductId::parse(product).unwrap())
        .await
        .unwrap()
        .unwrap()
}
