//! Laying a product's stock out again: over another number of shards (a reshard) or evenly
//! over the same number (a rebalance), decided step by step. Each step is one transaction the
//! store conditions on the product item's arrangement and on every shard change, and moves
//! exactly as many units out of shards as into them.

use super::stock::{spread, ShardCount, StockLayout};
use super::ProductId;

/// What the product item (shard 0) says of the shards: how many sales choose from, and how
/// many may hold units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrangement {
    pub count: ShardCount,
    pub span: u32,
}

/// One shard's part in a rearrangement, with the condition that keeps it exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChange {
    /// Take units away: the shard must still hold at least that many (a concurrent sale may
    /// have taken some; it only fails if it took more than the shard is to keep).
    Take { shard: u32, units: i64 },
    /// Give units: the shard must exist.
    Give { shard: u32, units: i64 },
    /// Create the shard, holding units: it must not exist.
    Create { shard: u32, units: i64 },
    /// Delete the shard: it must hold exactly the units seen, which the other changes place.
    Remove { shard: u32, seen: i64 },
}

impl ShardChange {
    pub fn shard(&self) -> u32 {
        match *self {
            ShardChange::Take { shard, .. }
            | ShardChange::Give { shard, .. }
            | ShardChange::Create { shard, .. }
            | ShardChange::Remove { shard, .. } => shard,
        }
    }

    /// The units the change adds to the shards (negative: takes away).
    pub fn delta(&self) -> i64 {
        match *self {
            ShardChange::Take { units, .. } => -units,
            ShardChange::Give { units, .. } | ShardChange::Create { units, .. } => units,
            ShardChange::Remove { seen, .. } => -seen,
        }
    }
}

/// One step of laying a product's units out again, written as one transaction: the product
/// item's arrangement changes from `from` (the condition) to `to`, and every shard change
/// applies; the changes' deltas sum to zero, so no unit is lost or invented. A step that
/// `unseals` only removes the seal from shards 0..from.span (a sealed product holds nothing
/// to move, and nothing moves into sealed shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rearrangement {
    pub product_id: ProductId,
    pub from: Arrangement,
    pub to: Arrangement,
    pub changes: Vec<ShardChange>,
    pub unseals: bool,
}

impl Rearrangement {
    /// Whether the step brings the product to `target` shards, nothing left to drain.
    pub fn reaches(&self, target: ShardCount) -> bool {
        self.to.count == target && self.to.span == target.get()
    }
}

/// As an operator reads it: `give 5 to shard 0`.
impl std::fmt::Display for ShardChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ShardChange::Take { shard, units } => write!(f, "take {units} from shard {shard}"),
            ShardChange::Give { shard, units } => write!(f, "give {units} to shard {shard}"),
            ShardChange::Create { shard, units } => write!(f, "create shard {shard} with {units}"),
            ShardChange::Remove { shard, seen } => write!(f, "remove shard {shard} holding {seen}"),
        }
    }
}

/// One line for the operator's log: `4 shards over 4 -> 2 over 4` (count over span), whether
/// it unseals, then its changes.
impl std::fmt::Display for Rearrangement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to) = (self.from.count.get(), self.to.count.get());
        let plural = if from == 1 { "" } else { "s" };
        write!(
            f,
            "{from} shard{plural} over {} -> {to} over {}",
            self.from.span, self.to.span
        )?;
        if self.unseals {
            f.write_str(", unsealed")?;
        }
        for (index, change) in self.changes.iter().enumerate() {
            f.write_str(if index == 0 { ": " } else { ", " })?;
            write!(f, "{change}")?;
        }
        Ok(())
    }
}

impl StockLayout {
    /// What the product item says now.
    pub fn arrangement(&self) -> Arrangement {
        Arrangement {
            count: self.count,
            span: self.span(),
        }
    }

    /// The next step towards `target` shards holding the units evenly, or `None` when the
    /// layout is there already (or holds a negative total, which no step can spread).
    ///
    /// - While a reshard to fewer shards is draining: remove the drained shards, their units
    ///   spread over the shards sales choose from.
    /// - To fewer shards: first only the count changes, so that new sales stop choosing the
    ///   shards to remove (the step after, once they are quiet, removes them: removing a shard
    ///   needs its exact units, which a shard still being sold from rarely keeps for long).
    /// - To more shards, or as many (a rebalance): every shard moves to its even level in one
    ///   step; new shards are created holding theirs.
    pub fn toward(&self, target: ShardCount) -> Option<Rearrangement> {
        let from = self.arrangement();
        let total = self.total();
        if total < 0 {
            return None;
        }
        let count = self.count;
        if self.sealed {
            // Sold out and level at nothing: a rebalance has nothing to do; a reshard first
            // takes the seal off, since it will change shards.
            return (target != count || self.is_draining()).then(|| Rearrangement {
                product_id: self.product_id.clone(),
                from,
                to: from,
                changes: Vec::new(),
                unseals: true,
            });
        }
        if self.is_draining() || target < count {
            if !self.is_draining() {
                return Some(Rearrangement {
                    product_id: self.product_id.clone(),
                    from,
                    to: Arrangement {
                        count: target,
                        span: count.get(),
                    },
                    changes: Vec::new(),
                    unseals: false,
                });
            }
            let mut changes = self.levelled(count, total);
            for shard in count.get()..self.span() {
                if let Some(seen) = self.shards[shard as usize] {
                    changes.push(ShardChange::Remove { shard, seen });
                }
            }
            return Some(Rearrangement {
                product_id: self.product_id.clone(),
                from,
                to: Arrangement {
                    count,
                    span: count.get(),
                },
                changes,
                unseals: false,
            });
        }
        let changes = self.levelled(target, total);
        if changes.is_empty() && target == count {
            return None;
        }
        Some(Rearrangement {
            product_id: self.product_id.clone(),
            from,
            to: Arrangement {
                count: target,
                span: target.get(),
            },
            changes,
            unseals: false,
        })
    }

    /// The changes that bring shards 0..shards to their even levels of `total`.
    fn levelled(&self, shards: ShardCount, total: i64) -> Vec<ShardChange> {
        spread(total, shards)
            .into_iter()
            .zip(0..)
            .filter_map(|(level, shard)| {
                let seen = self.shards.get(shard as usize).copied().flatten();
                match seen {
                    None => Some(ShardChange::Create {
                        shard,
                        units: level,
                    }),
                    Some(seen) if seen > level => Some(ShardChange::Take {
                        shard,
                        units: seen - level,
                    }),
                    Some(seen) if seen < level => Some(ShardChange::Give {
                        shard,
                        units: level - seen,
                    }),
                    Some(_) => None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stock::tests::{any_layout, layout, product};
    use proptest::prelude::*;

    #[test]
    fn a_reshard_to_fewer_shards_fences_then_drains() {
        let two = ShardCount::new(2).unwrap();
        let before = layout(4, &[Some(1), Some(7), Some(0), Some(4)]);
        // First only the count, the span stays: sales stop choosing shards 2 and 3.
        let fence = before.toward(two).unwrap();
        assert_eq!(fence.to_string(), "4 shards over 4 -> 2 over 4");
        assert!(!fence.reaches(two));
        // Then the drained shards go, their units to the others.
        let draining = layout(2, &[Some(1), Some(7), Some(0), Some(4)]);
        let drain = draining.toward(two).unwrap();
        assert_eq!(
            drain.to_string(),
            "2 shards over 4 -> 2 over 2: give 5 to shard 0, take 1 from shard 1, \
             remove shard 2 holding 0, remove shard 3 holding 4"
        );
        assert!(drain.reaches(two));
    }

    #[test]
    fn a_rebalance_levels_and_does_nothing_when_level() {
        let four = ShardCount::new(4).unwrap();
        let rebalance = layout(4, &[Some(1), Some(7), Some(0), Some(4)])
            .toward(four)
            .unwrap();
        assert_eq!(
            rebalance.to_string(),
            "4 shards over 4 -> 4 over 4: give 2 to shard 0, take 4 from shard 1, \
             give 3 to shard 2, take 1 from shard 3"
        );
        assert!(layout(4, &[Some(3), Some(3), Some(3), Some(3)])
            .toward(four)
            .is_none());
    }

    #[test]
    fn a_reshard_to_more_shards_creates_them_holding_their_level() {
        let four = ShardCount::new(4).unwrap();
        let up = layout(1, &[Some(10)]).toward(four).unwrap();
        assert_eq!(
            up.to_string(),
            "1 shard over 1 -> 4 over 4: take 7 from shard 0, create shard 1 with 3, \
             create shard 2 with 2, create shard 3 with 2"
        );
        assert!(up.reaches(four));
    }

    #[test]
    fn a_sold_out_product_is_sealed_and_a_reshard_unseals_it_first() {
        let empty = layout(4, &[Some(0), Some(0), Some(0), Some(0)]);
        assert!(empty.should_seal());
        assert!(!layout(4, &[Some(0), Some(1), Some(0), Some(0)]).should_seal());
        assert!(!layout(4, &[Some(0), None, Some(0), Some(0)]).should_seal());
        assert!(
            !layout(1, &[Some(0)]).should_seal(),
            "one item says it itself"
        );
        let sealed = StockLayout {
            sealed: true,
            ..empty
        };
        assert!(!sealed.should_seal());
        let four = ShardCount::new(4).unwrap();
        assert_eq!(sealed.toward(four), None, "a rebalance of nothing");
        let unseal = sealed.toward(ShardCount::new(2).unwrap()).unwrap();
        assert!(unseal.unseals && unseal.changes.is_empty());
        assert_eq!(unseal.from, unseal.to);
    }

    proptest! {
        #[test]
        fn every_step_conserves_units_and_the_steps_arrive(
            start in any_layout(),
            target in 1..=12_u32,
        ) {
            let target = ShardCount::new(target).unwrap();
            let total = start.total();
            let mut now = start;
            for _ in 0..3 {
                let Some(step) = now.toward(target) else { break };
                prop_assert_eq!(step.changes.iter().map(ShardChange::delta).sum::<i64>(), 0);
                // Apply the step as the store would.
                let span = step.to.span.max(now.span()) as usize;
                let mut shards = now.shards.clone();
                shards.resize(span, None);
                for change in &step.changes {
                    let slot = &mut shards[change.shard() as usize];
                    *slot = match change {
                        ShardChange::Remove { .. } => None,
                        other => Some(slot.unwrap_or(0) + other.delta()),
                    };
                    prop_assert!(slot.is_none_or(|units| units >= 0));
                }
                shards.truncate(step.to.span as usize);
                now = StockLayout { product_id: product(), count: step.to.count, shards, sealed: false };
                prop_assert_eq!(now.total(), total);
            }
            prop_assert_eq!(now.count, target);
            prop_assert_eq!(now.span(), target.get());
            prop_assert!(now.toward(target).is_none(), "level after the steps: {:?}", now);
        }
    }
}
