//! The `EvolutionStore` port on DynamoDB: one item per evolution (`key` = `evolution#<trigger>`,
//! the state as JSON) and one per watch cursor (`key` = `cursor#<name>`, the next block).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use latentmint_core::living::EvolutionState;
use latentmint_core::ports::{EvolutionStore, PortError, PortResult};

use crate::dynamodb::dynamo_error;

/// Evolution states and scan cursors in a DynamoDB table (hash key `key`, a string).
pub struct DynamoEvolutionStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoEvolutionStore {
    /// Records in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn read(&self, key: String, attr: &str) -> PortResult<Option<AttributeValue>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error(&self.table, "GetItem", e))?;
        Ok(out.item.and_then(|mut i| i.remove(attr)))
    }

    async fn write(&self, key: String, attr: &str, value: AttributeValue) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(key))
            .item(attr, value)
            .send()
            .await
            .map_err(|e| dynamo_error(&self.table, "PutItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl EvolutionStore for DynamoEvolutionStore {
    async fn get(&self, key: &str) -> PortResult<Option<EvolutionState>> {
        match self.read(format!("evolution#{key}"), "body").await? {
            None => Ok(None),
            Some(v) => {
                let body =
                    v.as_s().map_err(|_| PortError::Permanent(format!("evolution {key}: body is not a string")))?;
                serde_json::from_str(body)
                    .map(Some)
                    .map_err(|e| PortError::Permanent(format!("corrupt evolution record {key}: {e}")))
            }
        }
    }

    async fn put(&self, key: &str, state: &EvolutionState) -> PortResult<()> {
        let body = serde_json::to_string(state).map_err(|e| PortError::Permanent(e.to_string()))?;
        self.write(format!("evolution#{key}"), "body", AttributeValue::S(body)).await
    }

    async fn cursor(&self, name: &str) -> PortResult<Option<u64>> {
        match self.read(format!("cursor#{name}"), "block").await? {
            None => Ok(None),
            Some(v) => v
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .map(Some)
                .ok_or_else(|| PortError::Permanent(format!("cursor {name}: block is not a number"))),
        }
    }

    async fn set_cursor(&self, name: &str, next: u64) -> PortResult<()> {
        self.write(format!("cursor#{name}"), "block", AttributeValue::N(next.to_string())).await
    }
}
