//! The real `create-order` binary under an in-test Lambda Runtime API: one process serving many
//! invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`) still sells exactly the stock and leaves
//! a clean audit, and without the variable it serves one invocation at a time.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use order_service::domain::ProductId;
use order_service::store::SeedPlan;
use serde_json::Value;
use testkit::{seeded_table, test_settings, EventBuilder, TestTable, TEST_JWT_SECRET};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

const ROUTE: &str = "/users/{userId}/orders";
const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";

/// The longest a table may take to be created and seeded, or audited: a cold JVM on a
/// two-core machine is slow, but a hang must fail the test rather than block CI.
const STORE_STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest the function may take to answer every queued invocation. It is far above what
/// a debug build needs, so it only ever catches a hang or a lost invocation.
const ANSWERS_TIMEOUT: Duration = Duration::from_secs(180);

/// One invocation waiting in the fake Runtime API's queue.
#[derive(Debug)]
struct Invocation {
    request_id: String,
    event: String,
}

/// What the fake Runtime API saw, guarded by one lock so that the in-flight count and its
/// maximum are always consistent with each other.
#[derive(Debug, Default)]
struct Ledger {
    /// Request ids handed out on `/next` and not answered yet.
    in_flight: HashSet<String>,
    max_in_flight: usize,
    /// Every `/response` body, by request id.
    responses: HashMap<String, Value>,
    /// `/error` and `/init/error` reports, and answers for ids that were not in flight.
    anomalies: Vec<String>,
}

#[derive(Debug)]
struct RuntimeApiState {
    /// The invocation queue. A `/next` takes the lock and waits on `recv`, so an empty queue
    /// holds every polling worker in a long poll, as the real Runtime API does.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    ledger: Mutex<Ledger>,
    /// How many invocations were answered (by `/response` or `/error`), for the test to wait on.
    answered: watch::Sender<usize>,
}

/// An in-test Lambda Runtime API on a free loopback port: the four calls lambda_runtime makes.
#[derive(Debug)]
struct FakeRuntimeApi {
    address: SocketAddr,
    state: Arc<RuntimeApiState>,
    /// Kept so that the queue never closes: a drained queue must make `/next` wait, not fail.
    _queue_sender: mpsc::UnboundedSender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeRuntimeApi {
    /// Starts the server with `events` queued in order, request ids `request-1..N`.
    async fn start(events: Vec<String>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        for (index, event) in events.into_iter().enumerate() {
            sender
                .send(Invocation {
                    request_id: format!("request-{}", index + 1),
                    event,
                })
                .expect("the queue is open while its receiver lives");
        }
        let state = Arc::new(RuntimeApiState {
            queue: tokio::sync::Mutex::new(receiver),
            ledger: Mutex::new(Ledger::default()),
            answered: watch::Sender::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake Runtime API needs a loopback port");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let server = tokio::spawn(accept_connections(listener, state.clone()));
        Self {
            address,
            state,
            _queue_sender: sender,
            server,
        }
    }

    fn answered(&self) -> usize {
        *self.state.answered.borrow()
    }

    fn max_in_flight(&self) -> usize {
        self.state.ledger.lock().expect("ledger lock").max_in_flight
    }

    fn anomalies(&self) -> Vec<String> {
        self.state
            .ledger
            .lock()
            .expect("ledger lock")
            .anomalies
            .clone()
    }

    fn responses(&self) -> HashMap<String, Value> {
        self.state
            .ledger
            .lock()
            .expect("ledger lock")
            .responses
            .clone()
    }
}

async fn accept_connections(listener: TcpListener, state: Arc<RuntimeApiState>) {
    // The runtime's pooled client opens one connection per busy worker and keeps them alive,
    // so every connection gets a task of its own.
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(state.clone(), request));
            // A connection ends with an error when the function process is killed mid-poll,
            // which is how every test ends; there is nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    state: Arc<RuntimeApiState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        return Ok(next_invocation(&state).await);
    }
    if method == Method::POST && path == "/2018-06-01/runtime/init/error" {
        let report = format!("init error: {}", String::from_utf8_lossy(&body));
        state
            .ledger
            .lock()
            .expect("ledger lock")
            .anomalies
            .push(report);
        return Ok(reply(StatusCode::ACCEPTED, Bytes::new()));
    }
    let answer = path
        .strip_prefix(INVOCATION_PREFIX)
        .and_then(|rest| rest.split_once('/'));
    match (method, answer) {
        (Method::POST, Some((request_id, kind @ ("response" | "error")))) => {
            record_answer(&state, request_id, kind, &body);
            Ok(reply(StatusCode::ACCEPTED, Bytes::new()))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, Bytes::new())),
    }
}

/// `/next`: waits for a queued invocation and hands it out with the headers lambda_runtime
/// requires, counting it in flight until it is answered.
async fn next_invocation(state: &RuntimeApiState) -> Response<Full<Bytes>> {
    let invocation = state.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new());
    };
    {
        let mut ledger = state.ledger.lock().expect("ledger lock");
        ledger.in_flight.insert(invocation.request_id.clone());
        ledger.max_in_flight = ledger.max_in_flight.max(ledger.in_flight.len());
    }
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis()
        + 60_000;
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &invocation.request_id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:create-order",
        )
        .body(Full::new(Bytes::from(invocation.event)))
        .expect("static headers are valid")
}

/// Records a `/response` or `/error` and takes the invocation out of flight before the
/// runtime gets its 202, so a worker can never poll again while still counted.
fn record_answer(state: &RuntimeApiState, request_id: &str, kind: &str, body: &[u8]) {
    {
        let mut ledger = state.ledger.lock().expect("ledger lock");
        if !ledger.in_flight.remove(request_id) {
            ledger
                .anomalies
                .push(format!("{kind} for {request_id}, which was not in flight"));
        }
        if kind == "response" {
            let value = serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
            ledger.responses.insert(request_id.to_owned(), value);
        } else {
            let report = format!("error for {request_id}: {}", String::from_utf8_lossy(body));
            ledger.anomalies.push(report);
        }
    }
    state.answered.send_modify(|answered| *answered += 1);
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

/// The `create-order` binary as Lambda runs it, killed (and reaped) when dropped, so that a
/// failing assertion never leaves it polling.
#[derive(Debug)]
struct FunctionProcess {
    child: Child,
    log: PathBuf,
}

impl FunctionProcess {
    /// Starts the binary against `runtime_api` and `table`, with exactly the environment the
    /// local stack gives a function, plus `AWS_LAMBDA_MAX_CONCURRENCY` when asked for.
    fn spawn(runtime_api: SocketAddr, table: &TestTable, max_concurrency: Option<u32>) -> Self {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", table.table));
        let log_file = std::fs::File::create(&log).expect("the function log can be created");
        let settings = test_settings();
        let mut command = Command::new(env!("CARGO_BIN_EXE_create-order"));
        // A clean environment: a variable inherited from the shell (an AWS profile, or
        // AWS_LAMBDA_MAX_CONCURRENCY itself) must not change what the test measures.
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "create-order")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("TABLE_NAME", &table.table)
            .env("AUTH_MODE", "jwt")
            .env("AUTH_JWT_SECRET", TEST_JWT_SECRET)
            .env("AUTH_ISSUER", order_service::auth::LOCAL_ISSUER)
            .env("AUTH_AUDIENCE", order_service::auth::LOCAL_AUDIENCE)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &table.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .env("FAULT_INJECTION_RATE", "0")
            // The harness's generous store timeouts, for the reason it gives: a cold JVM on a
            // two-core machine can take seconds per transaction, and this test is about
            // contention, not about the production timeouts.
            .env(
                "STORE_CONNECT_TIMEOUT_MS",
                settings.connect_timeout.as_millis().to_string(),
            )
            .env(
                "STORE_ATTEMPT_TIMEOUT_MS",
                settings.attempt_timeout.as_millis().to_string(),
            )
            .env(
                "STORE_OPERATION_TIMEOUT_MS",
                settings.operation_timeout.as_millis().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log_file
                    .try_clone()
                    .expect("the log file handle can be cloned"),
            ))
            .stderr(Stdio::from(log_file));
        if let Some(limit) = max_concurrency {
            command.env("AWS_LAMBDA_MAX_CONCURRENCY", limit.to_string());
        }
        let child = command.spawn().expect("the create-order binary starts");
        Self { child, log }
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The end of the function's output, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The whole log is kept only when the test fails, for reading after the run.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Waits until `expected` invocations are answered, failing fast if the process exits and
/// failing after `ANSWERS_TIMEOUT` if it hangs.
async fn wait_for_answers(api: &FakeRuntimeApi, function: &mut FunctionProcess, expected: usize) {
    let mut answered = api.state.answered.subscribe();
    let outcome = timeout(ANSWERS_TIMEOUT, async {
        loop {
            if *answered.borrow_and_update() >= expected {
                return None;
            }
            if let Some(status) = function.exit_status() {
                return Some(status);
            }
            // Wake on every answer, and at least every 100 ms to notice a process that died.
            let _ = timeout(Duration::from_millis(100), answered.changed()).await;
        }
    })
    .await;
    let failure = match outcome {
        Ok(None) => return,
        Ok(Some(status)) => format!("create-order exited with {status}"),
        Err(_) => format!("create-order did not answer within {ANSWERS_TIMEOUT:?}"),
    };
    panic!(
        "{failure} after {} of {expected} answers\nanomalies: {:#?}\nfunction log ({}):\n{}",
        api.answered(),
        api.anomalies(),
        function.log.display(),
        function.log_tail()
    );
}

/// The status and JSON body of a Lambda proxy response as the function posted it.
fn status_and_body(response: &Value) -> (u64, Value) {
    let status = response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("a response without a statusCode: {response}"));
    let raw = response["body"].as_str().unwrap_or("");
    let bytes = if response["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_else(|error| panic!("a body that is not base64 ({error}): {response}"))
    } else {
        raw.as_bytes().to_vec()
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// A create event for `user-N` buying one unit of `product`, signed for that user.
fn buy_one(number: u32, product: &str) -> String {
    let user = format!("user-{number}");
    EventBuilder::new("POST", ROUTE)
        .path("userId", &user)
        .as_user(&user)
        .json(&format!(
            r#"{{"items":[{{"productId":"{product}","quantity":1}}]}}"#
        ))
        .event_json()
        .to_string()
}

/// Queues one `buy_one` of `product` per buyer (`user-1..=buyers`) at a fresh fake Runtime API,
/// runs one create-order process with `max_concurrency` against `table` until every invocation
/// is answered, and stops the process: what is left to look at is what the API saw.
async fn serve_buyers(
    table: &TestTable,
    buyers: u32,
    product: &str,
    max_concurrency: Option<u32>,
) -> FakeRuntimeApi {
    let events = (1..=buyers)
        .map(|number| buy_one(number, product))
        .collect();
    let api = FakeRuntimeApi::start(events).await;
    let mut function = FunctionProcess::spawn(api.address, table, max_concurrency);
    wait_for_answers(&api, &mut function, buyers as usize).await;
    api
}

/// `user-1..=buyers`, with 100,000 won each, and `product-1` with 100 units.
fn buyers_plan(buyers: u32) -> SeedPlan {
    SeedPlan {
        users: buyers,
        balance: 100_000,
        products: 1,
        stock: 100,
        ..SeedPlan::default()
    }
}

async fn seeded(plan: &SeedPlan) -> TestTable {
    timeout(STORE_STEP_TIMEOUT, seeded_table(plan))
        .await
        .expect("the test table was not created and seeded in time")
}

async fn stock_of(table: &TestTable, product: &str) -> Option<i64> {
    let product = ProductId::parse(product).expect("a valid product id");
    timeout(STORE_STEP_TIMEOUT, table.store.product_stock(&product))
        .await
        .expect("the stock read did not finish in time")
        .expect("the stock can be read")
}

async fn assert_audit_clean(table: &TestTable) {
    let report = timeout(STORE_STEP_TIMEOUT, table.store.audit())
        .await
        .expect("the audit did not finish in time")
        .expect("the audit can scan the table");
    assert!(
        report.is_clean(),
        "audit violations: {:#?}",
        report.violations
    );
}

#[tokio::test]
async fn one_process_serving_sixteen_invocations_at_once_sells_exactly_the_stock() {
    // GIVEN 50 units of a flash product, 200 buyers, and one create per buyer queued at a
    // Runtime API that a single create-order process polls with 16 workers
    let buyers = 200;
    let table = seeded(&SeedPlan {
        extra_products: vec![("product-flash".into(), 5_000, 50)],
        ..buyers_plan(buyers)
    })
    .await;

    // WHEN every invocation is answered
    let api = serve_buyers(&table, buyers, "product-flash", Some(16)).await;

    // THEN nothing failed outside the HTTP responses, every request has exactly one answer,
    // exactly 50 are created and the other 150 are told the product is out of stock
    assert_eq!(api.anomalies(), Vec::<String>::new());
    let responses = api.responses();
    assert_eq!(responses.len(), buyers as usize);
    let mut created_orders = HashSet::new();
    let mut out_of_stock = 0;
    for (request_id, response) in &responses {
        match status_and_body(response) {
            (201, body) => {
                assert_eq!(body["status"], "CREATED", "{request_id}: {body}");
                assert_eq!(body["items"][0]["productId"], "product-flash", "{body}");
                let order_id = body["orderId"].as_str().expect("a created order has an id");
                created_orders.insert(order_id.to_owned());
            }
            (409, body) if body["code"] == "OUT_OF_STOCK" => out_of_stock += 1,
            (status, body) => panic!("{request_id}: unexpected {status} {body}"),
        }
    }
    assert_eq!((created_orders.len(), out_of_stock), (50, 150));

    // AND the table holds exactly the orders that were acknowledged, the stock is zero and
    // money and stock are exactly conserved
    assert_eq!(stock_of(&table, "product-flash").await, Some(0));
    let stored: HashSet<String> = timeout(STORE_STEP_TIMEOUT, table.store.all_orders())
        .await
        .expect("the order scan did not finish in time")
        .expect("the orders can be scanned")
        .iter()
        .map(|order| order.order_id.to_string())
        .collect();
    assert_eq!(stored, created_orders);
    assert_audit_clean(&table).await;

    // AND the one process really served several invocations at once, never more than allowed
    let max_in_flight = api.max_in_flight();
    eprintln!("max in flight with AWS_LAMBDA_MAX_CONCURRENCY=16: {max_in_flight}");
    assert!(
        (2..=16).contains(&max_in_flight),
        "max in flight {max_in_flight}, expected 2..=16"
    );
}

#[tokio::test]
async fn without_a_concurrency_setting_the_process_serves_one_invocation_at_a_time() {
    // GIVEN an ordinary product and ten creates queued for a process without
    // AWS_LAMBDA_MAX_CONCURRENCY, as on classic Lambda
    let buyers = 10;
    let table = seeded(&buyers_plan(buyers)).await;

    // WHEN every invocation is answered
    let api = serve_buyers(&table, buyers, "product-1", None).await;

    // THEN every create succeeded, one invocation at a time
    assert_eq!(api.anomalies(), Vec::<String>::new());
    let responses = api.responses();
    assert_eq!(responses.len(), buyers as usize);
    for (request_id, response) in &responses {
        let (status, body) = status_and_body(response);
        assert_eq!(status, 201, "{request_id}: {body}");
    }
    assert_eq!(stock_of(&table, "product-1").await, Some(90));
    assert_audit_clean(&table).await;
    let max_in_flight = api.max_in_flight();
    eprintln!("max in flight without AWS_LAMBDA_MAX_CONCURRENCY: {max_in_flight}");
    assert_eq!(max_in_flight, 1);
}
