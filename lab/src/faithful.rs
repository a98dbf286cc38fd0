//! The local stack's `dynamodb-faithful`, from the ops lab: its faults, settings and counts over
//! its control endpoints (`/_faithful/...` on its own port), so that drills inject faults and
//! reports read conflicts, throttles and capacity units from the proxy the functions reach.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use dynamodb_faithful::{Faults, PartitionStats, Summary};

use crate::http::Request;
use crate::state::StackState;

/// A running `dynamodb-faithful`.
#[derive(Debug, Clone)]
pub(crate) struct Faithful {
    endpoint: String,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl Faithful {
    /// The proxy of a stack, if it runs one (not with `--store direct`).
    pub(crate) fn of(state: &StackState) -> Option<Self> {
        state.faithful_endpoint().map(|endpoint| Self {
            endpoint: endpoint.to_owned(),
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>> {
        let url = format!("{}/_faithful/{path}", self.endpoint);
        let headers = [("content-type".to_owned(), "application/json".to_owned())];
        let response = Request::new(method, &url, TIMEOUT)
            .headers(&headers)
            .body(body)
            .send()
            .with_context(|| format!("dynamodb-faithful did not answer {method} {url}"))?;
        if response.status != 200 {
            bail!(
                "dynamodb-faithful answered {method} {url} with {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        Ok(response.body)
    }

    /// Replaces the faults in force.
    pub(crate) fn set_faults(&self, faults: &Faults) -> Result<()> {
        self.call("PUT", "faults", &serde_json::to_vec(faults)?)
            .map(|_| ())
    }

    /// Everything counted since the start or the last reset.
    pub(crate) fn summary(&self) -> Result<Summary> {
        Ok(serde_json::from_slice(&self.call("GET", "stats", &[])?)?)
    }

    /// Starts counting afresh.
    pub(crate) fn reset(&self) -> Result<()> {
        self.call("POST", "stats/reset", &[]).map(|_| ())
    }
}

/// A product's figures summed over its partitions: its item (`<table>/PRODUCT#<id>`) and its
/// stock shards' items (`<table>/PRODUCT#<id>#<n>`), but not another product whose id only
/// starts with this one's.
pub(crate) fn product_partitions(summary: &Summary, table: &str, product: &str) -> PartitionStats {
    let own = format!("{table}/PRODUCT#{product}");
    summary
        .partitions
        .iter()
        .filter(|(partition, _)| {
            partition.strip_prefix(&own).is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('#')
                        .is_some_and(|shard| shard.parse::<u32>().is_ok())
            })
        })
        .map(|(_, stats)| stats.clone())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_products_partitions_are_its_item_and_its_shards_only() {
        let stats = |throttled| PartitionStats {
            throttled,
            ..PartitionStats::default()
        };
        let summary = Summary {
            partitions: [
                ("t/PRODUCT#p-1".to_owned(), stats(1)),
                ("t/PRODUCT#p-1#3".to_owned(), stats(10)),
                ("t/PRODUCT#p-10".to_owned(), stats(100)),
                ("t/PRODUCT#p-1#x".to_owned(), stats(1_000)),
                ("t/USER#p-1".to_owned(), stats(10_000)),
            ]
            .into_iter()
            .collect(),
            ..Summary::default()
        };
        assert_eq!(product_partitions(&summary, "t", "p-1").throttled, 11);
    }
}
