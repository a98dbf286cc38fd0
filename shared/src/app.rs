//! What every function shares at run time: the store, the authenticator and the injected-fault
//! switch, built once at init, and `App::run`, which turns a handler's result into a response
//! and writes the request's log line and metrics.

use std::future::Future;
use std::time::{Duration, Instant};

use lambda_http::{Body, Request, RequestExt, Response};

use crate::auth::{Access, Authenticator};
use crate::config::AppConfig;
use crate::domain::{Answer, Change, Claim, IdempotencyKey, NewOrder, Order, OrderId, UserId};
use crate::error::{ErrorChain, ServiceError};
use crate::http::problem::{problem_response, status_of};
use crate::http::{idempotency_key, path_order_id, path_user_id, reject_oversized_body, Reply};
use crate::observability::{emit_metrics, Invocation, RequestRecord};
use crate::store::{
    build_client, count_store_retries, with_deadline, ChangeOrders, CreateOrders, DynamoOrderStore,
    KeepAnswers, Outcome, RELEASE_RESERVE,
};

/// The operations, named as the functions and metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateOrder,
    PayOrder,
    CancelOrder,
    GetOrder,
    ListOrders,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateOrder => "create-order",
            Operation::PayOrder => Change::Pay.operation(),
            Operation::CancelOrder => Change::Cancel.operation(),
            Operation::GetOrder => "get-order",
            Operation::ListOrders => "list-orders",
        }
    }
}

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

    /// Parses `{userId}` from the path and checks that the caller owns it.
    pub fn authorized_user(
        &self,
        request: &Request,
        access: Access,
    ) -> Result<UserId, ServiceError> {
        let user_id = path_user_id(request)?;
        self.auth.authorize(request, &user_id, access)?;
        Ok(user_id)
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

/// Runs a state-changing request under its Idempotency-Key (see `domain::idempotency`), or
/// once without one, and renders its answer.
///
/// With a key: claim it, or answer from its record (the first answer, `Idempotent-Replayed`),
/// or refuse (422 reused key, 409 + `Retry-After` while the first request is in flight). The
/// operation's own transaction answers the claim when it changes something; a business refusal
/// answers it with a conditional update; any other failure releases it, so nothing but a
/// business outcome is ever kept. A record this request wrote itself (a claim or a refusal
/// whose answer was lost and that the SDK sent again) is its own, not another request's.
pub async fn answer_once<S, Op, Fut>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    claim_for: impl FnOnce(IdempotencyKey) -> Claim,
    answer: fn(Order) -> Answer,
    operation: Op,
) -> Result<Reply, ServiceError>
where
    S: KeepAnswers,
    Op: FnOnce(Option<Claim>) -> Fut,
    Fut: Future<Output = Result<Outcome, ServiceError>>,
{
    let Some(key) = key else {
        let outcome = operation(None).await?;
        return Ok(Reply::answer(&answer(outcome.order))?.replayed(outcome.replayed));
    };
    let claim = claim_for(key);
    match store.claim(user_id, &claim).await? {
        Some(prior) if !prior.made_by(&claim) => {
            return Ok(Reply::answer(&claim.against(&prior)?)?.replayed(true));
        }
        // Claimed now, or by this request's own earlier attempt.
        _ => {}
    }
    match operation(Some(claim.clone())).await {
        Ok(outcome) => {
            if outcome.replayed {
                // The key's answer had expired and the effect was found in place: nothing
                // answered the new claim, so give it up rather than let it hold the key.
                store.release(user_id, &claim).await;
            }
            Ok(Reply::answer(&answer(outcome.order))?.replayed(outcome.replayed))
        }
        Err(error) => match error.refusal() {
            Some(refusal) => match store.answer_refusal(user_id, &claim, refusal).await {
                Ok(None) => Err(error),
                // This request's own refusal, recorded by an attempt whose answer was lost.
                Ok(Some(prior)) if prior.made_by(&claim) => Err(error),
                Ok(Some(prior)) => Ok(Reply::answer(&claim.against(&prior)?)?.replayed(true)),
                // The refusal could not be kept: it is no answer, so give the key back.
                Err(failure) => {
                    store.release(user_id, &claim).await;
                    Err(failure)
                }
            },
            None => {
                store.release(user_id, &claim).await;
                Err(error)
            }
        },
    }
}

/// Places `order` once under its Idempotency-Key (see `answer_once`).
pub async fn create_once<S: CreateOrders + KeepAnswers>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    order: &NewOrder,
) -> Result<Reply, ServiceError> {
    answer_once(
        store,
        user_id,
        key,
        |key| Claim::to_create(key, order),
        Answer::Created,
        |claim| async move { store.create_order(user_id, order, claim.as_ref()).await },
    )
    .await
}

/// Pays or cancels `order_id` once under its Idempotency-Key (see `answer_once`).
pub async fn change_once<S: ChangeOrders + KeepAnswers>(
    store: &S,
    user_id: &UserId,
    key: Option<IdempotencyKey>,
    order_id: OrderId,
    change: Change,
) -> Result<Reply, ServiceError> {
    answer_once(
        store,
        user_id,
        key,
        |key| Claim::to_change(key, change, order_id),
        Answer::Updated,
        |claim| async move {
            store
                .change_order(user_id, order_id, change, claim.as_ref())
                .await
        },
    )
    .await
}

impl From<Change> for Operation {
    fn from(change: Change) -> Self {
        match change {
            Change::Pay => Operation::PayOrder,
            Change::Cancel => Operation::CancelOrder,
        }
    }
}

impl<S: ChangeOrders + KeepAnswers> App<S> {
    /// `POST /users/{userId}/orders/{orderId}/<payment|cancel>`: the pay-order and
    /// cancel-order functions' work, which they run as `Operation::from(change)`. No body is
    /// read; an Idempotency-Key makes a retry safe.
    pub async fn change_order(
        &self,
        request: &Request,
        change: Change,
    ) -> Result<Reply, ServiceError> {
        let user_id = self.authorized_user(request, Access::Other)?;
        let order_id = path_order_id(request)?;
        reject_oversized_body(request)?;
        let key = idempotency_key(request)?;
        change_once(&self.store, &user_id, key, order_id, change).await
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
