//! `cargo xtask seed --flash-shards`, `stock show`, `stock reshard` and `stock rebalance`
//! against a table behind an endpoint, as an operator runs them before and during a sale: the
//! binary itself and a real DynamoDB Local; the audit stays clean throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::{text, xtask};
use testkit::fresh_table;

/// What a successful run printed on stdout.
fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_seeds_shows_reshards_and_rebalances_a_sharded_product() {
    let table = fresh_table().await;
    let target = ["--endpoint", &table.endpoint, "--table", &table.table];
    let run = |arguments: &[&str]| xtask(&[arguments, &target[..]].concat());
    // GIVEN the flash product and its sharded twin, 50 units each, the twin over 8 shards
    stdout(&run(&[
        "seed",
        "--users",
        "3",
        "--products",
        "2",
        "--flash-stock",
        "50",
        "--flash-shards",
        "8",
    ]));
    let product = ["--product", "product-flash-sharded"];
    let shown = stdout(&run(&[&["stock", "show"][..], &product[..]].concat()));
    assert!(shown.contains("8 shard(s)"), "{shown}");
    assert!(shown.contains("shard  7:          6"), "{shown}");
    assert!(shown.contains("stock:            50"), "{shown}");
    let plain = stdout(&run(&["stock", "show", "--product", "product-flash"]));
    assert!(
        plain.contains("1 shard(s)") && plain.contains("stock:            50"),
        "{plain}"
    );
    // WHEN it is resharded to 3 (two steps) and rebalanced
    let resharded = stdout(&run(&[
        &["stock", "reshard", "--shards", "3", "--settle", "0s"][..],
        &product[..],
    ]
    .concat()));
    assert!(resharded.contains("2 step(s) written"), "{resharded}");
    let shown = stdout(&run(&[&["stock", "show"][..], &product[..]].concat()));
    assert!(
        shown.contains("3 shard(s)") && shown.contains("shard  2:         16"),
        "{shown}"
    );
    assert!(shown.contains("stock:            50"), "{shown}");
    let rebalanced = stdout(&run(&[&["stock", "rebalance"][..], &product[..]].concat()));
    assert!(
        rebalanced.contains("0 step(s) written"),
        "already level: {rebalanced}"
    );
    // THEN money and stock are conserved, and bad input is refused before anything runs
    stdout(&run(&["audit"]));
    let refused = run(&[&["stock", "reshard", "--shards", "0"][..], &product[..]].concat());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("shard count"));
    let unknown = run(&["stock", "show", "--product", "product-404"]);
    assert!(!unknown.status.success());
}
