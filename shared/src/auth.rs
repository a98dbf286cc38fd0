//! Authentication and ownership. Deployed behind API Gateway, the gateway's authorizer has
//! verified the token and the function reads the subject from the authorizer's claims; locally
//! (and in emulators without authorizers) the function verifies an HS256 bearer token itself.
//! Either way the subject must own the `{userId}` in the path. There is no "off" mode.

use jsonwebtoken::{decode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::domain::UserId;
use crate::error::ServiceError;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LENGTH: usize = 4_096;

#[derive(Clone)]
pub enum AuthConfig {
    /// Trust the subject that API Gateway's authorizer put into the request context.
    ApiGateway,
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
            AuthConfig::ApiGateway => formatter.write_str("ApiGateway"),
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
            Some("apigateway") => Ok(AuthConfig::ApiGateway),
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
    ApiGateway,
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            Mode::ApiGateway => formatter.write_str("Authenticator(ApiGateway)"),
            Mode::Jwt { .. } => formatter.write_str("Authenticator(Jwt)"),
        }
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mode = match config {
            AuthConfig::ApiGateway => Mode::ApiGateway,
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
            Mode::ApiGateway => authorizer_subject(request).ok_or(ServiceError::Unauthorized(
                "the request carries no authorizer claims",
            )),
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

/// The `sub` claim from API Gateway's authorizer context: HTTP API JWT authorizers put it in
/// `authorizer.jwt.claims`, REST API Cognito authorizers in `authorizer.claims`.
fn authorizer_subject(request: &Request) -> Option<String> {
    let authorizer = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(context) => &context.authorizer,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    if let Some(subject) = authorizer
        .jwt
        .as_ref()
        .and_then(|jwt| jwt.claims.get("sub"))
    {
        return Some(subject.clone());
    }
    authorizer
        .fields
        .get("claims")
        .and_then(|claims| claims.get("sub"))
        .and_then(|subject| subject.as_str())
        .map(str::to_owned)
        .filter(|subject| !subject.is_empty())
}
