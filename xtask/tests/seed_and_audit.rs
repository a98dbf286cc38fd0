//! `cargo xtask seed` and `cargo xtask audit` against a table behind an endpoint, as an
//! operator runs them against an emulator or a restored table: the binary itself, a real
//! DynamoDB Local, and the exit codes runbooks/audit-violation.md relies on (0 clean,
//! 1 violation, 2 could not run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{text, xtask};
use testkit::fresh_table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_refuses_live_data_and_audit_exits_by_finding() {
    let table = fresh_table().await;
    let target = ["--endpoint", &table.endpoint, "--table", &table.table];
    let seed = |extra: &[&str]| {
        let mut arguments = vec!["seed", "--users", "3", "--products", "2"];
        arguments.extend_from_slice(&target);
        arguments.extend_from_slice(extra);
        xtask(&arguments)
    };
    let audit = || xtask(&[&["audit"][..], &target[..]].concat());

    let first = seed(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let clean = audit();
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("audit: clean"));

    // A table that holds data is not seeded over (it would break the ledger) without --wipe.
    let again = seed(&[]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("--wipe"), "{}", text(&again));

    // Money created out of nothing: a violation, exit 1.
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("USER#user-1".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("USER".into()),
        )
        .update_expression("SET balance = balance + :gift")
        .expression_attribute_values(
            ":gift",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .expect("the test's own write");
    let violated = audit();
    assert_eq!(violated.status.code(), Some(1), "{}", text(&violated));
    assert!(String::from_utf8_lossy(&violated.stdout).contains("user-1"));

    // --wipe deletes every item and seeds afresh: clean again.
    let wiped = seed(&["--wipe"]);
    assert!(wiped.status.success(), "{}", text(&wiped));
    assert!(String::from_utf8_lossy(&wiped.stderr).contains("Deleted"));
    assert_eq!(audit().status.code(), Some(0));

    // No such table: the audit could not run, which is not a finding.
    let missing = xtask(&[
        "audit",
        "--endpoint",
        &table.endpoint,
        "--table",
        "no-such-table",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("could not run"));
}
