//! The store writes what the domain decided and decides nothing itself: no file of
//! `shared/src/store/` calls one of the domain's decisions (pricing an order, deciding a change,
//! choosing stock shards, laying stock out again). The application (`shared/src/app/`) calls
//! them, between its reads and its writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// The domain's decisions, as they are called.
const DECISIONS: &[&str] = &[
    "Order::place(",
    ".decide(",
    "take_at_random(",
    "allocate(",
    "replace_moves(",
    "give_back(",
    ".toward(",
    "spread(",
    ".without_restock_of(",
    ".restocking_first_shard_of(",
];

#[test]
fn no_store_code_calls_a_domain_decision() {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        let code = std::fs::read_to_string(&path).unwrap();
        for (number, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap_or("");
            for decision in DECISIONS {
                if code_part.contains(decision) {
                    found.push(format!(
                        "{}:{}: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "the store decides: {found:#?}");
    // The application does call them (the list names real functions).
    let app =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app/place.rs"))
            .unwrap();
    assert!(app.contains("take_at_random(") && app.contains("allocate("));
}
