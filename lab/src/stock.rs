//! `cargo xtask stock`: a product's stock shards, for operators. `show` prints each shard and
//! their sum; `reshard` changes how many shards a live product has while orders flow, and
//! `rebalance` spreads its units evenly over the shards it has. Both write one step per
//! transaction, conditioned so that a concurrent sale makes a step retry, never lose or invent
//! a unit (`order_service::app::stock`). Each works on the running local stack, a table behind
//! an endpoint, or a deployed stack (`--stack`, `--table`, `--endpoint`, as `seed` and `audit`).

use std::time::Duration;

use anyhow::{Context, Result};
use order_service::app::stock;
use order_service::domain::{ProductId, ShardCount, StockLayout};

use crate::client::{runtime, store_failure};
use crate::target::TargetArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Command {
    /// Print a product's shards, the units in each, and their sum (its stock).
    Show(ProductArgs),
    /// Change a live product's shard count; its units are spread evenly over the new shards.
    /// To fewer shards it takes two steps: sales stop choosing the shards it removes, then,
    /// after `--settle`, they are removed and their units given to the others.
    Reshard {
        #[command(flatten)]
        product: ProductArgs,
        /// The new shard count (1: an ordinary product again).
        #[arg(long)]
        shards: u32,
        /// How long to wait between the two steps of a reshard to fewer shards, for requests
        /// that read the old count to finish (Lambda's timeout bounds them).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        settle: Duration,
    },
    /// Spread a product's units evenly over the shards it has (after a restock, or when
    /// `show` shows them drained unevenly).
    Rebalance(ProductArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct ProductArgs {
    /// The product, e.g. product-flash-sharded.
    #[arg(long)]
    product: String,
    #[command(flatten)]
    target: TargetArgs,
}

impl ProductArgs {
    fn product_id(&self) -> Result<ProductId> {
        ProductId::parse(&self.product).map_err(|error| anyhow::anyhow!("--product: {error}"))
    }
}

/// The layout as an operator reads it: one line per shard, then the sum.
pub(crate) fn render(layout: &StockLayout) -> String {
    let mut text = format!(
        "{}: {} shard(s) sales choose from",
        layout.product_id,
        layout.count.get()
    );
    if layout.sealed {
        text.push_str(", sealed: sold out (whatever gives units back takes the seal off)");
    }
    if layout.is_draining() {
        text.push_str(&format!(
            ", {} more being drained by a reshard (run `stock reshard` again to finish it)",
            layout.span() - layout.count.get()
        ));
    }
    text.push('\n');
    for (shard, units) in layout.shards.iter().enumerate() {
        let units = units.map_or_else(|| "missing".to_owned(), |units| units.to_string());
        text.push_str(&format!("  shard {shard:>2}: {units:>10}\n"));
    }
    text.push_str(&format!("  stock:    {:>10}\n", layout.total()));
    text
}

pub fn run(args: &Args) -> Result<()> {
    let (product, command) = match &args.command {
        Command::Show(product) | Command::Rebalance(product) => (product, &args.command),
        Command::Reshard { product, .. } => (product, &args.command),
    };
    let product_id = product.product_id()?;
    let target = product.target.resolve()?;
    runtime()?.block_on(async {
        let store = target.store().await?;
        match command {
            Command::Show(_) => {
                let layout = stock::show(&store, &product_id)
                    .await
                    .map_err(store_failure)?;
                print!("{}", render(&layout));
            }
            Command::Reshard { shards, settle, .. } => {
                let count = ShardCount::new(*shards).map_err(|error| anyhow::anyhow!("--shards: {error}"))?;
                eprintln!("Resharding {product_id} to {} shard(s) on {} ...", count.get(), target.describe());
                let done = stock::rearrange(&store, &product_id, Some(count), *settle)
                    .await
                    .map_err(store_failure)
                    .context("the reshard did not finish; every step that committed left a valid layout, and running it again continues")?;
                report(&done);
            }
            Command::Rebalance(_) => {
                eprintln!("Rebalancing {product_id} on {} ...", target.describe());
                let done = stock::rearrange(&store, &product_id, None, Duration::ZERO)
                    .await
                    .map_err(store_failure)?;
                report(&done);
            }
        }
        Ok(())
    })
}

fn report(done: &stock::Rearranged) {
    println!("before:\n{}", render(&done.before));
    println!("after:\n{}", render(&done.after));
    for (number, step) in done.steps.iter().enumerate() {
        println!("step {}: {step}", number + 1);
    }
    println!(
        "{} step(s) written, {} sent again (a sale moved the stock, or its partitions throttled)",
        done.steps.len(),
        done.retries
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_reads_shard_by_shard_with_its_sum() {
        let layout = StockLayout {
            product_id: ProductId::parse("product-flash-sharded").unwrap(),
            count: ShardCount::new(2).unwrap(),
            shards: vec![Some(3), Some(4), None],
            sealed: false,
        };
        let text = render(&layout);
        assert!(text.contains("2 shard(s)"), "{text}");
        assert!(text.contains("1 more being drained"), "{text}");
        assert!(text.contains("shard  2:    missing"), "{text}");
        assert!(text.contains("stock:             7"), "{text}");
    }
}
