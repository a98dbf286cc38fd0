//! The store against a real DynamoDB Local: every operation, every business error, and the
//! contention cases (flash sale, racing payments), each followed by the conservation audit.
//! Idempotency-Keys have their own file, tests/idempotency.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use order_service::domain::Refusal;
use std::sync::Arc;
use testkit::UseCases;

use order_service::domain::{
    Change, CreateOrderRequest, NewOrder, OrderId, OrderStatus, ProductId, UserId,
};
use order_service::store::{PageRequest, SeedPlan};
use order_service::ServiceError;
use testkit::{seeded_table, TestTable};

fn user(number: u32) -> UserId {
    UserId::parse(&format!("user-{number}")).unwrap()
}

fn product(name: &str) -> ProductId {
    ProductId::parse(name).unwrap()
}

fn order_of(lines: &[(&str, u64)]) -> NewOrder {
    let items: Vec<String> = lines
        .iter()
        .map(|(product, quantity)| format!(r#"{{"productId":"{product}","quantity":{quantity}}}"#))
        .collect();
    let request: CreateOrderRequest =
        serde_json::from_str(&format!(r#"{{"items":[{}]}}"#, items.join(","))).unwrap();
    NewOrder::try_from(request).unwrap()
}

/// Deletes an item behind the store's back, as an operator or a bad migration might.
async fn delete_behind_the_store(table: &TestTable, pk: &str, sk: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    table
        .client
        .delete_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap();
}

fn small_plan() -> SeedPlan {
    SeedPlan {
        users: 5,
        balance: 100_000,
        products: 5,
        stock: 10,
        extra_products: vec![("product-scarce".into(), 10_000, 1)],
        ..SeedPlan::default()
    }
}

async fn assert_audit_clean(table: &TestTable) {
    let report = table.store.audit().await.unwrap();
    assert!(
        report.is_clean(),
        "audit violations: {:#?}",
        report.violations
    );
}

#[tokio::test]
async fn an_order_goes_through_its_whole_lifecycle() {
    let table = seeded_table(&small_plan()).await;
    let store = &table.store;
    let price_1 = order_service::store::seeded_price_of(1);
    let price_2 = order_service::store::seeded_price_of(2);

    // GIVEN a new order of two lines WHEN created THEN prices are snapshotted and stock reserved.
    let created = store
        .create_order(
            &user(1),
            &order_of(&[("product-1", 2), ("product-2", 1)]),
            None,
        )
        .await
        .unwrap();
    let order = created.order;
    assert!(!created.replayed);
    assert_eq!(order.status, OrderStatus::Created);
    assert_eq!(order.total_amount.won(), 2 * price_1 + price_2);
    assert_eq!(
        store.product_stock(&product("product-1")).await.unwrap(),
        Some(8)
    );
    assert_audit_clean(&table).await;

    // WHEN paid THEN the balance is debited by exactly the total.
    let paid = store
        .change_order(&user(1), order.order_id, Change::Pay, None)
        .await
        .unwrap()
        .order;
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(paid.paid_at.is_some());
    assert_eq!(
        store.user_balance(&user(1)).await.unwrap(),
        Some(100_000 - order.total_amount.won())
    );
    assert_eq!(
        store.get_order(&user(1), order.order_id).await.unwrap(),
        paid
    );
    assert_audit_clean(&table).await;

    // WHEN cancelled after payment THEN stock and balance are restored.
    let cancelled = store
        .change_order(&user(1), order.order_id, Change::Cancel, None)
        .await
        .unwrap()
        .order;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(store.user_balance(&user(1)).await.unwrap(), Some(100_000));
    assert_eq!(
        store.product_stock(&product("product-1")).await.unwrap(),
        Some(10)
    );
    assert_audit_clean(&table).await;

    // AND a cancelled order can be neither paid nor cancelled again.
    assert!(matches!(
        store
            .change_order(&user(1), order.order_id, Change::Pay, None)
            .await,
        Err(ServiceError::Refused(Refusal::OrderCancelled))
    ));
    assert!(matches!(
        store
            .change_order(&user(1), order.order_id, Change::Cancel, None)
            .await,
        Err(ServiceError::Refused(Refusal::OrderCancelled))
    ));
}

#[tokio::test]
async fn business_rules_are_enforced_with_specific_errors() {
    let table = seeded_table(&small_plan()).await;
    let store = &table.store;

    assert!(matches!(
        store
            .create_order(&user(99), &order_of(&[("product-1", 1)]), None)
            .await,
        Err(ServiceError::Refused(Refusal::UserNotFound))
    ));
    match store
        .create_order(&user(1), &order_of(&[("product-1", 1), ("nope", 1)]), None)
        .await
    {
        Err(ServiceError::Refused(Refusal::ProductNotFound { product_id: id })) => {
            assert_eq!(id.as_str(), "nope")
        }
        other => panic!("expected ProductNotFound, got {other:?}"),
    }
    match store
        .create_order(
            &user(1),
            &order_of(&[("product-1", 1), ("product-2", 11)]),
            None,
        )
        .await
    {
        Err(ServiceError::Refused(Refusal::OutOfStock { product_id: id })) => {
            assert_eq!(id.as_str(), "product-2")
        }
        other => panic!("expected OutOfStock naming product-2, got {other:?}"),
    }
    // Nothing was reserved by the refused order, not even the line that had stock.
    assert_eq!(
        store.product_stock(&product("product-1")).await.unwrap(),
        Some(10)
    );

    // Another user's order does not exist for this user.
    let order = store
        .create_order(&user(1), &order_of(&[("product-3", 1)]), None)
        .await
        .unwrap()
        .order;
    assert!(matches!(
        store.get_order(&user(2), order.order_id).await,
        Err(ServiceError::Refused(Refusal::OrderNotFound))
    ));
    assert!(matches!(
        store
            .change_order(&user(2), order.order_id, Change::Pay, None)
            .await,
        Err(ServiceError::Refused(Refusal::OrderNotFound))
    ));
    assert!(matches!(
        store.get_order(&user(1), OrderId::random()).await,
        Err(ServiceError::Refused(Refusal::OrderNotFound))
    ));

    store
        .change_order(&user(1), order.order_id, Change::Pay, None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .change_order(&user(1), order.order_id, Change::Pay, None)
            .await,
        Err(ServiceError::Refused(Refusal::OrderAlreadyPaid))
    ));
    assert!(matches!(
        store.list_orders(&user(99), PageRequest::first()).await,
        Err(ServiceError::Refused(Refusal::UserNotFound))
    ));
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn payments_never_overdraw_the_balance() {
    // GIVEN a user whose balance covers 7 of 20 equal orders
    let mut plan = small_plan();
    plan.stock = 1_000;
    let table = seeded_table(&plan).await;
    let price = order_service::store::seeded_price_of(1);
    let balance = 7 * price + price / 2;
    let table = Arc::new(table);
    set_balance(&table, &user(1), balance).await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        let outcome = table
            .store
            .create_order(&user(1), &order_of(&[("product-1", 1)]), None)
            .await
            .unwrap();
        orders.push(outcome.order.order_id);
    }
    // WHEN all 20 are paid at once
    let mut tasks = tokio::task::JoinSet::new();
    for order_id in orders {
        let table = table.clone();
        tasks.spawn(async move {
            table
                .store
                .change_order(&user(1), order_id, Change::Pay, None)
                .await
        });
    }
    let (mut paid, mut refused) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => paid += 1,
            Err(ServiceError::Refused(Refusal::InsufficientBalance { .. })) => refused += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    // THEN exactly 7 are paid and the balance never goes negative
    assert_eq!((paid, refused), (7, 13));
    assert_eq!(
        table.store.user_balance(&user(1)).await.unwrap(),
        Some(balance - 7 * price)
    );
    assert_audit_clean(&table).await;
}

/// Re-seeds one user with a different balance, as the audit's initial balance too.
async fn set_balance(table: &TestTable, user_id: &UserId, balance: i64) {
    use aws_sdk_dynamodb::types::AttributeValue;
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(format!("USER#{user_id}")))
        .key("sk", AttributeValue::S("USER".into()))
        .update_expression("SET balance = :b, initialBalance = :b")
        .expression_attribute_values(":b", AttributeValue::N(balance.to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flash_sale_sells_exactly_the_stock() {
    // GIVEN 50 units of one product and 200 buyers
    let plan = SeedPlan {
        users: 200,
        balance: 100_000,
        products: 1,
        stock: 1,
        extra_products: vec![("product-flash".into(), 5_000, 50)],
        ..SeedPlan::default()
    };
    let table = Arc::new(seeded_table(&plan).await);
    // WHEN all of them try to buy one unit at once
    let mut tasks = tokio::task::JoinSet::new();
    for number in 1..=200 {
        let table = table.clone();
        tasks.spawn(async move {
            table
                .store
                .create_order(&user(number), &order_of(&[("product-flash", 1)]), None)
                .await
        });
    }
    let (mut sold, mut refused) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => sold += 1,
            Err(ServiceError::Refused(Refusal::OutOfStock { product_id: id })) => {
                assert_eq!(id.as_str(), "product-flash");
                refused += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    // THEN exactly 50 succeed, 150 are told it is out of stock, and the stock ends at zero
    assert_eq!((sold, refused), (50, 150));
    assert_eq!(
        table
            .store
            .product_stock(&product("product-flash"))
            .await
            .unwrap(),
        Some(0)
    );
    assert_audit_clean(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_payments_of_one_order_charge_once() {
    let table = Arc::new(seeded_table(&small_plan()).await);
    let order = table
        .store
        .create_order(&user(1), &order_of(&[("product-1", 3)]), None)
        .await
        .unwrap()
        .order;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let table = table.clone();
        tasks.spawn(async move {
            table
                .store
                .change_order(&user(1), order.order_id, Change::Pay, None)
                .await
        });
    }
    let (mut paid, mut already) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(outcome) => {
                assert!(!outcome.replayed);
                paid += 1;
            }
            Err(ServiceError::Refused(Refusal::OrderAlreadyPaid)) => already += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((paid, already), (1, 49));
    assert_eq!(
        table.store.user_balance(&user(1)).await.unwrap(),
        Some(100_000 - order.total_amount.won())
    );
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn lists_are_newest_first_and_paginate_with_cursors() {
    let table = seeded_table(&small_plan()).await;
    let mut created = Vec::new();
    for number in 1..=5 {
        let order = table
            .store
            .create_order(
                &user(3),
                &order_of(&[(&format!("product-{number}"), 1)]),
                None,
            )
            .await
            .unwrap()
            .order;
        created.push(order.order_id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    created.reverse();
    let two = PageRequest::new(2, None).unwrap();
    let first = table.store.list_orders(&user(3), two).await.unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let second = table
        .store
        .list_orders(&user(3), two.after(cursor))
        .await
        .unwrap();
    let cursor = second.next_cursor.expect("a third page");
    let third = table
        .store
        .list_orders(&user(3), two.after(cursor))
        .await
        .unwrap();
    let listed: Vec<OrderId> = first
        .orders
        .iter()
        .chain(&second.orders)
        .chain(&third.orders)
        .map(|order| order.order_id)
        .collect();
    assert_eq!(listed, created);
    // Another user's list does not contain these orders.
    let other = table
        .store
        .list_orders(&user(4), PageRequest::new(100, None).unwrap())
        .await
        .unwrap();
    assert!(other.orders.is_empty());
    assert!(other.next_cursor.is_none());
}

#[tokio::test]
async fn audit_only_fields_stay_off_the_request_path() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = seeded_table(&small_plan()).await;
    // GIVEN a product written by other means, without the audit's initialStock
    table
        .client
        .put_item()
        .table_name(&table.table)
        .item("pk", AttributeValue::S("PRODUCT#product-bare".into()))
        .item("sk", AttributeValue::S("PRODUCT".into()))
        .item("entity", AttributeValue::S("PRODUCT".into()))
        .item("productId", AttributeValue::S("product-bare".into()))
        .item("price", AttributeValue::N("2500".into()))
        .item("stock", AttributeValue::N("3".into()))
        .send()
        .await
        .unwrap();
    // WHEN it is ordered THEN the create works (it was a 500 when the path read initialStock)
    let created = table
        .store
        .create_order(&user(1), &order_of(&[("product-bare", 2)]), None)
        .await
        .unwrap();
    assert_eq!(created.order.total_amount.won(), 5_000);
    assert_eq!(
        table
            .store
            .product_stock(&product("product-bare"))
            .await
            .unwrap(),
        Some(1)
    );
    // AND the audit names the product it cannot check, instead of failing to run
    let report = table.store.audit().await.unwrap();
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    assert!(report.violations[0].contains("product-bare has no initialStock"));
}

#[tokio::test]
async fn an_order_of_a_deleted_product_can_be_cancelled_and_refunded() {
    let table = seeded_table(&small_plan()).await;
    let store = &table.store;
    // GIVEN a paid order of two products, one of which is then deleted
    let order = store
        .create_order(
            &user(1),
            &order_of(&[("product-1", 2), ("product-2", 1)]),
            None,
        )
        .await
        .unwrap()
        .order;
    store
        .change_order(&user(1), order.order_id, Change::Pay, None)
        .await
        .unwrap();
    delete_behind_the_store(&table, "PRODUCT#product-1", "PRODUCT").await;
    // WHEN it is cancelled (a permanent 500 before)
    let cancelled = store
        .change_order(&user(1), order.order_id, Change::Cancel, None)
        .await
        .unwrap();
    // THEN it is cancelled and refunded, and the remaining product gets its stock back
    assert_eq!(cancelled.order.status, OrderStatus::Cancelled);
    assert_eq!(store.user_balance(&user(1)).await.unwrap(), Some(100_000));
    assert_eq!(
        store.product_stock(&product("product-2")).await.unwrap(),
        Some(10)
    );
    assert_eq!(
        store.product_stock(&product("product-1")).await.unwrap(),
        None
    );
    assert_audit_clean(&table).await;
}

#[tokio::test]
async fn paying_or_refunding_for_a_deleted_user_is_user_not_found_and_changes_nothing() {
    let table = seeded_table(&small_plan()).await;
    let store = &table.store;
    // GIVEN user-1 with a CREATED and a PAID order, whose user item is then deleted
    let unpaid = testkit::place_order(store, &user(1), &[("product-1", 1)]).await;
    let paid = testkit::place_order(store, &user(1), &[("product-1", 1)]).await;
    store
        .change_order(&user(1), paid.order_id, Change::Pay, None)
        .await
        .unwrap();
    delete_behind_the_store(&table, "USER#user-1", "USER").await;
    assert_eq!(store.user_balance(&user(1)).await.unwrap(), None);
    // WHEN the CREATED order is paid and the PAID one cancelled (a refund)
    let payment = store
        .change_order(&user(1), unpaid.order_id, Change::Pay, None)
        .await;
    let refund = store
        .change_order(&user(1), paid.order_id, Change::Cancel, None)
        .await;
    // THEN both are USER_NOT_FOUND (not INSUFFICIENT_BALANCE), and neither order moved
    assert!(
        matches!(payment, Err(ServiceError::Refused(Refusal::UserNotFound))),
        "{payment:?}"
    );
    assert!(
        matches!(refund, Err(ServiceError::Refused(Refusal::UserNotFound))),
        "{refund:?}"
    );
    for (order, status) in [(unpaid, OrderStatus::Created), (paid, OrderStatus::Paid)] {
        let now = store.get_order(&user(1), order.order_id).await.unwrap();
        assert_eq!(now.status, status);
    }
    assert_eq!(
        store.product_stock(&product("product-1")).await.unwrap(),
        Some(8)
    );
}

#[tokio::test]
async fn the_audit_finds_each_kind_of_tampering() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = seeded_table(&small_plan()).await;
    let order = table
        .store
        .create_order(&user(1), &order_of(&[("product-1", 2)]), None)
        .await
        .unwrap()
        .order;
    assert_audit_clean(&table).await;
    let update = |pk: String, sk: String, expression: &'static str, value: AttributeValue| {
        let client = table.client.clone();
        let name = table.table.clone();
        async move {
            client
                .update_item()
                .table_name(name)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .update_expression(expression)
                .expression_attribute_values(":v", value)
                .send()
                .await
                .unwrap();
        }
    };
    // A total that is not the sum of the lines, a price that is not the product's, and an
    // order whose user is gone: each is named.
    update(
        "USER#user-1".into(),
        format!("ORDER#{}", order.order_id),
        "SET totalAmount = :v",
        AttributeValue::N("1".into()),
    )
    .await;
    update(
        "PRODUCT#product-1".into(),
        "PRODUCT".into(),
        "SET price = :v",
        AttributeValue::N("1".into()),
    )
    .await;
    delete_behind_the_store(&table, "USER#user-1", "USER").await;
    let violations = table.store.audit().await.unwrap().violations.join("\n");
    assert!(
        violations.contains("total 1 != sum of its lines"),
        "{violations}"
    );
    assert!(violations.contains("is not its price 1"), "{violations}");
    assert!(
        violations.contains("belongs to user user-1, who does not exist"),
        "{violations}"
    );
}
