//! Development tokens: the local stack's HS256 key (`.local/dev-jwt-secret`, which `install`
//! writes) and the tokens signed with it, as the functions in `AUTH_MODE=jwt` accept them.

use anyhow::{Context, Result};

use crate::{clock, paths};

pub(crate) fn jwt_secret() -> Result<String> {
    let text = std::fs::read_to_string(paths::local().join("dev-jwt-secret"))
        .context("no development key yet: run `cargo xtask install` or `cargo xtask up`")?;
    Ok(text.trim().to_owned())
}

/// A development token for `user`, valid for 12 hours.
pub(crate) fn sign(secret: &str, user: &str) -> Result<String> {
    let now = clock::now_seconds();
    testkit::sign_token(
        secret.as_bytes(),
        order_service::auth::LOCAL_ISSUER,
        order_service::auth::LOCAL_AUDIENCE,
        user,
        now,
        12 * 3_600,
    )
    .context("cannot sign a development token")
}

pub fn token_command(user: &str) -> Result<()> {
    order_service::domain::UserId::parse(user).map_err(|error| anyhow::anyhow!("{error}"))?;
    println!("{}", sign(&jwt_secret()?, user)?);
    Ok(())
}
