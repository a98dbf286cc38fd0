//! Sharded stock, decided. A product's units may be spread over several items, its shards, so
//! that a flash sale's writes spread over several partitions, each with its own throughput
//! (1,000 write units a second on DynamoDB, and a transactional write costs two). Shard 0 is
//! the product item itself; an ordinary product has only that one, and nothing here changes it.
//!
//! Every decision a sale makes about shards is made here and is pure (the caller hands in its
//! source of chance): which shard a line takes from, how a line is served from several shards
//! when no single one holds enough, and which shard a cancel or refund gives units back to (how
//! a product's units are laid out again is `rearrangement.rs`). The store writes what is
//! decided; its conditions (`stock >= q` on every shard taken from) keep overselling impossible
//! whatever was read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{OrderLine, ProductId, Quantity, Units, ValidationError};

/// The most stock moves one create may write: a transaction holds 100 items, and the order and
/// the Idempotency-Key's answer take two of them.
pub const MAX_STOCK_MOVES: usize = 98;

/// The most shards a product may have: a line that takes a unit from every shard still fits in
/// a create's transaction beside its order and its key's answer, and a reshard, a seal, a read
/// of every shard at one instant each touch every shard in one request (100 items at most).
pub const MAX_SHARDS: u32 = MAX_STOCK_MOVES as u32;

/// How many shards sales of a product choose from: 1 (the product item alone) to `MAX_SHARDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ShardCount(u32);

impl ShardCount {
    pub const ONE: ShardCount = ShardCount(1);

    pub fn new(count: u32) -> Result<Self, ValidationError> {
        if (1..=MAX_SHARDS).contains(&count) {
            Ok(Self(count))
        } else {
            Err(ValidationError(format!(
                "a product's shard count must be between 1 and {MAX_SHARDS}"
            )))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether the stock lives in more than the product item.
    pub fn is_sharded(self) -> bool {
        self.0 > 1
    }
}

impl TryFrom<u32> for ShardCount {
    type Error = ValidationError;
    fn try_from(count: u32) -> Result<Self, Self::Error> {
        Self::new(count)
    }
}

impl From<ShardCount> for u32 {
    fn from(count: ShardCount) -> u32 {
        count.0
    }
}

/// The shard counts of the sharded products among some products; a product not listed has one
/// shard. An order keeps the counts its create saw, as a hint of where to give units back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardCounts(BTreeMap<ProductId, ShardCount>);

impl ShardCounts {
    pub fn of(&self, product_id: &ProductId) -> ShardCount {
        self.0.get(product_id).copied().unwrap_or(ShardCount::ONE)
    }

    /// Records `count` for `product_id` (an unsharded product is simply not listed).
    pub fn set(&mut self, product_id: ProductId, count: ShardCount) {
        if count.is_sharded() {
            self.0.insert(product_id, count);
        } else {
            self.0.remove(&product_id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sharded products and their counts.
    pub fn iter(&self) -> impl Iterator<Item = (&ProductId, ShardCount)> {
        self.0.iter().map(|(product, count)| (product, *count))
    }

    /// Only the products among `products`.
    pub fn restricted_to<'a>(&self, products: impl IntoIterator<Item = &'a ProductId>) -> Self {
        let mut restricted = Self::default();
        for product_id in products {
            restricted.set(product_id.clone(), self.of(product_id));
        }
        restricted
    }
}

/// Units taken from or given to one shard of a product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMove {
    pub product_id: ProductId,
    pub shard: u32,
    pub quantity: Quantity,
}

/// A product's stock as read, shard by shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLayout {
    pub product_id: ProductId,
    /// The shards sales choose from: 0..count.
    pub count: ShardCount,
    /// The units of every shard that may hold some, 0..span: the `count` shards sales choose
    /// from, then (while a reshard to fewer shards drains them) the shards being removed.
    /// `None` where a shard's item is missing.
    pub shards: Vec<Option<i64>>,
    /// Whether the shards are sealed: all found empty at one instant and marked so, each of
    /// them, in one transaction (`seal`). Any sealed shard then proves the product sold out,
    /// so a create refused by a sealed shard needs no read; whatever gives units back removes
    /// the seal from every shard first.
    pub sealed: bool,
}

impl StockLayout {
    /// An ordinary product's layout: the product item alone, holding `stock`.
    pub fn single(product_id: ProductId, stock: i64) -> Self {
        Self {
            product_id,
            count: ShardCount::ONE,
            shards: vec![Some(stock)],
            sealed: false,
        }
    }

    /// Whether the shards should be sealed: a sharded product whose every shard is there and
    /// empty, not sealed yet. (An ordinary product's one item already says so itself.)
    pub fn should_seal(&self) -> bool {
        !self.sealed && self.span() > 1 && self.shards.iter().all(|units| *units == Some(0))
    }

    /// How many shards may hold units (at least `count`).
    pub fn span(&self) -> u32 {
        self.shards.len() as u32
    }

    /// Whether a reshard to fewer shards is still draining the shards it removes.
    pub fn is_draining(&self) -> bool {
        self.span() > self.count.get()
    }

    /// The units of one shard (a missing shard holds none).
    pub fn units(&self, shard: u32) -> i64 {
        self.shards
            .get(shard as usize)
            .copied()
            .flatten()
            .unwrap_or(0)
    }

    /// The product's stock: the sum over its shards.
    pub fn total(&self) -> i64 {
        self.shards
            .iter()
            .flatten()
            .fold(0_i64, |sum, units| sum.saturating_add(*units))
    }
}

/// Why a line's units cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The product's shards hold fewer units than asked, all together.
    OutOfStock,
    /// The units are there, but the order's lines would take them from more shards than one
    /// transaction can write (`MAX_STOCK_MOVES`).
    TooSpread,
}

fn random_shard(count: ShardCount, chance: &mut fastrand::Rng) -> u32 {
    if count.is_sharded() {
        chance.u32(0..count.get())
    } else {
        0
    }
}

fn stock_move(product_id: &ProductId, shard: u32, units: i64) -> Option<StockMove> {
    Some(StockMove {
        product_id: product_id.clone(),
        shard,
        quantity: Quantity::new(u64::try_from(units).ok()?).ok()?,
    })
}

/// The fast path of a create, which reads no shard: each line takes its whole quantity from one
/// shard of its product chosen at random, so that concurrent sales spread over the shards. If
/// that shard holds too little, the write's condition fails and the application allocates from
/// what the shards hold (`allocate`).
pub fn take_at_random(
    lines: &[OrderLine],
    counts: &ShardCounts,
    chance: &mut fastrand::Rng,
) -> Vec<StockMove> {
    lines
        .iter()
        .map(|line| StockMove {
            product_id: line.product_id.clone(),
            shard: random_shard(counts.of(&line.product_id), chance),
            quantity: line.quantity,
        })
        .collect()
}

/// `quantity` units of `layout`'s product, from the shards as read: one shard with enough,
/// searched from a random start among the shards sales choose from (to spread load), then among
/// the shards a reshard is draining; when no single shard holds enough, the fullest shards
/// first, so that the line takes from as few as it can. Out of stock only when all the shards
/// together hold too little.
pub fn allocate(
    layout: &StockLayout,
    quantity: Quantity,
    chance: &mut fastrand::Rng,
) -> Result<Vec<StockMove>, Shortfall> {
    let wanted = i64::from(quantity.get());
    let product_id = &layout.product_id;
    if layout.total() < wanted {
        return Err(Shortfall::OutOfStock);
    }
    let count = layout.count.get().min(layout.span());
    let start = chance.u32(0..count.max(1));
    let one = (0..count)
        .map(|offset| (start + offset) % count)
        .chain(count..layout.span())
        .find(|shard| layout.units(*shard) >= wanted);
    if let Some(shard) = one {
        return Ok(vec![StockMove {
            product_id: product_id.clone(),
            shard,
            quantity,
        }]);
    }
    let mut fullest: Vec<(u32, i64)> = (0..layout.span())
        .map(|shard| (shard, layout.units(shard)))
        .filter(|(_, units)| *units > 0)
        .collect();
    fullest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut left = wanted;
    let mut moves = Vec::new();
    for (shard, units) in fullest {
        let taken = units.min(left);
        moves.extend(stock_move(product_id, shard, taken));
        left -= taken;
        if left == 0 {
            return Ok(moves);
        }
    }
    Err(Shortfall::OutOfStock)
}

/// `takes` with the moves of `moves`' product replaced by `moves`, if the whole still fits in
/// one transaction.
pub fn replace_moves(
    takes: &[StockMove],
    moves: Vec<StockMove>,
) -> Result<Vec<StockMove>, Shortfall> {
    let Some(product_id) = moves.first().map(|first| first.product_id.clone()) else {
        return Ok(takes.to_vec());
    };
    let mut replaced: Vec<StockMove> = takes
        .iter()
        .filter(|take| take.product_id != product_id)
        .cloned()
        .collect();
    replaced.extend(moves);
    if replaced.len() > MAX_STOCK_MOVES {
        return Err(Shortfall::TooSpread);
    }
    Ok(replaced)
}

/// Where units a cancel or refund gives back go: a shard at random among the `count` the order
/// saw when it was created, so that mass cancellations spread like sales. A shard removed since
/// refuses them, and the application then gives them to shard 0, which exists while the product
/// does.
pub fn give_back(units: &Units, count: ShardCount, chance: &mut fastrand::Rng) -> StockMove {
    StockMove {
        product_id: units.product_id.clone(),
        shard: random_shard(count, chance),
        quantity: units.quantity,
    }
}

/// `total` units spread as evenly as units go over `shards` shards: the first `total % shards`
/// get one more.
pub fn spread(total: i64, shards: ShardCount) -> Vec<i64> {
    let shards_i64 = i64::from(shards.get());
    let (each, rest) = (total.div_euclid(shards_i64), total.rem_euclid(shards_i64));
    (0..shards_i64)
        .map(|shard| each + i64::from(shard < rest))
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(in crate::domain) fn product() -> ProductId {
        ProductId::parse("product-flash").unwrap()
    }

    pub(in crate::domain) fn layout(count: u32, shards: &[Option<i64>]) -> StockLayout {
        StockLayout {
            product_id: product(),
            count: ShardCount::new(count).unwrap(),
            shards: shards.to_vec(),
            sealed: false,
        }
    }

    fn quantity(units: u64) -> Quantity {
        Quantity::new(units).unwrap()
    }

    fn taken(moves: &[StockMove]) -> Vec<(u32, u32)> {
        moves
            .iter()
            .map(|step| (step.shard, step.quantity.get()))
            .collect()
    }

    #[test]
    fn shard_counts_are_bounded_and_an_unlisted_product_has_one() {
        assert!(ShardCount::new(0).is_err());
        assert!(ShardCount::new(MAX_SHARDS + 1).is_err());
        assert!(!ShardCount::ONE.is_sharded());
        let mut counts = ShardCounts::default();
        counts.set(product(), ShardCount::new(8).unwrap());
        counts.set(ProductId::parse("product-1").unwrap(), ShardCount::ONE);
        assert_eq!(counts.of(&product()).get(), 8);
        assert_eq!(
            counts.of(&ProductId::parse("product-1").unwrap()),
            ShardCount::ONE
        );
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"product-flash":8}"#,
            "only sharded products are listed"
        );
        assert!(counts
            .restricted_to([&ProductId::parse("product-1").unwrap()])
            .is_empty());
    }

    #[test]
    fn the_fast_path_takes_a_random_shard_and_an_ordinary_product_its_only_one() {
        let mut counts = ShardCounts::default();
        counts.set(product(), ShardCount::new(4).unwrap());
        let lines = [
            OrderLine {
                product_id: product(),
                quantity: quantity(2),
                unit_price: super::super::Money::ZERO,
            },
            OrderLine {
                product_id: ProductId::parse("product-1").unwrap(),
                quantity: quantity(1),
                unit_price: super::super::Money::ZERO,
            },
        ];
        let mut chance = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let moves = take_at_random(&lines, &counts, &mut chance);
            assert_eq!(moves.len(), 2);
            assert_eq!(moves[0].quantity.get(), 2);
            assert_eq!(moves[1].shard, 0, "an ordinary product's stock is shard 0");
            seen.insert(moves[0].shard);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_line_takes_one_shard_with_enough_spread_by_its_random_start() {
        let even = layout(4, &[Some(5), Some(5), Some(5), Some(5)]);
        let mut chance = fastrand::Rng::with_seed(1);
        let mut shards = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let moves = allocate(&even, quantity(3), &mut chance).unwrap();
            assert_eq!(moves.len(), 1);
            shards.insert(moves[0].shard);
        }
        assert_eq!(shards.len(), 4, "the start is random: every shard serves");
        // Only shard 2 has enough: whatever the start, it is the one.
        let uneven = layout(4, &[Some(1), Some(0), Some(9), None]);
        for _ in 0..20 {
            assert_eq!(
                taken(&allocate(&uneven, quantity(3), &mut chance).unwrap()),
                vec![(2, 3)]
            );
        }
    }

    #[test]
    fn a_line_larger_than_any_shard_takes_from_the_fullest_and_the_last_unit_is_found() {
        let mut chance = fastrand::Rng::with_seed(3);
        let thin = layout(4, &[Some(2), Some(3), Some(1), Some(3)]);
        assert_eq!(
            taken(&allocate(&thin, quantity(7), &mut chance).unwrap()),
            vec![(1, 3), (3, 3), (0, 1)]
        );
        assert_eq!(
            taken(&allocate(&thin, quantity(9), &mut chance).unwrap()),
            vec![(1, 3), (3, 3), (0, 2), (2, 1)]
        );
        assert_eq!(
            allocate(&thin, quantity(10), &mut chance),
            Err(Shortfall::OutOfStock)
        );
        // The last unit, wherever it is: here in a shard a reshard is draining.
        let draining = layout(2, &[Some(0), Some(0), Some(0), Some(1)]);
        assert_eq!(
            taken(&allocate(&draining, quantity(1), &mut chance).unwrap()),
            vec![(3, 1)]
        );
        assert_eq!(
            allocate(&layout(1, &[Some(0)]), quantity(1), &mut chance),
            Err(Shortfall::OutOfStock)
        );
    }

    #[test]
    fn replacing_a_products_moves_keeps_the_others_within_one_transaction() {
        let other = ProductId::parse("product-1").unwrap();
        let step = |product_id: &ProductId, shard: u32| StockMove {
            product_id: product_id.clone(),
            shard,
            quantity: quantity(1),
        };
        let takes = vec![step(&product(), 3), step(&other, 0)];
        let replaced = replace_moves(&takes, vec![step(&product(), 1), step(&product(), 2)]);
        assert_eq!(
            replaced.unwrap(),
            vec![step(&other, 0), step(&product(), 1), step(&product(), 2)]
        );
        let too_many = (0..MAX_STOCK_MOVES as u32)
            .map(|shard| step(&product(), shard))
            .collect();
        assert_eq!(
            replace_moves(&takes, too_many),
            Err(Shortfall::TooSpread),
            "the other product's move would make 99"
        );
    }

    #[test]
    fn units_spread_evenly_the_first_shards_taking_the_rest() {
        let eight = ShardCount::new(8).unwrap();
        assert_eq!(spread(100, eight), vec![13, 13, 13, 13, 12, 12, 12, 12]);
        assert_eq!(spread(3, eight), vec![1, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(spread(5, ShardCount::ONE), vec![5]);
    }

    pub(in crate::domain) fn any_layout() -> impl Strategy<Value = StockLayout> {
        (
            1..=12_u32,
            proptest::collection::vec(proptest::option::weighted(0.9, 0..50_i64), 1..16),
        )
            .prop_map(|(count, mut shards)| {
                shards[0] = Some(shards[0].unwrap_or(0));
                let count = count.min(shards.len() as u32);
                layout(count, &shards)
            })
    }

    proptest! {
        #[test]
        fn an_allocation_takes_exactly_the_line_and_never_more_than_a_shard_holds(
            start in any_layout(),
            wanted in 1..=100_u64,
            seed in any::<u64>(),
        ) {
            let mut chance = fastrand::Rng::with_seed(seed);
            match allocate(&start, quantity(wanted), &mut chance) {
                Ok(moves) => {
                    prop_assert_eq!(moves.iter().map(|step| u64::from(step.quantity.get())).sum::<u64>(), wanted);
                    for step in &moves {
                        prop_assert!(i64::from(step.quantity.get()) <= start.units(step.shard));
                    }
                    let mut shards: Vec<u32> = moves.iter().map(|step| step.shard).collect();
                    shards.sort_unstable();
                    shards.dedup();
                    prop_assert_eq!(shards.len(), moves.len(), "a shard at most once");
                }
                Err(shortfall) => {
                    prop_assert_eq!(shortfall, Shortfall::OutOfStock);
                    prop_assert!(start.total() < wanted as i64);
                }
            }
        }
    }
}
