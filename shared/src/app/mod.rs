//! The application layer: one module per use case, each read -> decide (domain) -> write ->
//! on a lost race read and decide again (`place`, `change`, `read`), the Idempotency-Key
//! orchestration around the ones that change something (`keys`), and what every function
//! shares at run time: the store, the authenticator and the injected-fault switch, built once
//! at init; `App::handle`, the one shape of every handler (the request parsed in one place,
//! `http::Call`); and `App::run`, which turns the work's result into a response and writes the
//! request's log line and metrics.

pub mod change;
pub mod keys;
pub mod place;
pub mod read;
#[cfg(feature = "admin")]
pub mod stock;

use std::future::Future;
use std::time::{Duration, Instant};

use lambda_http::{Body, Request, RequestExt, Response};

use crate::auth::Authenticator;
use crate::config::AppConfig;
use crate::error::{ErrorChain, ServiceError};
use crate::http::problem::{problem_response, status_of};
use crate::http::{Call, Reply};
use crate::observability::{emit_metrics, Invocation, RequestRecord};
use crate::store::{
    build_client, count_store_retries, with_deadline, DynamoOrderStore, RELEASE_RESERVE,
};

pub use keys::{answer_once, change_once, create_once};
// Where the functions and the lab have always found them.
pub use crate::operation::{Operation, FUNCTIONS};

#[derive(Debug, Clone)]
pub struct App<S> {
    pub store: S,
    pub auth: Authenticator,
    fault_injection_rate: f64,
}

impl App<DynamoOrderStore> {
    /// Builds the app from the environment: config, SDK client (once), authenticator.
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = AppConfig::from_env()?;
        let client = build_client(&config.store, config.store_endpoint.as_deref()).await;
        let store = DynamoOrderStore::new(client, config.table_name.clone(), config.store.clone());
        Ok(App::new(
            store,
            Authenticator::new(&config.auth),
            config.fault_injection_rate,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fault injected by FAULT_INJECTION_RATE")]
struct InjectedFault;

/// What a request keeps back from its invocation's deadline to render, log and return its
/// answer, so the client always gets a problem+json and never the gateway's 502/504.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(500);

/// How long a request's work may run: until the invocation's deadline (epoch ms, from the
/// Lambda context) less `ANSWER_RESERVE`. `None` without a deadline. Chained store calls
/// (batch-read rounds, transaction retries, re-reads) all draw on this one budget.
pub fn work_budget(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    (deadline_ms > 0).then(|| {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(ANSWER_RESERVE)
    })
}

fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The budget ran out: the store was too slow for the time this invocation had. A write in
/// flight may still commit; a keyed retry then gets its answer, or 409 while its claim holds.
fn out_of_time(budget: Duration) -> ServiceError {
    ServiceError::StoreUnavailable {
        retry_after: Duration::from_secs(1),
        source: format!(
            "the request's time budget of {} ms ran out",
            budget.as_millis()
        )
        .into(),
    }
}

impl<S> App<S> {
    pub fn new(store: S, auth: Authenticator, fault_injection_rate: f64) -> Self {
        Self {
            store,
            auth,
            fault_injection_rate,
        }
    }

    /// The one shape of every handler: parses the request in one place (`Call::parse`: the
    /// path's user and the caller's right to it, the Idempotency-Key and the body limit of a
    /// change), runs `work` on it, and renders the outcome through `run`.
    pub async fn handle<'r, F, Fut>(
        &'r self,
        operation: Operation,
        request: &'r Request,
        work: F,
    ) -> Response<Body>
    where
        F: FnOnce(Call<'r>) -> Fut,
        Fut: Future<Output = Result<Reply, ServiceError>> + 'r,
    {
        let work = async move {
            let call = Call::parse(&self.auth, operation.changes(), operation.access(), request)?;
            work(call).await
        };
        self.run(operation, request, work).await
    }

    /// Runs a handler's work and renders its outcome, logging one line and emitting metrics.
    /// A client error is an `Ok` response, so Lambda never sees a handler error.
    pub async fn run(
        &self,
        operation: Operation,
        request: &Request,
        work: impl Future<Output = Result<Reply, ServiceError>>,
    ) -> Response<Body> {
        let started = Instant::now();
        // Taken first, so that the process's first invocation is the cold one.
        let invocation = Invocation::of(request);
        // On the heap: a handler's whole work (claim, reads, transaction retries, release) is a
        // large future, and moving it through the timeout layers on the stack overflowed the
        // 2 MB stack of test threads in debug builds.
        let work = Box::pin(work);
        let injected =
            self.fault_injection_rate > 0.0 && fastrand::f64() < self.fault_injection_rate;
        let budget = request
            .lambda_context_ref()
            .and_then(|context| work_budget(context.deadline, epoch_millis()));
        let (result, store_retries) = if injected {
            (Err(ServiceError::Internal(Box::new(InjectedFault))), 0)
        } else {
            match budget {
                None => count_store_retries(work).await,
                // Store calls give up at the store deadline (feeding the breaker) and leave
                // RELEASE_RESERVE to give an Idempotency-Key back; the outer timeout is only
                // the backstop for work that is not a store call.
                Some(budget) => {
                    let store_deadline = Instant::now() + budget.saturating_sub(RELEASE_RESERVE);
                    let work = with_deadline(store_deadline, count_store_retries(work));
                    tokio::time::timeout(budget, work)
                        .await
                        .unwrap_or_else(|_| (Err(out_of_time(budget)), 0))
                }
            }
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let (response, code, status, replayed) = match result {
            Ok(reply) => {
                let status = reply.status().as_u16();
                let (code, replayed) = (reply.code(), reply.is_replayed());
                (
                    reply.into_response_for(request.uri().path()),
                    code,
                    status,
                    replayed,
                )
            }
            Err(error) => {
                let status = status_of(&error).as_u16();
                if status >= 500 {
                    tracing::error!(
                        operation = operation.as_str(),
                        code = error.code(),
                        error = %ErrorChain(&error),
                        "request failed"
                    );
                }
                (problem_response(&error), Some(error.code()), status, false)
            }
        };
        let path = request.path_parameters_ref();
        tracing::info!(
            requestId = %invocation.function_request_id,
            operation = operation.as_str(),
            userId = path.and_then(|parameters| parameters.first("userId")).unwrap_or(""),
            orderId = path.and_then(|parameters| parameters.first("orderId")).unwrap_or(""),
            status,
            code = code.unwrap_or(""),
            latencyMs = (latency_ms * 1_000.0).round() / 1_000.0,
            storeRetries = store_retries,
            replayed,
            fault = injected,
            service = %invocation.service,
            cold_start = invocation.cold_start,
            function_request_id = %invocation.function_request_id,
            correlation_id = invocation.correlation_id.as_deref(),
            xray_trace_id = invocation.xray_trace_id.as_deref(),
            "request"
        );
        emit_metrics(&RequestRecord {
            operation: operation.as_str(),
            status,
            code,
            latency_ms,
            store_retries,
            store_error: code == Some("STORE_UNAVAILABLE"),
            throttled: code == Some("STORE_THROTTLED"),
            replayed,
        });
        response
    }
}

/// The whole `main` of a function binary: a single-threaded runtime. An instance serves as
/// many invocations at once as `AWS_LAMBDA_MAX_CONCURRENCY` allows (one on classic Lambda,
/// more on Lambda Managed Instances and in the local stack); each waits on DynamoDB almost all
/// of its time, so one thread interleaves them all without the cross-thread wake-ups of a
/// multi-threaded runtime, and the instance never takes more than one core.
pub fn run_function<Fut>(
    handler: impl Fn(&'static App<DynamoOrderStore>, Request) -> Fut + Clone + Send + Sync + 'static,
) -> Result<(), lambda_http::Error>
where
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(handler))
}

/// JSON logs, the app built once from the environment (a bad configuration fails the init
/// loudly), then the Lambda runtime loop with `handler`: `AWS_LAMBDA_MAX_CONCURRENCY`
/// long-polling workers, or the classic one-at-a-time loop when it is unset or 1.
pub async fn serve<Fut>(
    handler: impl Fn(&'static App<DynamoOrderStore>, Request) -> Fut + Clone + Send + Sync + 'static,
) -> Result<(), lambda_http::Error>
where
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    crate::observability::init_tracing();
    let app = App::from_env().await?;
    // The app lives as long as the process; leaking it lets every invocation borrow it.
    let app: &'static App<DynamoOrderStore> = Box::leak(Box::new(app));
    lambda_http::run_concurrent(lambda_http::service_fn(move |request: Request| {
        let response = handler(app, request);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_time_to_the_deadline_less_the_reserve() {
        assert_eq!(work_budget(0, 1_000), None, "no deadline, no budget");
        assert_eq!(
            work_budget(20_000, 10_000),
            Some(Duration::from_millis(9_500))
        );
        assert_eq!(work_budget(10_300, 10_000), Some(Duration::ZERO));
        assert_eq!(
            work_budget(9_000, 10_000),
            Some(Duration::ZERO),
            "already past"
        );
    }
}
