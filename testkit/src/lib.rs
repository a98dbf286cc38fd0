//! Test support for every crate of the workspace, kept out of the runtime crate: DynamoDB Local
//! (the real AWS emulator, a Java jar) as a child process on a free port, for integration tests
//! and the local stack, fresh uniquely-named tables for each test, an in-memory store for
//! handler tests that need no Java (`memory`), API Gateway event builders, the OpenAPI
//! contract check, and development tokens.
//!
//! The jar is installed by `cargo xtask install` into `.local/dynamodb/`; `DYNAMODB_LOCAL_DIR`
//! may point elsewhere. The process is started under a small shell watchdog that kills it when
//! the process that started it exits, so no test run leaves Java behind.

// Panicking is how a test harness reports that it cannot provide what the test needs.
#![allow(clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

use order_service::store::{
    build_local_client, schema, ChangeOrders, DynamoOrderStore, PlaceOrders, SeedPlan,
    StoreSettings,
};

pub mod history;
pub mod linearizability;
pub mod memory;

pub use memory::MemoryStore;

/// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`, if installed.
pub fn find_install(start: &Path) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("DYNAMODB_LOCAL_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("DynamoDBLocal.jar").is_file() {
            return Some(dir);
        }
    }
    for ancestor in start.ancestors() {
        let lib = ancestor.join(".local/dynamodb/package/lib");
        if let Ok(entries) = std::fs::read_dir(&lib) {
            let mut candidates: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.join("DynamoDBLocal.jar").is_file())
                .collect();
            candidates.sort();
            if let Some(newest) = candidates.pop() {
                return Some(newest);
            }
        }
    }
    None
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running DynamoDB Local.
#[derive(Debug)]
pub struct DynamoDbLocal {
    pub port: u16,
    child: Child,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("DynamoDB Local is not installed: run `cargo xtask install` (looked under .local/dynamodb and DYNAMODB_LOCAL_DIR)")]
    NotInstalled,
    #[error("cannot start DynamoDB Local: {0}")]
    Io(#[from] std::io::Error),
    #[error("DynamoDB Local did not open port {0} within 60 s")]
    NotReady(u16),
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local from `install_dir` on `port`, in memory or persisting under
    /// `data_dir`, and waits until it accepts connections. With `watch_parent` the process dies
    /// when the current process exits.
    pub fn start(
        install_dir: &Path,
        port: u16,
        data_dir: Option<&Path>,
        log_file: Option<&Path>,
        watch_parent: bool,
    ) -> Result<Self, StartError> {
        let storage = match data_dir {
            Some(dir) => format!("-dbPath '{}' -sharedDb", dir.display()),
            None => "-inMemory".to_owned(),
        };
        let java = format!(
            "exec java -Xms256m -Xmx1g -XX:+UseParallelGC -Djava.library.path='{lib}' -jar '{jar}' {storage} -port {port} -disableTelemetry",
            lib = install_dir.join("DynamoDBLocal_lib").display(),
            jar = install_dir.join("DynamoDBLocal.jar").display(),
        );
        let script = if watch_parent {
            // The watchdog: run Java in the background and kill it once our parent is gone.
            format!(
                "{java_bg} & child=$!; trap 'kill $child 2>/dev/null' EXIT TERM INT; \
                 while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done",
                java_bg = java.trim_start_matches("exec "),
                parent = std::process::id()
            )
        } else {
            java
        };
        let output = match log_file {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(install_dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(Stdio::null())
            .spawn()?;
        let local = Self { port, child };
        local.wait_ready(Duration::from_secs(60))?;
        Ok(local)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(StartError::NotReady(self.port))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The pid of the process started (the watchdog shell, or Java itself without one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DynamoDB Local per test process, started on first use.
fn shared_instance() -> &'static DynamoDbLocal {
    static INSTANCE: OnceLock<DynamoDbLocal> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let install = find_install(&here).unwrap_or_else(|| panic!("{}", StartError::NotInstalled));
        let port = free_port().unwrap_or_else(|error| panic!("no free port: {error}"));
        DynamoDbLocal::start(&install, port, None, None, true)
            .unwrap_or_else(|error| panic!("{error}"))
    })
}

/// A fresh, empty table on the shared DynamoDB Local, with a store and a raw client.
#[derive(Debug, Clone)]
pub struct TestTable {
    pub endpoint: String,
    pub table: String,
    pub client: Client,
    pub store: DynamoOrderStore,
}

/// Creates a uniquely named table on the test process's DynamoDB Local.
pub async fn fresh_table() -> TestTable {
    fresh_table_with(test_settings()).await
}

/// Store settings for tests: generous timeouts, because a cold JVM on a two-core CI machine
/// can take seconds for its first hundred concurrent transactions, and a test about
/// contention must not fail on a timeout that production settings are tuned for.
pub fn test_settings() -> StoreSettings {
    StoreSettings {
        attempt_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(2),
        ..StoreSettings::default()
    }
}

pub async fn fresh_table_with(settings: StoreSettings) -> TestTable {
    let endpoint = shared_instance().endpoint();
    let table = format!("orders-{}", ulid::Ulid::new().to_string().to_lowercase());
    let client = build_local_client(&settings, &endpoint).await;
    schema::create_table(&client, &table)
        .await
        .unwrap_or_else(|error| panic!("cannot create the test table: {error:?}"));
    let store = DynamoOrderStore::new(client.clone(), table.clone(), settings);
    TestTable {
        endpoint,
        table,
        client,
        store,
    }
}

/// A seeded table reached through `dynamodb-faithful` at production's limits: the store sees
/// transaction conflicts and throttling as it would on DynamoDB, and the test can inject
/// faults and read what the proxy counted.
#[derive(Debug, Clone)]
pub struct FaithfulTable {
    /// The table, reached directly (to look at what a test did without going through faults).
    pub table: TestTable,
    pub proxy: dynamodb_faithful::Handle,
    /// The store under test, through the proxy.
    pub store: DynamoOrderStore,
}

impl FaithfulTable {
    /// The requests of `operation` the proxy has seen.
    pub fn requests(&self, operation: &str) -> u64 {
        self.proxy.summary().operation(operation).requests
    }
}

/// A table seeded with `plan` and a store with `settings` that reaches it through a
/// `dynamodb-faithful` proxy at production's limits.
pub async fn faithful_table(plan: &SeedPlan, settings: StoreSettings) -> FaithfulTable {
    let table = seeded_table(plan).await;
    let proxy = dynamodb_faithful::start(dynamodb_faithful::Settings::production(
        table.endpoint.clone(),
    ))
    .await
    .unwrap_or_else(|error| panic!("cannot start dynamodb-faithful: {error}"));
    warm_up(&proxy.endpoint(), &table.table).await;
    proxy.reset_stats();
    let client = build_local_client(&settings, &proxy.endpoint()).await;
    let store = DynamoOrderStore::new(client, table.table.clone(), settings);
    FaithfulTable {
        table,
        proxy,
        store,
    }
}

/// The first requests through a new proxy, with the harness's patient settings rather than
/// inside a test's short attempt timeout: the proxy learns the table's key schema, and the
/// write paths of a JVM that has only served the seed get compiled. Nothing is written (every
/// condition fails).
async fn warm_up(endpoint: &str, table: &str) {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
    let client = build_local_client(&test_settings(), endpoint).await;
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|error| panic!("the proxy cannot reach the table: {error:?}"));
    let key = std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S("WARM-UP".to_owned())),
        ("sk".to_owned(), AttributeValue::S("WARM-UP".to_owned())),
    ]);
    for _ in 0..3 {
        let _ = client
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await;
        let _ = client
            .put_item()
            .table_name(table)
            .set_item(Some(key.clone()))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        if let Ok(check) = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key.clone()))
            .condition_expression("attribute_exists(pk)")
            .build()
        {
            let _ = client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(check).build())
                .send()
                .await;
        }
    }
}

/// A fresh table seeded with `plan`.
pub async fn seeded_table(plan: &SeedPlan) -> TestTable {
    let table = fresh_table().await;
    order_service::app::stock::seed(&table.store, plan)
        .await
        .unwrap_or_else(|error| panic!("cannot seed the test table: {error:?}"));
    table
}

/// A validated create request of these (product, quantity) lines, as a client would send it.
pub fn new_order(lines: &[(&str, u64)]) -> order_service::domain::NewOrder {
    let items: Vec<serde_json::Value> = lines
        .iter()
        .map(|(product, quantity)| serde_json::json!({"productId": product, "quantity": quantity}))
        .collect();
    let request: order_service::domain::CreateOrderRequest =
        serde_json::from_value(serde_json::json!({ "items": items }))
            .unwrap_or_else(|error| panic!("not a create request: {error}"));
    order_service::domain::NewOrder::try_from(request).unwrap_or_else(|error| panic!("{error}"))
}

/// An order of these (product, quantity) lines placed for `user` through the place-order use
/// case, without an Idempotency-Key: the set-up of a test about what happens to an order that
/// exists.
pub async fn place_order<S: PlaceOrders>(
    store: &S,
    user: &order_service::domain::UserId,
    lines: &[(&str, u64)],
) -> order_service::domain::Order {
    order_service::app::place::place_order(store, user, &new_order(lines), None)
        .await
        .unwrap_or_else(|error| panic!("cannot place the order {lines:?}: {error:?}"))
        .order
}

/// The application's use cases called on a store, as tests call them: the same reads,
/// decisions and writes the functions run, without HTTP or Idempotency-Keys around them.
pub trait UseCases {
    fn create_order(
        &self,
        user: &order_service::domain::UserId,
        order: &order_service::domain::NewOrder,
        claim: Option<&order_service::domain::Claim>,
    ) -> impl std::future::Future<
        Output = Result<order_service::store::Outcome, order_service::ServiceError>,
    >;

    fn change_order(
        &self,
        user: &order_service::domain::UserId,
        order_id: order_service::domain::OrderId,
        change: order_service::domain::Change,
        claim: Option<&order_service::domain::Claim>,
    ) -> impl std::future::Future<
        Output = Result<order_service::store::Outcome, order_service::ServiceError>,
    >;

    fn get_order(
        &self,
        user: &order_service::domain::UserId,
        order_id: order_service::domain::OrderId,
    ) -> impl std::future::Future<
        Output = Result<order_service::domain::Order, order_service::ServiceError>,
    >;

    fn list_orders(
        &self,
        user: &order_service::domain::UserId,
        page: order_service::store::PageRequest,
    ) -> impl std::future::Future<
        Output = Result<order_service::store::OrderPage, order_service::ServiceError>,
    >;
}

impl<S: PlaceOrders + ChangeOrders> UseCases for S {
    async fn create_order(
        &self,
        user: &order_service::domain::UserId,
        order: &order_service::domain::NewOrder,
        claim: Option<&order_service::domain::Claim>,
    ) -> Result<order_service::store::Outcome, order_service::ServiceError> {
        order_service::app::place::place_order(self, user, order, claim).await
    }

    async fn change_order(
        &self,
        user: &order_service::domain::UserId,
        order_id: order_service::domain::OrderId,
        change: order_service::domain::Change,
        claim: Option<&order_service::domain::Claim>,
    ) -> Result<order_service::store::Outcome, order_service::ServiceError> {
        order_service::app::change::change_order(self, user, order_id, &change, claim).await
    }

    async fn get_order(
        &self,
        user: &order_service::domain::UserId,
        order_id: order_service::domain::OrderId,
    ) -> Result<order_service::domain::Order, order_service::ServiceError> {
        order_service::app::read::get_order(self, user, order_id).await
    }

    async fn list_orders(
        &self,
        user: &order_service::domain::UserId,
        page: order_service::store::PageRequest,
    ) -> Result<order_service::store::OrderPage, order_service::ServiceError> {
        order_service::app::read::list_orders(self, user, page).await
    }
}

/// A state change as its function runs it: under its Idempotency-Key (when given) through
/// `answer_once`, rendered as the response the client gets.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Create(&'a order_service::domain::NewOrder),
    Pay(order_service::domain::OrderId),
    Cancel(order_service::domain::OrderId),
    Refund(
        order_service::domain::OrderId,
        &'a order_service::domain::NewOrder,
    ),
}

pub async fn answered<S>(
    store: &S,
    user: &order_service::domain::UserId,
    key: Option<&str>,
    change: Action<'_>,
) -> Result<lambda_http::Response<lambda_http::Body>, order_service::ServiceError>
where
    S: PlaceOrders + ChangeOrders,
{
    use order_service::app::{change_once, create_once};
    use order_service::domain::{Change, IdempotencyKey};
    let key = key.map(|key| IdempotencyKey::parse(key).unwrap_or_else(|error| panic!("{error}")));
    let reply = match change {
        Action::Create(order) => create_once(store, user, key, order).await,
        Action::Pay(order_id) => change_once(store, user, key, order_id, &Change::Pay).await,
        Action::Cancel(order_id) => change_once(store, user, key, order_id, &Change::Cancel).await,
        Action::Refund(order_id, lines) => {
            let refund = Change::Refund(lines.clone());
            change_once(store, user, key, order_id, &refund).await
        }
    };
    reply.map(order_service::http::Reply::into_response)
}

/// Whether a response was answered from an Idempotency-Key's record.
pub fn is_replayed(response: &lambda_http::Response<lambda_http::Body>) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true")
}

/// The signing secret of test apps.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-at-least-32-characters-long";

/// The authenticator of test apps: HS256 tokens signed with `TEST_JWT_SECRET`, as the local
/// stack accepts them.
pub fn test_authenticator() -> order_service::auth::Authenticator {
    order_service::auth::Authenticator::new(&order_service::auth::AuthConfig::Jwt {
        secret: TEST_JWT_SECRET.as_bytes().to_vec(),
        issuer: order_service::auth::LOCAL_ISSUER.to_owned(),
        audience: order_service::auth::LOCAL_AUDIENCE.to_owned(),
    })
}

/// An app over a freshly seeded table on DynamoDB Local, authenticating test tokens: for the
/// tests that need the real store (its table, its latency, its failures).
pub async fn test_app(plan: &SeedPlan) -> (order_service::app::App<DynamoOrderStore>, TestTable) {
    let table = seeded_table(plan).await;
    (
        order_service::app::App::new(table.store.clone(), test_authenticator(), 0.0),
        table,
    )
}

/// An app over a freshly seeded table on DynamoDB Local reached through `dynamodb-faithful`
/// at production's limits, authenticating test tokens: for the tests that need the store to
/// conflict and throttle as DynamoDB does.
pub async fn faithful_app(
    plan: &SeedPlan,
) -> (order_service::app::App<DynamoOrderStore>, FaithfulTable) {
    let faithful = faithful_table(plan, test_settings()).await;
    (
        order_service::app::App::new(faithful.store.clone(), test_authenticator(), 0.0),
        faithful,
    )
}

/// An app over an in-memory store seeded with `plan`, authenticating test tokens, and a handle
/// on the same store to look at balances, stock and orders: handler tests without Java.
pub fn memory_app(plan: &SeedPlan) -> (order_service::app::App<MemoryStore>, MemoryStore) {
    let store = MemoryStore::seeded(plan);
    (
        order_service::app::App::new(store.clone(), test_authenticator(), 0.0),
        store,
    )
}

/// A valid test token for `user`.
pub fn test_token(user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    sign_token(
        TEST_JWT_SECRET.as_bytes(),
        order_service::auth::LOCAL_ISSUER,
        order_service::auth::LOCAL_AUDIENCE,
        user,
        now,
        600,
    )
    .unwrap_or_else(|error| panic!("cannot sign a test token: {error}"))
}

/// Signs an HS256 development token for `subject` (tests, `cargo xtask token`; the k6 scenarios
/// mint the same tokens in script): what a function in `AUTH_MODE=jwt` accepts.
pub fn sign_token(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    subject: &str,
    issued_at: u64,
    lifetime_seconds: u64,
) -> jsonwebtoken::errors::Result<String> {
    let claims =
        order_service::auth::Claims::new(issuer, audience, subject, issued_at, lifetime_seconds);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

/// An HTTP request to the function, made the way Lambda delivers it: an API Gateway v2
/// (HTTP API, payload 2.0) event parsed by `lambda_http`. `route` is the route key's path
/// with `{userId}`/`{orderId}` placeholders, filled from `path_parameters`.
#[derive(Debug, Clone, Default)]
pub struct EventBuilder {
    method: String,
    route: String,
    path_parameters: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// The Lambda context's deadline (epoch ms), when the test gives the invocation one.
    deadline_ms: Option<u64>,
}

impl EventBuilder {
    pub fn new(method: &str, route: &str) -> Self {
        Self {
            method: method.to_owned(),
            route: route.to_owned(),
            ..Self::default()
        }
    }

    pub fn path(mut self, name: &str, value: &str) -> Self {
        self.path_parameters
            .push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Adds a bearer token for `user`.
    pub fn as_user(self, user: &str) -> Self {
        let token = test_token(user);
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with its content type.
    pub fn json(self, body: &str) -> Self {
        self.header("content-type", "application/json").body(body)
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    pub fn event_json(&self) -> serde_json::Value {
        let mut raw_path = self.route.clone();
        for (name, value) in &self.path_parameters {
            raw_path = raw_path.replace(&format!("{{{name}}}"), value);
        }
        let raw_query = self
            .query
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
        let query: serde_json::Map<String, serde_json::Value> = self
            .query
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
        let path_parameters: serde_json::Map<String, serde_json::Value> = self
            .path_parameters
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
            .collect();
        serde_json::json!({
            "version": "2.0",
            "routeKey": format!("{} {}", self.method, self.route),
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(query) },
            "pathParameters": path_parameters,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "localhost",
                "domainPrefix": "localhost",
                "http": {
                    "method": self.method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": "handler-test"
                },
                "requestId": ulid::Ulid::new().to_string(),
                "routeKey": format!("{} {}", self.method, self.route),
                "stage": "$default",
                "time": "25/Nov/2026:21:00:00 +0000",
                "timeEpoch": 1_795_640_400_000_u64
            },
            "body": self.body,
            "isBase64Encoded": false
        })
    }

    /// The `lambda_http::Request` that the Lambda runtime would hand the function. The
    /// event's method and route are remembered on this thread, so that `response_json` can
    /// check the response against `openapi.yaml`.
    pub fn build(&self) -> lambda_http::Request {
        use lambda_http::RequestExt;
        LAST_ROUTE
            .with(|last| *last.borrow_mut() = Some((self.method.clone(), self.route.clone())));
        let request = lambda_http::request::from_str(&self.event_json().to_string())
            .unwrap_or_else(|error| panic!("the test event does not parse: {error}"));
        match self.deadline_ms {
            Some(deadline) => {
                let mut context = lambda_http::Context::default();
                context.deadline = deadline;
                request.with_lambda_context(context)
            }
            None => request,
        }
    }

    /// Gives the invocation a Lambda context whose deadline is `ms` from now.
    pub fn deadline_in(mut self, ms: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        self.deadline_ms = Some(now + ms);
        self
    }
}

thread_local! {
    static LAST_ROUTE: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// The status and the JSON body of a response, after checking that the response conforms to
/// `openapi.yaml` for the route of the last event built on this thread (handler tests run on
/// tokio's current-thread runtime).
pub fn response_json(
    response: &lambda_http::Response<lambda_http::Body>,
) -> (u16, serde_json::Value) {
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(serde_json::Value::Null);
    let status = response.status().as_u16();
    if let Some((method, route)) = LAST_ROUTE.with(|last| last.borrow().clone()) {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if let Err(problem) = openapi::check_response(&method, &route, status, content_type, &body)
        {
            panic!(
                "{method} {route} -> {status} does not conform to openapi.yaml: {problem}\n{body}"
            );
        }
    }
    (status, body)
}

/// Asserts that a response is a problem with this status and machine `code`, after
/// `response_json`'s contract check, showing the body when it is not.
#[track_caller]
pub fn assert_problem(
    response: &lambda_http::Response<lambda_http::Body>,
    status: u16,
    code: &str,
) {
    let (actual_status, body) = response_json(response);
    assert_eq!(
        (actual_status, body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
}

/// Checks responses against the OpenAPI contract with a JSON Schema validator.
pub mod openapi;
