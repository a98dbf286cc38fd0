//! What the tests that put production's failures between the store and DynamoDB Local share
//! (tests/exactly_once.rs, tests/store_faults.rs, tests/idempotency.rs): a small seed and its
//! reads. The failures themselves come from `dynamodb-faithful` (`testkit::faithful_table`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::domain::{NewOrder, ProductId};
use order_service::store::SeedPlan;
use testkit::{new_order, TestTable};

/// Two users with 100,000 KRW, two products with 10 units.
pub(crate) fn small_plan() -> SeedPlan {
    SeedPlan {
        users: 2,
        balance: 100_000,
        products: 2,
        stock: 10,
        ..SeedPlan::default()
    }
}

pub(crate) fn one_unit() -> NewOrder {
    new_order(&[("product-1", 1)])
}

pub(crate) async fn stock(table: &TestTable, product: &str) -> i64 {
    table
        .store
        .product_stock(&ProductId::parse(product).unwrap())
        .await
        .unwrap()
        .unwrap()
}
