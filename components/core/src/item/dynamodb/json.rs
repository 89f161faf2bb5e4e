//! The requests as bodies of DynamoDB's JSON API (`X-Amz-Target: DynamoDB_20120810.<op>`),
//! and its answers read back: for a store that speaks HTTP itself.

use serde_json::{Value, json};

use serde_dynamo::Item;

use super::capture::Capture;
use super::due_index;
use super::items::NOT_EXISTS;
use super::list::{Projection, Scan};
use super::refusal::Refusal;
use super::update::StatusUpdate;
use crate::store::StoreError;

/// `TransactWriteItems`.
pub fn capture(table: &str, capture: &Capture) -> Value {
    let put = |item: &Item| json!({ "Put": { "TableName": table, "Item": item, "ConditionExpression": NOT_EXISTS } });
    json!({ "TransactItems": capture.items.iter().map(put).collect::<Vec<_>>() })
}

/// `GetItem`.
pub fn get(table: &str, key: &Item, consistent: bool) -> Value {
    json!({ "TableName": table, "Key": key, "ConsistentRead": consistent })
}

/// `UpdateItem`.
pub fn update(table: &str, update: &StatusUpdate) -> Value {
    json!({
        "TableName": table,
        "Key": update.key,
        "UpdateExpression": update.update,
        "ConditionExpression": update.condition,
        "ExpressionAttributeNames": update.names,
        "ExpressionAttributeValues": update.values,
    })
}

/// `Scan`, from `start` (a page's `LastEvaluatedKey`).
pub fn scan(table: &str, scan: &Scan, start: Option<Value>) -> Value {
    let mut request = json!({
        "TableName": table,
        "FilterExpression": scan.filter,
        "ProjectionExpression": scan.projection.expression,
        "ExpressionAttributeNames": scan.projection.names,
        "ExpressionAttributeValues": scan.values,
    });
    if let Some(start) = start {
        request["ExclusiveStartKey"] = start;
    }
    request
}

/// `Query` of the `due` index, from `start`, at most `limit` items a page.
pub fn due_query(
    table: &str,
    query: &due_index::Query,
    limit: Option<usize>,
    start: Option<Value>,
) -> Value {
    let mut request = json!({
        "TableName": table,
        "IndexName": due_index::NAME,
        "KeyConditionExpression": query.key_condition,
        "ExpressionAttributeNames": query.names,
        "ExpressionAttributeValues": query.values,
    });
    if let Some(limit) = limit {
        request["Limit"] = json!(limit);
    }
    if let Some(start) = start {
        request["ExclusiveStartKey"] = start;
    }
    request
}

/// `Query` of one partition (`PK = pk`), strongly consistent, from `start`.
pub fn partition(table: &str, pk: &str, projection: &Projection, start: Option<Value>) -> Value {
    let mut names = projection.names.clone();
    names.insert("#pk".to_owned(), "PK".to_owned());
    let mut request = json!({
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk",
        "ProjectionExpression": projection.expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": { ":pk": { "S": pk } },
        "ConsistentRead": true,
    });
    if let Some(start) = start {
        request["ExclusiveStartKey"] = start;
    }
    request
}

/// `BatchGetItem` of up to [`super::BATCH_GET_KEYS`] keys, strongly consistent.
pub fn batch_get(table: &str, keys: &[Value], projection: &Projection) -> Value {
    json!({
        "RequestItems": { table: {
            "Keys": keys,
            "ProjectionExpression": projection.expression,
            "ExpressionAttributeNames": projection.names,
            "ConsistentRead": true,
        }}
    })
}

/// The items of a `BatchGetItem` answer, and the keys it left for another call.
pub fn batch_got(table: &str, answer: Value) -> Result<(Vec<Item>, Vec<Value>), StoreError> {
    let items = answer["Responses"][table]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(read_item)
        .collect::<Result<_, _>>()?;
    let left = answer["UnprocessedKeys"][table]["Keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok((items, left))
}

/// The item of a `GetItem` answer.
pub fn item(answer: Value) -> Result<Option<Item>, StoreError> {
    match answer.get("Item") {
        Some(item) if !item.is_null() => Ok(Some(read_item(item.clone())?)),
        _ => Ok(None),
    }
}

/// The items of a `Scan` page, and where the next page starts.
pub fn page(answer: Value) -> Result<(Vec<Item>, Option<Value>), StoreError> {
    let items = answer["Items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(read_item)
        .collect::<Result<_, _>>()?;
    let next = answer
        .get("LastEvaluatedKey")
        .filter(|key| !key.is_null())
        .cloned();
    Ok((items, next))
}

/// An error answer (`{"__type": "...#Kind", "message": ..., "CancellationReasons": ...}`).
pub fn refusal(answer: &Value) -> Refusal {
    let kind = answer["__type"].as_str().unwrap_or("UnknownError");
    Refusal {
        kind: kind.rsplit('#').next().unwrap_or(kind).to_owned(),
        message: answer["message"]
            .as_str()
            .or(answer["Message"].as_str())
            .unwrap_or_default()
            .to_owned(),
        reasons: answer["CancellationReasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["Code"].as_str().unwrap_or("None").to_owned())
            .collect(),
        detail: String::new(),
    }
}

fn read_item(item: Value) -> Result<Item, StoreError> {
    serde_json::from_value(item)
        .map_err(|e| StoreError::Corrupt(format!("an item DynamoDB sent: {e}")))
}
