//! Data commands: reset and seed the table, audit it, and sign development tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use order_service::store::{
    build_local_client, schema, DynamoOrderStore, SeedPlan, SeedSummary, StoreSettings,
};

use crate::{paths, stack};

#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {
    /// Users user-1..user-N.
    #[arg(long, default_value_t = 1_000)]
    pub users: u32,
    /// Products product-1..product-M.
    #[arg(long, default_value_t = 100)]
    pub products: u32,
    /// Balance of every user, in KRW.
    #[arg(long, default_value_t = 1_000_000)]
    pub balance: i64,
    /// Stock of every product, in units.
    #[arg(long, default_value_t = 1_000)]
    pub stock: i64,
    /// Stock of `product-flash`, the scarce product of flash sales.
    #[arg(long, default_value_t = 50)]
    pub flash_stock: i64,
}

impl SeedArgs {
    /// The variables that tell the k6 scenarios what was seeded.
    pub fn k6_env(&self) -> [(&'static str, String); 5] {
        [
            ("USERS", self.users.to_string()),
            ("PRODUCTS", self.products.to_string()),
            ("BALANCE", self.balance.to_string()),
            ("STOCK", self.stock.to_string()),
            ("FLASH_STOCK", self.flash_stock.to_string()),
        ]
    }

    pub fn plan(&self) -> SeedPlan {
        SeedPlan {
            users: self.users,
            balance: self.balance,
            products: self.products,
            stock: self.stock,
            extra_products: vec![("product-flash".to_owned(), 9_900, self.flash_stock)],
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub async fn store_for(endpoint: &str, table: &str) -> DynamoOrderStore {
    let settings = order_service::local_dynamodb::test_settings();
    let client = build_local_client(&settings, endpoint).await;
    DynamoOrderStore::new(client, table.to_owned(), StoreSettings { ..settings })
}

/// Drops and recreates the table, then seeds it: every run starts from known initial values.
pub fn reset_and_seed(endpoint: &str, table: &str, args: &SeedArgs) -> Result<SeedSummary> {
    runtime()?.block_on(async {
        let store = store_for(endpoint, table).await;
        schema::delete_table(store.client(), table)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        schema::create_table(store.client(), table)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        store
            .seed(&args.plan())
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))
    })
}

pub fn seed_command(args: &SeedArgs) -> Result<()> {
    let state = stack::require_state()?;
    let summary = reset_and_seed(&state.dynamodb_endpoint, &state.table, args)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

pub fn audit(endpoint: &str, table: &str) -> Result<order_service::store::AuditReport> {
    runtime()?.block_on(async {
        store_for(endpoint, table)
            .await
            .audit()
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))
    })
}

#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// The DynamoDB endpoint (default: the running local stack's).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The table (default: the running local stack's).
    #[arg(long)]
    pub table: Option<String>,
}

pub fn audit_command(args: &AuditArgs) -> Result<()> {
    let (endpoint, table) = match (&args.endpoint, &args.table) {
        (Some(endpoint), Some(table)) => (endpoint.clone(), table.clone()),
        _ => {
            let state = stack::require_state()?;
            (
                args.endpoint.clone().unwrap_or(state.dynamodb_endpoint),
                args.table.clone().unwrap_or(state.table),
            )
        }
    };
    let report = audit(&endpoint, &table)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.is_clean() {
        bail!("the audit found {} violation(s)", report.violations.len());
    }
    println!(
        "audit: clean ({} orders, {} users, {} products)",
        report.orders, report.users, report.products
    );
    Ok(())
}

pub fn jwt_secret() -> Result<String> {
    let text = std::fs::read_to_string(paths::local().join("dev-jwt-secret"))
        .context("no development key yet: run `cargo xtask install` or `cargo xtask up`")?;
    Ok(text.trim().to_owned())
}

/// A development token for `user`, valid for 12 hours.
pub fn sign(secret: &str, user: &str) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    order_service::auth::sign_token(
        secret.as_bytes(),
        order_service::auth::LOCAL_ISSUER,
        order_service::auth::LOCAL_AUDIENCE,
        user,
        now,
        12 * 3_600,
    )
    .map_err(|error| anyhow::anyhow!("{error}"))
}

pub fn token_command(user: &str) -> Result<()> {
    order_service::domain::UserId::parse(user).map_err(|error| anyhow::anyhow!("{error}"))?;
    println!("{}", sign(&jwt_secret()?, user)?);
    Ok(())
}
