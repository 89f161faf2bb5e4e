//! Destinations and their holds ([`inbox_core::item::dynamodb::destinations`]).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use inbox_core::destination::{Destination, Held};
use inbox_core::item::destinations::{DESTINATIONS_PK, destination_sk};
use inbox_core::item::dynamodb::{self, destinations as layout};
use inbox_core::store::StoreError;

use crate::{DynamoStore, corrupt, unavailable};

impl DynamoStore {
    pub(crate) async fn all_destinations(&self) -> Result<Vec<Destination>, StoreError> {
        let items = self
            .query(None, &layout::destinations_query(), None, usize::MAX)
            .await?;
        items
            .into_iter()
            .map(|item| layout::read_destination(item).map_err(corrupt))
            .collect()
    }

    pub(crate) async fn one_destination(
        &self,
        name: &str,
    ) -> Result<Option<Destination>, StoreError> {
        let key = dynamodb::key_of(DESTINATIONS_PK, &destination_sk(name));
        let item = self.get_key(key, true).await?;
        item.map(|item| layout::read_destination(item).map_err(corrupt))
            .transpose()
    }

    pub(crate) async fn put_destination(
        &self,
        expected_version: u64,
        destination: &Destination,
    ) -> Result<bool, StoreError> {
        let put = layout::destination_put(expected_version, destination);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item.into()))
            .condition_expression(put.condition);
        if !put.names.is_empty() {
            request = request.set_expression_attribute_names(Some(put.names));
        }
        if let Some(values) = put.values {
            request = request.set_expression_attribute_values(Some(values.into()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    pub(crate) async fn held_items(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<Held>, StoreError> {
        let mut held = Vec::new();
        for query in layout::held_queries(name) {
            if held.len() >= limit {
                break;
            }
            for item in self.query(None, &query, None, limit - held.len()).await? {
                held.push(layout::read_held(item).map_err(corrupt)?);
            }
        }
        Ok(held)
    }

    pub(crate) async fn count_held(&self, name: &str) -> Result<u64, StoreError> {
        let keys = dynamodb::projection(["PK"]);
        let mut count = 0;
        for query in layout::held_queries(name) {
            count += self
                .query(None, &query, Some(&keys), usize::MAX)
                .await?
                .len() as u64;
        }
        Ok(count)
    }

    pub(crate) async fn delete_held(&self, name: &str, held: &Held) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(layout::held_key(name, held).into()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
