//! Operating a product's stock shards (the operators' use cases, behind the `admin` feature):
//! show them, reshard a live product to another shard count, rebalance its units evenly over
//! the shards it has. Each is read -> decide (`StockLayout::toward`) -> write one step in one
//! transaction -> on a lost race (a sale took from a shard the step takes from, a give-back
//! landed on a shard it removes) read and decide again. No unit is lost or invented whatever
//! runs at the same time: every step moves as many units out of shards as into them.
//!
//! The application never rebalances by itself. A create whose shard ran short already finds
//! the units wherever they are, so stock is never stranded; an automatic rebalance would only
//! save that slower path its cost near the end of a sale, at the price of one transaction on
//! every shard at the moment they are hottest, conflicting with the sales it means to help.
//! Operators rebalance after a restock or a reshard, or when `stock show` shows the shards
//! drained unevenly.

use std::time::Duration;

use crate::domain::{ProductId, Rearrangement, Refusal, ShardCount, StockLayout};
use crate::error::ServiceError;
use crate::store::{
    ArrangeStock, DynamoOrderStore, ReadCatalog, Rejection, SeedPlan, SeedSummary, WriteError,
};

/// How many times one rearrangement decides anew after a step lost a race, before it gives
/// up (nothing half-done stays behind: every step that committed left a valid layout).
const MAX_ATTEMPTS: u32 = 200;

/// What a reshard or rebalance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rearranged {
    pub before: StockLayout,
    pub after: StockLayout,
    /// The steps written, in order (a reshard to fewer shards takes two: stop selling from the
    /// shards it removes, then remove them); each reads as one line (`Display`).
    pub steps: Vec<Rearrangement>,
    /// Steps that lost a race with a concurrent sale or give-back and were decided again, or
    /// that a busy partition throttled and were sent again.
    pub retries: u32,
}

/// Seeds `plan` into the store's table, each sharded product's units then spread evenly over
/// its shards (the store writes them all to the first; the spreading is a rebalance).
pub async fn seed(store: &DynamoOrderStore, plan: &SeedPlan) -> Result<SeedSummary, ServiceError> {
    let summary = store.seed(plan).await?;
    for (product, count) in plan.shard_counts()?.iter() {
        let rebalanced = rearrange(store, product, Some(count), Duration::ZERO).await?;
        tracing::debug!(%product, steps = rebalanced.steps.len(), "seeded stock spread");
    }
    Ok(summary)
}

/// A product's shards as they stand (each read strongly consistently).
pub async fn show<S: ReadCatalog>(
    store: &S,
    product_id: &ProductId,
) -> Result<StockLayout, ServiceError> {
    store
        .read_stock(product_id, ShardCount::ONE)
        .await?
        .ok_or_else(|| {
            Refusal::ProductNotFound {
                product_id: product_id.clone(),
            }
            .into()
        })
}

/// Brings `product_id` to `target` shards (or, with `None`, keeps its count: a rebalance),
/// its units spread evenly. `settle` is how long a reshard to fewer shards waits between
/// stopping sales from the shards it removes and removing them, so that requests that read the
/// old count have finished (Lambda's timeout bounds them; the catalog read converges within a
/// second): removing a shard needs its exact units, which a shard still sold from rarely keeps.
pub async fn rearrange<S: ArrangeStock>(
    store: &S,
    product_id: &ProductId,
    target: Option<ShardCount>,
    settle: Duration,
) -> Result<Rearranged, ServiceError> {
    let before = show(store, product_id).await?;
    let target = target.unwrap_or(before.count);
    let (mut steps, mut retries) = (Vec::new(), 0);
    let mut layout = before.clone();
    for attempt in 1..=MAX_ATTEMPTS {
        let Some(step) = layout.toward(target) else {
            break;
        };
        match store.write_rearrangement(&step).await {
            Ok(()) => {
                tracing::info!(%product_id, %step, "stock rearranged");
                let (arrived, fenced) = (
                    step.reaches(target),
                    step.changes.is_empty() && !step.unseals,
                );
                steps.push(step);
                if arrived {
                    break;
                }
                // After the count dropped, let requests that read the old one finish.
                if fenced {
                    tokio::time::sleep(settle).await;
                }
            }
            Err(WriteError::Rejected(Rejection::StockMoved { .. })) => {
                retries += 1;
                let pause =
                    Duration::from_millis(fastrand::u64(1..=(2 * u64::from(attempt.min(50)))));
                tokio::time::sleep(pause).await;
            }
            Err(WriteError::Rejected(other)) => {
                return Err(ServiceError::internal(format!(
                    "a rearrangement of {product_id} was rejected by {other:?}"
                )))
            }
            // A sale's busy partitions throttle the step, or its shards are held by a sale's
            // transactions: nothing was written, and an operator's command can wait, so wait
            // for the partitions' next second rather than fail half-way.
            Err(WriteError::Failed(
                ServiceError::Throttled { .. } | ServiceError::Contention { .. },
            )) => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(200..=1_000))).await;
            }
            Err(WriteError::Failed(error)) => return Err(error),
        }
        if attempt == MAX_ATTEMPTS {
            return Err(ServiceError::Contention {
                retry_after: Duration::from_secs(1),
            });
        }
        layout = show(store, product_id).await?;
    }
    let after = show(store, product_id).await?;
    Ok(Rearranged {
        before,
        after,
        steps,
        retries,
    })
}
