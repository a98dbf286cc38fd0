//! The proxy itself: an HTTP/1.1 server that reads each DynamoDB request, applies the
//! production model (conflicts, throughput, consumed capacity) and the injected faults, and
//! forwards what it admits to DynamoDB Local unchanged but for `ReturnConsumedCapacity`, which
//! it asks for (and removes from the answer) when the client did not.
//!
//! The DynamoDB handling is here; how a refusal is answered and counted is in `refusals`, the
//! consumed capacity an answer reports in `consumed`, and the control API in `control`.

mod consumed;
mod control;
mod refusals;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::capacity::{Capacity, Charge, Limits};
use crate::events::EventLog;
use crate::faults::{strip_conditions, Faults, Injected, Outage};
use crate::holds::Holds;
use crate::plan::{self, KeySchema, Kind, Plan};
use crate::protocol::{self, Reason};
use crate::stats::{Stats, Summary};

use consumed::{consumed_units, correct_transaction_capacity, reports_capacity, transaction_units};
use refusals::split_batch;

/// How long DynamoDB recognises a transaction's `ClientRequestToken`.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);

/// How the proxy starts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen, e.g. `127.0.0.1:8001` (`:0` for any free port).
    pub listen: String,
    /// DynamoDB Local's endpoint, e.g. `http://127.0.0.1:8000`.
    pub upstream: String,
    pub limits: Limits,
    /// Extra time a transaction holds its items after its own work (`--hold-ms`).
    pub hold: Duration,
    /// A file to append one JSON line to per conflict or throttle (`--event-log`).
    pub event_log: Option<std::path::PathBuf>,
}

impl Settings {
    /// Production's limits and no extra hold, in front of `upstream`, on a free port.
    pub fn production(upstream: impl Into<String>) -> Self {
        Self {
            listen: "127.0.0.1:0".to_owned(),
            upstream: upstream.into(),
            limits: Limits::PRODUCTION,
            hold: Duration::ZERO,
            event_log: None,
        }
    }
}

/// What the proxy knows of a table.
#[derive(Debug, Clone)]
struct TableInfo {
    schema: KeySchema,
    arn: String,
}

#[derive(Debug)]
struct Shared {
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    holds: Holds,
    capacity: Capacity,
    stats: Stats,
    events: EventLog,
    faults: Mutex<Faults>,
    hold_ms: AtomicU64,
    tables: Mutex<HashMap<String, TableInfo>>,
    /// The last known size of each item seen whole or written, for the units of writes and
    /// reads that do not carry the item.
    sizes: Mutex<HashMap<String, usize>>,
    tokens_in_flight: Mutex<HashSet<String>>,
    /// Tokens of transactions that committed, and when: DynamoDB answers a resend within ten
    /// minutes as the same transaction, before any conflict or throughput check.
    tokens_committed: Mutex<HashMap<String, Instant>>,
    /// When DynamoDB Local last answered: a request's service time starts at the later of its
    /// dispatch and this (DynamoDB Local works on one request at a time).
    last_answer: Mutex<Instant>,
    stop: Notify,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running proxy. Cheap to clone; `stop` stops accepting connections.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    address: SocketAddr,
}

impl Handle {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`, for a client's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn faults(&self) -> Faults {
        locked(&self.shared.faults).clone()
    }

    /// Changes the faults in force.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut locked(&self.shared.faults));
    }

    pub fn set_hold(&self, hold: Duration) {
        self.shared
            .hold_ms
            .store(hold.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn set_limits(&self, limits: Limits) {
        self.shared.capacity.set_limits(limits);
    }

    /// Everything counted so far.
    pub fn summary(&self) -> Summary {
        self.shared.summary()
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Stops accepting connections; open ones finish their requests.
    pub fn stop(&self) {
        self.shared.stop.notify_waiters();
    }
}

impl Shared {
    fn hold(&self) -> Duration {
        Duration::from_millis(self.hold_ms.load(Ordering::Relaxed))
    }

    fn summary(&self) -> Summary {
        self.stats.snapshot(self.capacity.limits(), self.hold())
    }
}

/// Starts the proxy on the current tokio runtime.
pub async fn start(settings: Settings) -> anyhow::Result<Handle> {
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let upstream: Uri = settings
        .upstream
        .parse()
        .with_context(|| format!("not an endpoint: {}", settings.upstream))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let shared = Arc::new(Shared {
        upstream,
        client,
        holds: Holds::default(),
        capacity: Capacity::new(settings.limits),
        stats: Stats::default(),
        events: EventLog::open(settings.event_log.as_deref())
            .with_context(|| format!("cannot open the event log {:?}", settings.event_log))?,
        faults: Mutex::new(Faults::default()),
        hold_ms: AtomicU64::new(settings.hold.as_millis() as u64),
        tables: Mutex::new(HashMap::new()),
        sizes: Mutex::new(HashMap::new()),
        tokens_in_flight: Mutex::new(HashSet::new()),
        tokens_committed: Mutex::new(HashMap::new()),
        last_answer: Mutex::new(Instant::now()),
        stop: Notify::new(),
    });
    let accepting = shared.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = accepting.stop.notified() => break,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            // In an outage a connection is closed at once, unless it is to the control API:
            // an outage set over HTTP must be liftable over HTTP.
            let refused = locked(&accepting.faults).outage == Some(Outage::Refuse)
                && !is_control_connection(&stream).await;
            accepting.stats.connection(refused);
            if refused {
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let connection = accepting.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = connection.clone();
                    async move { shared.serve(request).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Handle { shared, address })
}

/// Whether a new connection's first request is to `/_faithful/...`: its request line, peeked
/// without consuming it (a client sends it at once; 100 ms is ample on loopback).
async fn is_control_connection(stream: &tokio::net::TcpStream) -> bool {
    const PREFIX: &[u8] = b" /_faithful/";
    let mut head = [0u8; 24];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut head)).await;
        let Ok(Ok(read)) = peeked else {
            return false;
        };
        if head[..read]
            .windows(PREFIX.len())
            .any(|window| window == PREFIX)
        {
            return true;
        }
        // The method (at most 7 bytes) and the prefix fit in what was read: not control.
        if read >= head.len() || read == 0 {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Why a request gets no answer: hyper closes the connection, as an unreachable store's would
/// close.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Dropped(String);

type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// A request read whole.
struct Received {
    headers: HeaderMap,
    operation: String,
    raw: Bytes,
    body: Option<Value>,
}

fn condition_failed(status: StatusCode, answer: &Value) -> bool {
    if status.is_success() {
        return false;
    }
    let kind = answer.get("__type").and_then(Value::as_str).unwrap_or("");
    kind.ends_with("#ConditionalCheckFailedException")
        || answer
            .get("CancellationReasons")
            .and_then(Value::as_array)
            .is_some_and(|reasons| {
                reasons.iter().any(|reason| {
                    reason.get("Code") == Some(&Value::from("ConditionalCheckFailed"))
                })
            })
}

impl Shared {
    async fn serve(self: Arc<Self>, request: Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let raw = body
            .collect()
            .await
            .map_err(|error| Dropped(format!("cannot read the request: {error}")))?
            .to_bytes();
        if parts.uri.path().starts_with("/_faithful") {
            return Ok(self.control(&parts.method, parts.uri.path(), &raw));
        }
        let operation = parts
            .headers
            .get("x-amz-target")
            .and_then(|value| value.to_str().ok())
            .map(plan::operation_of)
            .unwrap_or("")
            .to_owned();
        let body = serde_json::from_slice::<Value>(&raw).ok();
        self.stats
            .operation(&operation, |stats| stats.requests += 1);
        let outage = locked(&self.faults).outage;
        match outage {
            Some(Outage::Hang) => std::future::pending::<()>().await,
            // Open connections fail too, not only new ones.
            Some(Outage::Refuse) => {
                self.stats.connection(true);
                return Err(Dropped("outage: the connection is closed".to_owned()));
            }
            None => {}
        }
        let incoming = Received {
            headers: parts.headers,
            operation,
            raw,
            body,
        };
        // A request that reached DynamoDB runs to its end even if its client gives up (an
        // attempt timeout): its items stay held and its token in flight until then.
        tokio::spawn(async move { self.dynamodb(incoming).await })
            .await
            .map_err(|error| Dropped(format!("the request's task failed: {error}")))?
    }

    async fn dynamodb(self: Arc<Self>, incoming: Received) -> Answer {
        let operation = incoming.operation.clone();
        let faults = locked(&self.faults).clone();
        let Some(mut body) = incoming.body.clone() else {
            // Not JSON: nothing to model, forward as it is.
            return self.forward_raw(&incoming).await;
        };
        if operation == "TransactWriteItems" {
            if let Some(kind) = self.take_injected() {
                self.stats
                    .operation(&operation, |stats| stats.injected += 1);
                let count = body
                    .get("TransactItems")
                    .and_then(Value::as_array)
                    .map_or(1, Vec::len)
                    .max(1);
                let mut reasons = vec![Reason::None; count];
                reasons[0] = match kind {
                    Injected::Conflict => Reason::TransactionConflict,
                    Injected::Throttling => Reason::ThrottlingError,
                };
                return Ok(protocol::transaction_cancelled(&reasons));
            }
            if let Some(prefix) = &faults.strip_conditions_on {
                strip_conditions(&mut body, prefix);
            }
        }
        for table in plan::tables_of(&operation, &body) {
            self.know_table(&incoming.headers, &table).await;
        }
        let schemas = self.schemas();
        let plan = {
            let sizes = locked(&self.sizes);
            plan::plan(&operation, &body, &schemas, &|item| {
                sizes.get(item).copied()
            })
        };
        // A resent transaction whose first request still runs.
        let _token = match &plan.token {
            Some(token) if plan.kind == Kind::TransactWrite => {
                match TokenInFlight::claim(&self.tokens_in_flight, token) {
                    Some(claimed) => Some(claimed),
                    None => {
                        self.stats
                            .operation(&operation, |stats| stats.in_progress += 1);
                        return Ok(protocol::transaction_in_progress());
                    }
                }
            }
            _ => None,
        };
        if self.committed_before(plan.token.as_deref()) {
            return self.forward_raw(&incoming).await;
        }
        // Throughput first, as DynamoDB's request router admits or throttles a request on
        // arrival: a request past its partition's rate is refused at once, never queued behind
        // the transactions that hold its items (which would make a hot item's requests wait
        // seconds, as production's never do).
        let charges: Vec<(usize, Charge)> = plan
            .touches
            .iter()
            .enumerate()
            .filter_map(|(index, touch)| {
                Some((
                    index,
                    Charge {
                        partition: touch.partition.clone()?,
                        units: touch.units,
                    },
                ))
            })
            .collect();
        let writes = plan.kind.writes();
        let mut unprocessed = None;
        if matches!(plan.kind, Kind::Read | Kind::BatchWrite)
            && matches!(operation.as_str(), "BatchGetItem" | "BatchWriteItem")
        {
            let plain: Vec<Charge> = charges.iter().map(|(_, charge)| charge.clone()).collect();
            let refused: HashSet<usize> = self
                .capacity
                .admit_each(writes, &plain)
                .into_iter()
                .map(|position| charges[position].0)
                .collect();
            if !refused.is_empty() {
                self.count_throttles(&plan, refused.iter().copied());
                let (forwarded, set_aside) = split_batch(&operation, &body, &refused);
                match forwarded {
                    Some(forwarded) => {
                        body = forwarded;
                        unprocessed = Some(set_aside);
                    }
                    None => return Ok(self.throttled(&plan, writes)),
                }
            }
        } else if !charges.is_empty() {
            let plain: Vec<Charge> = charges.iter().map(|(_, charge)| charge.clone()).collect();
            if let Err(short) = self.capacity.admit_all(writes, &plain) {
                let indices: Vec<usize> =
                    short.iter().map(|position| charges[*position].0).collect();
                self.count_throttles(&plan, indices.iter().copied());
                if plan.kind == Kind::TransactWrite || plan.kind == Kind::TransactGet {
                    let mut reasons = vec![Reason::None; plan.touches.len()];
                    for index in indices {
                        reasons[index] = Reason::ThrottlingError;
                    }
                    return Ok(protocol::transaction_cancelled(&reasons));
                }
                return Ok(self.throttled(&plan, writes));
            }
        }
        let items: Vec<String> = plan
            .touches
            .iter()
            .filter_map(|touch| touch.item.clone())
            .collect();
        let ticket =
            (plan.kind.holds() && !items.is_empty()).then(|| self.holds.arrive(plan.kind, items));
        if let Some(ticket) = &ticket {
            let conflicts = ticket.judge().await;
            if !conflicts.is_empty() {
                // A request refused for a conflict consumes nothing (a simplification, in
                // ARCHITECTURE.md): the units it was admitted with go back.
                if unprocessed.is_none() {
                    let plain: Vec<Charge> =
                        charges.iter().map(|(_, charge)| charge.clone()).collect();
                    self.capacity.refund(writes, &plain);
                }
                return Ok(self.refuse_conflict(&plan, &conflicts));
            }
        }
        let asked = matches!(
            body.get("ReturnConsumedCapacity").and_then(Value::as_str),
            Some("TOTAL" | "INDEXES")
        );
        if !asked && reports_capacity(&operation) {
            // Broken down by table and index, so that a transaction's under-reported table
            // units can be corrected without losing its index writes.
            body["ReturnConsumedCapacity"] = Value::from("INDEXES");
        }
        let sent = serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or(incoming.raw.clone());
        if let Some(ticket) = &ticket {
            ticket.start();
        }
        // A slow request is slow inside the store: it holds its items (and its token) while it
        // waits, as a slow transaction would.
        let slow = if faults.request_delay_ms > 0 && faults.delays(&operation) {
            Duration::from_millis(faults.request_delay_ms)
        } else {
            Duration::ZERO
        };
        tokio::time::sleep(slow).await;
        let dispatched = Instant::now();
        let answer = self.send(&incoming.headers, sent).await?;
        let answered = Instant::now();
        let service = slow + {
            let mut last = locked(&self.last_answer);
            let began = (*last).max(dispatched);
            *last = answered;
            answered.saturating_duration_since(began)
        };
        if let Some(ticket) = ticket {
            let extra = if plan.kind == Kind::SingleWrite {
                Duration::ZERO
            } else {
                self.hold()
            };
            ticket.finish(service, extra);
        }
        let (status, headers, bytes) = answer;
        let mut parsed = serde_json::from_slice::<Value>(&bytes).ok();
        let plain: Vec<Charge> = charges.iter().map(|(_, charge)| charge.clone()).collect();
        let expected: f64 = plain.iter().map(|charge| charge.units).sum();
        // DynamoDB Local under-reports multi-item transactions (two units for three small
        // items; ops/upstream/dynamodb-local.md): a transaction's table costs at least what its
        // items cost one by one, and its index writes come on top.
        let actual = match parsed.as_ref() {
            Some(answer) if plan.kind == Kind::TransactWrite => transaction_units(answer, &plan),
            Some(answer) => consumed_units(answer),
            None => None,
        };
        if let Some(actual) = actual {
            self.capacity.settle(writes, &plain, actual);
        }
        let units = actual.unwrap_or(expected);
        if status.is_success() {
            if let Some(answer) = parsed.as_ref() {
                self.remember_sizes(&plan, &body, answer, &schemas);
            }
            if let (Kind::TransactWrite, Some(token)) = (plan.kind, &plan.token) {
                self.remember_commit(token);
            }
        }
        let failed_condition = parsed
            .as_ref()
            .is_some_and(|answer| condition_failed(status, answer));
        self.stats.operation(&operation, |stats| {
            stats.forwarded += 1;
            stats.latency_ms += answered.duration_since(dispatched).as_secs_f64() * 1_000.0;
            stats.service_ms += service.as_secs_f64() * 1_000.0;
            stats.condition_failures += u64::from(failed_condition);
            if writes {
                stats.write_units += units;
            } else {
                stats.read_units += units;
            }
        });
        for charge in &plain {
            let share = if expected > 0.0 {
                units * charge.units / expected
            } else {
                0.0
            };
            self.stats.partition(&charge.partition, |stats| {
                if writes {
                    stats.write_units += share;
                } else {
                    stats.read_units += share;
                }
            });
        }
        let mut rewritten = false;
        if let Some(answer) = parsed.as_mut().and_then(Value::as_object_mut) {
            if !asked && answer.remove("ConsumedCapacity").is_some() {
                rewritten = true;
            }
            if asked && plan.kind == Kind::TransactWrite {
                rewritten |= correct_transaction_capacity(answer, &plan);
            }
            if let Some(set_aside) = unprocessed {
                let field = if operation == "BatchGetItem" {
                    "UnprocessedKeys"
                } else {
                    "UnprocessedItems"
                };
                let merged = answer
                    .entry(field)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(merged), Value::Object(set_aside)) =
                    (merged.as_object_mut(), set_aside)
                {
                    for (table, entry) in set_aside {
                        merged.insert(table, entry);
                    }
                }
                rewritten = true;
            }
        }
        let bytes = match (rewritten, parsed) {
            (true, Some(answer)) => Bytes::from(serde_json::to_vec(&answer).unwrap_or_default()),
            _ => bytes,
        };
        if faults.response_delay_ms > 0 && faults.delays(&operation) {
            tokio::time::sleep(Duration::from_millis(faults.response_delay_ms)).await;
        }
        Ok(rebuild(status, &headers, bytes))
    }

    /// Whether a transaction with `token` committed within DynamoDB's idempotency window.
    fn committed_before(&self, token: Option<&str>) -> bool {
        let Some(token) = token else { return false };
        locked(&self.tokens_committed)
            .get(token)
            .is_some_and(|at| at.elapsed() < IDEMPOTENCY_WINDOW)
    }

    fn remember_commit(&self, token: &str) {
        let mut committed = locked(&self.tokens_committed);
        if committed.len() > 100_000 {
            committed.retain(|_, at| at.elapsed() < IDEMPOTENCY_WINDOW);
        }
        committed.insert(token.to_owned(), Instant::now());
    }

    fn schemas(&self) -> HashMap<String, KeySchema> {
        locked(&self.tables)
            .iter()
            .map(|(name, info)| (name.clone(), info.schema.clone()))
            .collect()
    }

    /// Remembers the sizes a successful request wrote or read.
    fn remember_sizes(
        &self,
        plan: &Plan,
        request: &Value,
        answer: &Value,
        schemas: &HashMap<String, KeySchema>,
    ) {
        let mut sizes = locked(&self.sizes);
        if sizes.len() > 200_000 {
            sizes.clear();
        }
        for touch in &plan.touches {
            if let (Some(item), Some(written)) = (&touch.item, touch.written) {
                if written == 0 {
                    sizes.remove(item);
                } else {
                    sizes.insert(item.clone(), written);
                }
            }
        }
        for (item, size) in plan::whole_items(&plan.operation, request, answer, schemas) {
            sizes.insert(item, size);
        }
    }

    fn take_injected(&self) -> Option<Injected> {
        let mut faults = locked(&self.faults);
        let kind = faults.inject?;
        if faults.inject_next == 0 {
            return None;
        }
        faults.inject_next -= 1;
        Some(kind)
    }

    /// Learns a table's key schema and ARN once, with a `DescribeTable` signed as the client's
    /// request was (DynamoDB Local keeps one database per access key and region).
    async fn know_table(&self, headers: &HeaderMap, table: &str) {
        if locked(&self.tables).contains_key(table) {
            return;
        }
        let mut describe = headers.clone();
        describe.insert(
            "x-amz-target",
            http::HeaderValue::from_static("DynamoDB_20120810.DescribeTable"),
        );
        let body = serde_json::json!({ "TableName": table }).to_string();
        let Ok((status, _, bytes)) = self.send(&describe, Bytes::from(body)).await else {
            return;
        };
        if !status.is_success() {
            return;
        }
        let Ok(described) = serde_json::from_slice::<Value>(&bytes) else {
            return;
        };
        let key_of = |kind: &str| {
            described
                .pointer("/Table/KeySchema")
                .and_then(Value::as_array)
                .and_then(|keys| {
                    keys.iter()
                        .find(|key| key.get("KeyType") == Some(&Value::from(kind)))
                })
                .and_then(|key| key.get("AttributeName"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let Some(hash) = key_of("HASH") else { return };
        let arn = described
            .pointer("/Table/TableArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        locked(&self.tables).insert(
            table.to_owned(),
            TableInfo {
                schema: KeySchema {
                    hash,
                    range: key_of("RANGE"),
                },
                arn,
            },
        );
    }

    async fn forward_raw(&self, incoming: &Received) -> Answer {
        let (status, headers, bytes) = self.send(&incoming.headers, incoming.raw.clone()).await?;
        self.stats
            .operation(&incoming.operation, |stats| stats.forwarded += 1);
        Ok(rebuild(status, &headers, bytes))
    }

    /// Sends a request to DynamoDB Local and reads its answer whole.
    async fn send(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Dropped> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.upstream.clone())
            .body(Full::new(body))
            .map_err(|error| Dropped(error.to_string()))?;
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding" | "expect"
            ) {
                request.headers_mut().append(name, value.clone());
            }
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| Dropped(format!("DynamoDB Local is unreachable: {error}")))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|error| Dropped(format!("DynamoDB Local's answer broke off: {error}")))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// A `ClientRequestToken` held while its transaction runs.
struct TokenInFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    token: String,
}

impl<'a> TokenInFlight<'a> {
    fn claim(set: &'a Mutex<HashSet<String>>, token: &str) -> Option<Self> {
        locked(set).insert(token.to_owned()).then(|| Self {
            set,
            token: token.to_owned(),
        })
    }
}

impl Drop for TokenInFlight<'_> {
    fn drop(&mut self) {
        locked(self.set).remove(&self.token);
    }
}

/// An answer with DynamoDB Local's status and headers around `bytes`.
fn rebuild(status: StatusCode, headers: &HeaderMap, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding" | "x-amz-crc32"
        ) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
