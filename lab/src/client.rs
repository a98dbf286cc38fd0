//! The lab's client of the order store: the tokio runtime its synchronous commands block on, a
//! store for a DynamoDB endpoint (DynamoDB Local, the store proxy, an emulator), and a store
//! error as an operator reads it.

use anyhow::Result;
use order_service::store::{build_local_client, DynamoOrderStore, StoreSettings};

/// A store error with its causes (the SDK's reason), for an operator's message.
pub(crate) fn store_failure(error: order_service::ServiceError) -> anyhow::Error {
    anyhow::anyhow!("{}", order_service::error::ErrorChain(&error))
}

/// The runtime a synchronous command blocks on for its store and AWS calls.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A store for `table` behind `endpoint`, with the tests' settings (short timeouts, local
/// credentials).
pub(crate) async fn store_for(endpoint: &str, table: &str) -> DynamoOrderStore {
    let settings = testkit::test_settings();
    let client = build_local_client(&settings, endpoint).await;
    DynamoOrderStore::new(client, table.to_owned(), StoreSettings { ..settings })
}
