//! What a seed holds: how many users and products, their balance and stock, the flash sale's
//! products and which products keep their stock in shards, as the commands take them on the
//! command line and k6 reads them. A description only: `seed` writes it to a table.

use order_service::store::SeedPlan;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SeedArgs {
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
    pub(crate) fn k6_env(&self) -> [(&'static str, String); 5] {
        [
            ("USERS", self.users.to_string()),
            ("PRODUCTS", self.products.to_string()),
            ("BALANCE", self.balance.to_string()),
            ("STOCK", self.stock.to_string()),
            ("FLASH_STOCK", self.flash_stock.to_string()),
        ]
    }

    pub(crate) fn plan(&self) -> SeedPlan {
        SeedPlan {
            users: self.users,
            balance: self.balance,
            products: self.products,
            stock: self.stock,
            extra_products: vec![(FLASH_PRODUCT.to_owned(), FLASH_PRICE, self.flash_stock)],
            ..SeedPlan::default()
        }
    }
}

/// The flash sale's scarce product, one stock item.
pub(crate) const FLASH_PRODUCT: &str = "product-flash";
/// The flash sale's sharded twin: the same price and stock, spread over shards.
pub(crate) const SHARDED_FLASH_PRODUCT: &str = "product-flash-sharded";
const FLASH_PRICE: i64 = 9_900;

/// Which seeded products keep their stock in shards. Every product has one shard unless named
/// here, so a seed without these options is what it always was.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ShardArgs {
    /// Also seed `product-flash-sharded`, with the flash stock and price of `product-flash`
    /// spread over this many shards, so that a flash sale can sell both side by side (1: not
    /// seeded).
    #[arg(long, default_value_t = 1)]
    pub(crate) flash_shards: u32,
    /// Spread a seeded product's stock over shards, PRODUCT=N (repeatable), e.g.
    /// `--shard product-7=8`.
    #[arg(long = "shard", value_name = "PRODUCT=N", value_parser = parse_shard)]
    pub(crate) shards: Vec<(String, u32)>,
}

fn parse_shard(text: &str) -> Result<(String, u32), String> {
    let (product, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PRODUCT=N"))?;
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a shard count"))?;
    order_service::domain::ShardCount::new(count).map_err(|error| error.to_string())?;
    order_service::domain::ProductId::parse(product).map_err(|error| error.to_string())?;
    Ok((product.to_owned(), count))
}

impl ShardArgs {
    /// `seed`'s plan with these products sharded (and the sharded flash product added).
    pub(crate) fn apply(&self, seed: &SeedArgs) -> SeedPlan {
        let mut plan = seed.plan();
        if self.flash_shards > 1 {
            plan.extra_products.push((
                SHARDED_FLASH_PRODUCT.to_owned(),
                FLASH_PRICE,
                seed.flash_stock,
            ));
            plan.sharded
                .push((SHARDED_FLASH_PRODUCT.to_owned(), self.flash_shards));
        }
        plan.sharded.extend(self.shards.iter().cloned());
        plan
    }
}
