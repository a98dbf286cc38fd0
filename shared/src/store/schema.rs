//! The table definition, written once. Tests, `cargo xtask up` and the LocalStack init create
//! the table from here, and a test proves `template.yaml` declares exactly the same schema.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use super::errors::store_error;
use super::items::{LIST_SK, PK, SK};
use crate::error::ServiceError;

/// The name of the local secondary index that lists a user's orders by creation time.
pub const LIST_INDEX: &str = "byCreatedAt";

/// A key schema: (attribute name, HASH|RANGE) pairs.
pub type KeySchema = Vec<(&'static str, &'static str)>;

/// The schema as plain data, in the shape CloudFormation uses, so it can be compared with
/// `template.yaml` and printed for other tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// (attribute name, type) for every key attribute.
    pub attributes: Vec<(&'static str, &'static str)>,
    /// (attribute name, HASH|RANGE) of the table's primary key.
    pub key: KeySchema,
    /// (index name, key, projection type) of every local secondary index.
    pub local_indexes: Vec<(&'static str, KeySchema, &'static str)>,
    /// The attribute whose epoch seconds expire an item (Idempotency-Key records).
    pub ttl_attribute: &'static str,
}

pub fn table_schema() -> TableSchema {
    TableSchema {
        attributes: vec![(PK, "S"), (SK, "S"), (LIST_SK, "S")],
        key: vec![(PK, "HASH"), (SK, "RANGE")],
        local_indexes: vec![(LIST_INDEX, vec![(PK, "HASH"), (LIST_SK, "RANGE")], "ALL")],
        ttl_attribute: super::idempotency::TTL_ATTRIBUTE,
    }
}

fn key_element(name: &str, kind: &str) -> Result<KeySchemaElement, ServiceError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::from(kind))
        .build()
        .map_err(|error| ServiceError::internal(error.to_string()))
}

/// Creates the table (on-demand) and waits until it is active.
pub async fn create_table(client: &Client, table: &str) -> Result<(), ServiceError> {
    let schema = table_schema();
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in &schema.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(ScalarAttributeType::from(*kind))
                .build()
                .map_err(|error| ServiceError::internal(error.to_string()))?,
        );
    }
    for (name, kind) in &schema.key {
        request = request.key_schema(key_element(name, kind)?);
    }
    for (index_name, key, projection) in &schema.local_indexes {
        let mut index = LocalSecondaryIndex::builder()
            .index_name(*index_name)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(*projection))
                    .build(),
            );
        for (name, kind) in key {
            index = index.key_schema(key_element(name, kind)?);
        }
        request = request.local_secondary_indexes(
            index
                .build()
                .map_err(|error| ServiceError::internal(error.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|error| store_error("CreateTable", error))?;
    for _ in 0..100 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|error| store_error("DescribeTable", error))?;
        let active = described
            .table()
            .and_then(|table| table.table_status())
            .is_some_and(|status| status.as_str() == "ACTIVE");
        if active {
            client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                        .attribute_name(schema.ttl_attribute)
                        .enabled(true)
                        .build()
                        .map_err(|error| ServiceError::internal(error.to_string()))?,
                )
                .send()
                .await
                .map_err(|error| store_error("UpdateTimeToLive", error))?;
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(ServiceError::internal(format!(
        "table {table} did not become active"
    )))
}

/// Whether the table exists.
pub async fn table_exists(client: &Client, table: &str) -> Result<bool, ServiceError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(error) => {
            if error
                .as_service_error()
                .is_some_and(|service_error| service_error.is_resource_not_found_exception())
            {
                Ok(false)
            } else {
                Err(store_error("DescribeTable", error))
            }
        }
    }
}

/// Deletes the table if it exists.
pub async fn delete_table(client: &Client, table: &str) -> Result<(), ServiceError> {
    if table_exists(client, table).await? {
        client
            .delete_table()
            .table_name(table)
            .send()
            .await
            .map_err(|error| store_error("DeleteTable", error))?;
    }
    Ok(())
}
