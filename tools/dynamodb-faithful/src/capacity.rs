//! Per-partition throughput limits: one token bucket per partition key value for write units
//! and one for read units, refilled continuously at the partition's rate (production: 1,000
//! write units and 3,000 read units per second per partition, on-demand tables too) and
//! holding at most one second of it.
//!
//! A simplification, written down: DynamoDB splits a hot item collection's partition as load
//! grows, but never one partition key value beyond those rates for a single item, and its
//! adaptive capacity isolates hot items. A bucket per partition key value (the item
//! collection) is therefore the ceiling one hot key meets, which is what this service's hot
//! product or hot user would meet; table-level and account-level quotas are not modelled.
//!
//! A request is admitted when every partition it touches has the units it is expected to use;
//! otherwise it is throttled and consumes nothing. After DynamoDB Local answers, the units it
//! reports consumed settle the account (an update of a large item costs more than the one unit
//! estimated up front), which may leave a bucket in debt for the next request.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The throughput each partition may serve per second. Zero or less: unlimited.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub write_units_per_second: f64,
    pub read_units_per_second: f64,
}

impl Limits {
    /// Production DynamoDB's per-partition ceilings.
    pub const PRODUCTION: Limits = Limits {
        write_units_per_second: 1_000.0,
        read_units_per_second: 3_000.0,
    };

    fn rate(&self, writes: bool) -> f64 {
        if writes {
            self.write_units_per_second
        } else {
            self.read_units_per_second
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
    }
}

#[derive(Debug)]
struct State {
    limits: Limits,
    /// Keyed by (partition, whether write units).
    buckets: HashMap<(String, bool), Bucket>,
}

/// The buckets of every partition seen.
#[derive(Debug)]
pub(crate) struct Capacity {
    state: Mutex<State>,
}

/// One partition's expected use by a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Charge {
    pub partition: String,
    pub units: f64,
}

impl Capacity {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                limits,
                buckets: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn limits(&self) -> Limits {
        self.lock().limits
    }

    /// Changes the limits; buckets keep their tokens, capped at the new second's worth.
    pub(crate) fn set_limits(&self, limits: Limits) {
        let mut state = self.lock();
        state.limits = limits;
        for ((_, writes), bucket) in &mut state.buckets {
            let rate = limits.rate(*writes);
            if rate > 0.0 {
                bucket.tokens = bucket.tokens.min(rate);
            }
        }
    }

    /// Admits the whole request or none of it: `Err` lists the indices of the charges whose
    /// partition lacks the units (nothing is consumed then).
    pub(crate) fn admit_all(&self, writes: bool, charges: &[Charge]) -> Result<(), Vec<usize>> {
        let now = Instant::now();
        let mut state = self.lock();
        let rate = state.limits.rate(writes);
        if rate <= 0.0 {
            return Ok(());
        }
        let mut needed: HashMap<&str, f64> = HashMap::new();
        for charge in charges {
            *needed.entry(charge.partition.as_str()).or_default() += charge.units;
        }
        let short: Vec<&str> = needed
            .iter()
            .filter(|(partition, units)| {
                let bucket = state
                    .buckets
                    .entry(((**partition).to_owned(), writes))
                    .or_insert(Bucket {
                        tokens: rate,
                        refilled: now,
                    });
                bucket.refill(rate, now);
                bucket.tokens < **units
            })
            .map(|(partition, _)| *partition)
            .collect();
        if !short.is_empty() {
            return Err(charges
                .iter()
                .enumerate()
                .filter(|(_, charge)| short.contains(&charge.partition.as_str()))
                .map(|(index, _)| index)
                .collect());
        }
        for (partition, units) in needed {
            if let Some(bucket) = state.buckets.get_mut(&(partition.to_owned(), writes)) {
                bucket.tokens -= units;
            }
        }
        Ok(())
    }

    /// Admits each charge on its own (a batch: DynamoDB returns what it could not serve as
    /// unprocessed): the indices of the charges refused.
    pub(crate) fn admit_each(&self, writes: bool, charges: &[Charge]) -> Vec<usize> {
        charges
            .iter()
            .enumerate()
            .filter(|(_, charge)| {
                self.admit_all(writes, std::slice::from_ref(*charge))
                    .is_err()
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Gives back the units of a request admitted and then refused (a conflict).
    pub(crate) fn refund(&self, writes: bool, charges: &[Charge]) {
        self.settle(writes, charges, 0.0);
    }

    /// Settles a request's account once its actual units are known: `actual` is shared out
    /// over the charges in proportion to what they expected.
    pub(crate) fn settle(&self, writes: bool, charges: &[Charge], actual: f64) {
        let expected: f64 = charges.iter().map(|charge| charge.units).sum();
        if expected <= 0.0 || (actual - expected).abs() < f64::EPSILON {
            return;
        }
        let mut state = self.lock();
        for charge in charges {
            let share = actual * charge.units / expected;
            if let Some(bucket) = state.buckets.get_mut(&(charge.partition.clone(), writes)) {
                bucket.tokens -= share - charge.units;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(partition: &str, units: f64) -> Charge {
        Charge {
            partition: partition.to_owned(),
            units,
        }
    }

    #[test]
    fn a_partition_serves_one_second_of_its_rate_then_throttles_only_itself() {
        let capacity = Capacity::new(Limits {
            write_units_per_second: 10.0,
            read_units_per_second: 30.0,
        });
        // GIVEN 10 write units a second: five transactional writes (2 units each) fit
        for _ in 0..5 {
            assert!(capacity.admit_all(true, &[charge("hot", 2.0)]).is_ok());
        }
        // THEN the sixth is throttled, and a request touching it and another partition names
        // only the hot one
        assert_eq!(
            capacity.admit_all(true, &[charge("cold", 2.0), charge("hot", 2.0)]),
            Err(vec![1])
        );
        // AND the cold partition was not charged by the refused request: it still has 10
        for _ in 0..5 {
            assert!(capacity.admit_all(true, &[charge("cold", 2.0)]).is_ok());
        }
        // AND reads have their own bucket
        assert!(capacity.admit_all(false, &[charge("hot", 1.0)]).is_ok());
    }

    #[test]
    fn the_bucket_refills_with_time() {
        let capacity = Capacity::new(Limits {
            write_units_per_second: 100.0,
            read_units_per_second: 100.0,
        });
        assert!(capacity.admit_all(true, &[charge("p", 100.0)]).is_ok());
        assert!(capacity.admit_all(true, &[charge("p", 5.0)]).is_err());
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(capacity.admit_all(true, &[charge("p", 5.0)]).is_ok());
    }

    #[test]
    fn actual_units_settle_the_account() {
        let capacity = Capacity::new(Limits {
            write_units_per_second: 10.0,
            read_units_per_second: 10.0,
        });
        assert!(capacity.admit_all(true, &[charge("p", 1.0)]).is_ok());
        // The update turned out to write a 9 KB item: 9 units, 8 more than expected.
        capacity.settle(true, &[charge("p", 1.0)], 9.0);
        assert!(capacity.admit_all(true, &[charge("p", 1.0)]).is_ok());
        assert!(capacity.admit_all(true, &[charge("p", 1.0)]).is_err());
    }

    #[test]
    fn batches_are_admitted_item_by_item_and_zero_means_unlimited() {
        let capacity = Capacity::new(Limits {
            write_units_per_second: 0.0,
            read_units_per_second: 1.0,
        });
        assert_eq!(
            capacity.admit_each(
                false,
                &[charge("a", 1.0), charge("a", 1.0), charge("b", 1.0)]
            ),
            vec![1]
        );
        assert!(capacity.admit_all(true, &[charge("a", 1e9)]).is_ok());
    }
}
