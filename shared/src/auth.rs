//! Authentication and ownership. Deployed behind API Gateway, the gateway's authorizer has
//! verified the token and the function reads the subject from the authorizer's claims; locally
//! (and in emulators without authorizers) the function verifies an HS256 bearer token itself.
//! Either way the subject must own the `{userId}` in the path. There is no "off" mode.

use jsonwebtoken::{decode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::{ConfigError, ServiceError};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LENGTH: usize = 4_096;

#[derive(Clone)]
pub enum AuthConfig {
    /// Trust the subject that API Gateway's authorizer put into the request context. A REST
    /// API's Cognito authorizer checks the signature and expiry but not the audience, so when
    /// an audience is configured the function checks the token's `aud` (ID tokens) or
    /// `client_id` (access tokens) itself.
    ApiGateway { audience: Option<String> },
    /// Verify `Authorization: Bearer <HS256 JWT>` with this secret, issuer and audience.
    Jwt {
        secret: Vec<u8>,
        issuer: String,
        audience: String,
    },
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::ApiGateway { audience } => {
                write!(formatter, "ApiGateway {{ audience: {audience:?} }}")
            }
            AuthConfig::Jwt {
                issuer, audience, ..
            } => write!(
                formatter,
                "Jwt {{ issuer: {issuer:?}, audience: {audience:?}, secret: <redacted> }}"
            ),
        }
    }
}

pub const LOCAL_ISSUER: &str = "order-service-local";
pub const LOCAL_AUDIENCE: &str = "order-service";

impl AuthConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match lookup("AUTH_MODE").as_deref() {
            Some("apigateway") => Ok(AuthConfig::ApiGateway {
                audience: lookup("AUTH_AUDIENCE"),
            }),
            Some("jwt") => {
                let secret = lookup("AUTH_JWT_SECRET").ok_or_else(|| {
                    ConfigError("AUTH_MODE=jwt requires AUTH_JWT_SECRET".to_owned())
                })?;
                if secret.len() < 32 {
                    return Err(ConfigError(
                        "AUTH_JWT_SECRET must be at least 32 characters".to_owned(),
                    ));
                }
                Ok(AuthConfig::Jwt {
                    secret: secret.into_bytes(),
                    issuer: lookup("AUTH_ISSUER").unwrap_or_else(|| LOCAL_ISSUER.to_owned()),
                    audience: lookup("AUTH_AUDIENCE").unwrap_or_else(|| LOCAL_AUDIENCE.to_owned()),
                })
            }
            _ => Err(ConfigError(
                "AUTH_MODE must be \"apigateway\" or \"jwt\"".to_owned(),
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
}

/// Signs a development token for `subject` (used by `cargo xtask token`, tests and k6).
pub fn sign_token(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    subject: &str,
    issued_at: u64,
    lifetime_seconds: u64,
) -> Result<String, ServiceError> {
    let claims = Claims {
        sub: subject.to_owned(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        exp: issued_at + lifetime_seconds,
        iat: issued_at,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|error| ServiceError::internal(format!("cannot sign a token: {error}")))
}

/// Whether the caller wants to read an order (a stranger is told it does not exist) or do
/// anything else (a stranger is told it is forbidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOrder,
    Other,
}

#[derive(Clone)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    ApiGateway {
        audience: Option<String>,
    },
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            Mode::ApiGateway { .. } => formatter.write_str("Authenticator(ApiGateway)"),
            Mode::Jwt { .. } => formatter.write_str("Authenticator(Jwt)"),
        }
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mode = match config {
            AuthConfig::ApiGateway { audience } => Mode::ApiGateway {
                audience: audience.clone(),
            },
            AuthConfig::Jwt {
                secret,
                issuer,
                audience,
            } => {
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.leeway = 5;
                Mode::Jwt {
                    key: DecodingKey::from_secret(secret),
                    validation: Box::new(validation),
                }
            }
        };
        Self { mode }
    }

    /// The verified subject of the request.
    pub fn subject(&self, request: &Request) -> Result<String, ServiceError> {
        match &self.mode {
            Mode::ApiGateway { audience } => {
                let claims = authorizer_claims(request).ok_or(ServiceError::Unauthorized(
                    "the request carries no authorizer claims",
                ))?;
                if let Some(audience) = audience {
                    let matches = ["aud", "client_id"]
                        .iter()
                        .any(|name| claims.get(*name).is_some_and(|value| value == audience));
                    if !matches {
                        return Err(ServiceError::Unauthorized(
                            "the token is for another audience",
                        ));
                    }
                }
                claims
                    .get("sub")
                    .filter(|subject| !subject.is_empty())
                    .cloned()
                    .ok_or(ServiceError::Unauthorized("the token has no subject"))
            }
            Mode::Jwt { key, validation } => {
                let header = request
                    .headers()
                    .get(lambda_http::http::header::AUTHORIZATION)
                    .ok_or(ServiceError::Unauthorized(
                        "an Authorization: Bearer token is required",
                    ))?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::trim)
                    .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LENGTH)
                    .ok_or(ServiceError::Unauthorized(
                        "the Authorization header is not a Bearer token",
                    ))?;
                decode::<Claims>(token, key, validation)
                    .map(|data| data.claims.sub)
                    .map_err(|_| ServiceError::Unauthorized("the token is invalid or expired"))
            }
        }
    }

    /// Authenticates the caller and checks that it owns `path_user`.
    pub fn authorize(
        &self,
        request: &Request,
        path_user: &UserId,
        access: Access,
    ) -> Result<(), ServiceError> {
        let subject = self.subject(request)?;
        if subject == path_user.as_str() {
            return Ok(());
        }
        Err(match access {
            Access::ReadOrder => ServiceError::OrderNotFound,
            Access::Other => ServiceError::Forbidden,
        })
    }
}

/// The claims API Gateway's authorizer put into the request context: HTTP API JWT
/// authorizers in `authorizer.jwt.claims`, REST API Cognito authorizers in `authorizer.claims`.
fn authorizer_claims(request: &Request) -> Option<std::collections::HashMap<String, String>> {
    let authorizer = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(context) => &context.authorizer,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    if let Some(jwt) = authorizer.jwt.as_ref().filter(|jwt| !jwt.claims.is_empty()) {
        return Some(jwt.claims.clone());
    }
    let claims = authorizer.fields.get("claims")?.as_object()?;
    Some(
        claims
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_request(claims: serde_json::Value, authorization: Option<&str>) -> Request {
        let mut headers = serde_json::Map::new();
        if let Some(value) = authorization {
            headers.insert("authorization".into(), value.into());
        }
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /users/{userId}/orders",
            "rawPath": "/users/user-1/orders",
            "rawQueryString": "",
            "headers": headers,
            "pathParameters": {"userId": "user-1"},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "GET", "path": "/users/user-1/orders", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /users/{userId}/orders", "stage": "$default",
                "time": "25/Nov/2026:21:00:00 +0000", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn api_gateway_claims_decide_ownership() {
        let auth = Authenticator::new(&AuthConfig::ApiGateway { audience: None });
        let request = v2_request(serde_json::json!({"sub": "user-1"}), None);
        assert!(auth
            .authorize(&request, &user("user-1"), Access::Other)
            .is_ok());
        assert!(matches!(
            auth.authorize(&request, &user("user-2"), Access::Other),
            Err(ServiceError::Forbidden)
        ));
        assert!(matches!(
            auth.authorize(&request, &user("user-2"), Access::ReadOrder),
            Err(ServiceError::OrderNotFound)
        ));
        let anonymous = v2_request(serde_json::json!({}), None);
        assert!(matches!(
            auth.subject(&anonymous),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn api_gateway_mode_checks_the_audience_when_configured() {
        let auth = Authenticator::new(&AuthConfig::ApiGateway {
            audience: Some("client-a".into()),
        });
        let id_token = v2_request(
            serde_json::json!({"sub": "user-1", "aud": "client-a"}),
            None,
        );
        let access_token = v2_request(
            serde_json::json!({"sub": "user-1", "client_id": "client-a"}),
            None,
        );
        let foreign = v2_request(
            serde_json::json!({"sub": "user-1", "aud": "client-b"}),
            None,
        );
        assert_eq!(auth.subject(&id_token).unwrap(), "user-1");
        assert_eq!(auth.subject(&access_token).unwrap(), "user-1");
        assert!(matches!(
            auth.subject(&foreign),
            Err(ServiceError::Unauthorized(_))
        ));
    }

    #[test]
    fn jwt_mode_verifies_signature_issuer_audience_and_expiry() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let auth = Authenticator::new(&AuthConfig::Jwt {
            secret: secret.clone(),
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let bearer =
            |token: String| v2_request(serde_json::json!({}), Some(&format!("Bearer {token}")));
        let good = sign_token(&secret, LOCAL_ISSUER, LOCAL_AUDIENCE, "user-1", now, 60).unwrap();
        assert_eq!(auth.subject(&bearer(good.clone())).unwrap(), "user-1");
        let wrong_key = sign_token(
            b"another-secret-another-secret-xx",
            LOCAL_ISSUER,
            LOCAL_AUDIENCE,
            "user-1",
            now,
            60,
        )
        .unwrap();
        let wrong_issuer =
            sign_token(&secret, "someone-else", LOCAL_AUDIENCE, "user-1", now, 60).unwrap();
        let wrong_audience =
            sign_token(&secret, LOCAL_ISSUER, "other-api", "user-1", now, 60).unwrap();
        let expired = sign_token(
            &secret,
            LOCAL_ISSUER,
            LOCAL_AUDIENCE,
            "user-1",
            now - 3_600,
            60,
        )
        .unwrap();
        for token in [
            wrong_key,
            wrong_issuer,
            wrong_audience,
            expired,
            "garbage".into(),
            String::new(),
        ] {
            assert!(matches!(
                auth.subject(&bearer(token)),
                Err(ServiceError::Unauthorized(_))
            ));
        }
        // A token in the claims alone does not authenticate in jwt mode.
        let claims_only = v2_request(serde_json::json!({"sub": "user-1"}), None);
        assert!(matches!(
            auth.subject(&claims_only),
            Err(ServiceError::Unauthorized(_))
        ));
        // The "none" algorithm is refused.
        let unsigned = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            good.split('.').nth(1).unwrap()
        );
        assert!(matches!(
            auth.subject(&bearer(unsigned)),
            Err(ServiceError::Unauthorized(_))
        ));
    }
}
