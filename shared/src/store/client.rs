//! Builds the DynamoDB client once per process with bounded timeouts and retries, so that an
//! unreachable or slow store becomes a `StoreUnavailable` well before the Lambda timeout.
//!
//! Stalled-stream protection is off: every attempt already has a 1 s timeout, tighter than its
//! 5 s grace period, and DynamoDB bodies are small. Its throughput check was polled on every
//! body chunk, about 4 % of a function's CPU under load (perf, see ARCHITECTURE.md).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;

/// The knobs of the store's client and breaker. The defaults suit Lambda with a 10 s timeout:
/// at most three attempts of at most 1 s each inside a 3 s budget.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_sdk_attempts: u32,
    pub breaker_failure_threshold: u32,
    pub breaker_open_for: Duration,
    /// How long an Idempotency-Key's answer is kept (`IDEMPOTENCY_TTL_HOURS`).
    pub answer_ttl: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_millis(1_000),
            operation_timeout: Duration::from_millis(3_000),
            max_sdk_attempts: 3,
            breaker_failure_threshold: 5,
            breaker_open_for: Duration::from_secs(2),
            answer_ttl: crate::domain::DEFAULT_ANSWER_TTL,
        }
    }
}

/// Builds a client from the standard AWS configuration chain (region, credentials and
/// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` from the environment). `endpoint`
/// overrides the endpoint, e.g. for DynamoDB Local in tests.
pub async fn build_client(settings: &StoreSettings, endpoint: Option<&str>) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_attempt_timeout(settings.attempt_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(settings.max_sdk_attempts)
        .with_initial_backoff(Duration::from_millis(20));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    Client::new(&config)
}

/// A client for DynamoDB Local or an emulator: a fixed region and static dummy credentials
/// (DynamoDB Local accepts any SigV4 credentials), so no AWS configuration is needed.
pub async fn build_local_client(settings: &StoreSettings, endpoint: &str) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_attempt_timeout(settings.attempt_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "static",
        ))
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.max_sdk_attempts)
                .with_initial_backoff(Duration::from_millis(20)),
        )
        .build();
    Client::from_conf(config)
}
