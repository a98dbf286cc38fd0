//! The flash-sale run's own check, after the load: exactly the seeded stock of
//! `product-flash` was sold (no oversell, no undersell).

use anyhow::Result;

use crate::seed_plan::SeedArgs;

/// After a flash sale: exactly the seeded stock was sold (no oversell, no undersell).
pub(super) fn flash_sale_check(target: &crate::target::Target, seed: &SeedArgs) -> Result<String> {
    let product = order_service::domain::ProductId::parse("product-flash")
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let (stock, sold) = crate::client::runtime()?.block_on(async {
        let store = target.store().await?;
        let stock = store.product_stock(&product).await;
        let orders = store.all_orders().await;
        Ok::<_, anyhow::Error>((stock, orders))
    })?;
    let stock = stock.map_err(crate::client::store_failure)?.unwrap_or(-1);
    let sold: u64 = sold
        .map_err(crate::client::store_failure)?
        .iter()
        .filter(|order| order.status.holds_stock())
        .flat_map(|order| order.items.iter())
        .filter(|line| line.product_id == product)
        .map(|line| u64::from(line.quantity.get()))
        .sum();
    let expected = seed.flash_stock as u64;
    let verdict = if sold == expected && stock == 0 {
        "exact"
    } else {
        "WRONG"
    };
    Ok(format!(
        "{verdict}: {sold} units of product-flash held by orders, {stock} left, {expected} seeded"
    ))
}
