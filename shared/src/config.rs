//! The function configuration, read from the environment once at init. A missing or invalid
//! setting fails the init loudly: there is no default that turns authentication off.

use std::env;
use std::time::Duration;

use crate::auth::AuthConfig;
use crate::store::StoreSettings;

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub table_name: String,
    pub auth: AuthConfig,
    /// The DynamoDB endpoint to use instead of AWS's (DynamoDB Local, an emulator).
    pub store_endpoint: Option<String>,
    pub store: StoreSettings,
    /// The fraction of requests that fail on purpose (the bad-deploy drill's injected fault).
    pub fault_injection_rate: f64,
}

pub use crate::error::ConfigError;

/// A variable's value, treating an empty value as unset (templates pass "" for "not set").
fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

fn millis(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError(format!("{name} must be a whole number of milliseconds"))),
    }
}

impl AppConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(var)
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table_name =
            lookup("TABLE_NAME").ok_or_else(|| ConfigError("TABLE_NAME is required".to_owned()))?;
        let auth = AuthConfig::from_lookup(&lookup)?;
        let store_endpoint =
            lookup("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| lookup("AWS_ENDPOINT_URL"));
        let defaults = StoreSettings::default();
        let store =
            StoreSettings {
                connect_timeout: millis(
                    &lookup,
                    "STORE_CONNECT_TIMEOUT_MS",
                    defaults.connect_timeout,
                )?,
                attempt_timeout: millis(
                    &lookup,
                    "STORE_ATTEMPT_TIMEOUT_MS",
                    defaults.attempt_timeout,
                )?,
                operation_timeout: millis(
                    &lookup,
                    "STORE_OPERATION_TIMEOUT_MS",
                    defaults.operation_timeout,
                )?,
                answer_ttl: match lookup("IDEMPOTENCY_TTL_HOURS") {
                    None => defaults.answer_ttl,
                    Some(text) => match text.parse::<u64>() {
                        Ok(hours) if (1..=24 * 365).contains(&hours) => {
                            Duration::from_secs(hours * 60 * 60)
                        }
                        _ => return Err(ConfigError(
                            "IDEMPOTENCY_TTL_HOURS must be a whole number of hours from 1 to 8760"
                                .to_owned(),
                        )),
                    },
                },
                ..defaults
            };
        let fault_injection_rate = match lookup("FAULT_INJECTION_RATE") {
            None => 0.0,
            Some(text) => match text.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => {
                    return Err(ConfigError(
                        "FAULT_INJECTION_RATE must be a number from 0 to 1".to_owned(),
                    ))
                }
            },
        };
        Ok(Self {
            table_name,
            auth,
            store_endpoint,
            store,
            fault_injection_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<AppConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        AppConfig::from_lookup(|name| map.get(name).filter(|value| !value.is_empty()).cloned())
    }

    #[test]
    fn requires_a_table_and_an_auth_mode() {
        assert!(config(&[("AUTH_MODE", "apigateway"), ("AUTH_AUDIENCE", "client-a")]).is_err());
        assert!(config(&[("TABLE_NAME", "orders")]).is_err());
        assert!(config(&[("TABLE_NAME", "orders"), ("AUTH_MODE", "off")]).is_err());
        assert!(config(&[
            ("TABLE_NAME", "orders"),
            ("AUTH_MODE", "apigateway"),
            ("AUTH_AUDIENCE", "client-a")
        ])
        .is_ok());
        // No audience, no start: the gateway mode never fails open.
        assert!(config(&[("TABLE_NAME", "orders"), ("AUTH_MODE", "apigateway")]).is_err());
    }

    #[test]
    fn an_empty_endpoint_means_aws() {
        let parsed = config(&[
            ("TABLE_NAME", "orders"),
            ("AUTH_MODE", "apigateway"),
            ("AUTH_AUDIENCE", "client-a"),
            ("AWS_ENDPOINT_URL", ""),
        ])
        .unwrap();
        assert_eq!(parsed.store_endpoint, None);
    }

    #[test]
    fn fault_rate_is_a_fraction() {
        let base = [
            ("TABLE_NAME", "orders"),
            ("AUTH_MODE", "apigateway"),
            ("AUTH_AUDIENCE", "client-a"),
        ];
        let with = |rate: &'static str| {
            let mut pairs = base.to_vec();
            pairs.push(("FAULT_INJECTION_RATE", rate));
            config(&pairs)
        };
        assert_eq!(with("0.25").unwrap().fault_injection_rate, 0.25);
        assert!(with("2").is_err());
        assert!(with("lots").is_err());
    }

    #[test]
    fn answers_are_kept_a_day_unless_configured() {
        let base = [
            ("TABLE_NAME", "orders"),
            ("AUTH_MODE", "apigateway"),
            ("AUTH_AUDIENCE", "client-a"),
        ];
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(pairs);
            config(&all)
        };
        assert_eq!(
            with(&[]).unwrap().store.answer_ttl,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            with(&[("IDEMPOTENCY_TTL_HOURS", "2")])
                .unwrap()
                .store
                .answer_ttl,
            Duration::from_secs(7_200)
        );
        assert!(with(&[("IDEMPOTENCY_TTL_HOURS", "0")]).is_err());
        assert!(with(&[("IDEMPOTENCY_TTL_HOURS", "a day")]).is_err());
        // Timeouts come from the same lookup as everything else.
        assert_eq!(
            with(&[("STORE_ATTEMPT_TIMEOUT_MS", "250")])
                .unwrap()
                .store
                .attempt_timeout,
            Duration::from_millis(250)
        );
    }
}
