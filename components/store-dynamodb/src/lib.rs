//! `webhooks:inbox/store` on DynamoDB, for Spin in the cloud: the DynamoDB JSON API over
//! `wasi:http/outgoing-handler`, signed with SigV4 (aws-sigv4). It writes the items,
//! conditions and status updates of `inbox_core::item::dynamodb`, as the native DynamoDB
//! store does, so the table's stream feeds the Lambda bridge as usual.
//!
//! Settings (Spin variables, or the native host's `INBOX_*`): `dynamodb_table`,
//! `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, optionally
//! `aws_session_token`, `aws_endpoint_url` and `retention_days` (30; 0 keeps forever).

mod bindings {
    wit_bindgen::generate!({
        world: "dynamodb-store",
        path: "../../wit",
        generate_all,
    });
}

use std::collections::HashMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bindings::exports::webhooks::inbox::store::{CaptureOutcome, Guest, StoreError};
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use bindings::wasi::io::streams::StreamError;
use bindings::webhooks::inbox::types as wit;
use inbox_core::Status;
use inbox_core::config::{Config, secrets};
use inbox_core::item::dynamodb::{self, settings};
use inbox_core::item::{STATUS_SK, StatusItem, WEBHOOK_SK, WebhookItem};
use serde_json::{Value, json};

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);

struct DynamoStore;

bindings::export!(DynamoStore with_types_in bindings);

impl Guest for DynamoStore {
    fn capture(webhook: wit::Webhook) -> Result<CaptureOutcome, StoreError> {
        let table = Table::from_config()?;
        let webhook = webhook_from_wit(webhook);
        let expires_at = dynamodb::expires_at(webhook.received_at, table.retention_secs);
        let item = dynamodb::to_item(&WebhookItem::new(&webhook, expires_at));
        let size = dynamodb::item_size(&item);
        if size > dynamodb::MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "the webhook is {size} bytes as a DynamoDB item; an item holds at most {}",
                dynamodb::MAX_ITEM_BYTES
            )));
        }
        let status = Status::received(webhook.received_at);
        let status_item = dynamodb::to_item(&StatusItem::new(&webhook.id, &status, expires_at));
        let put = |item: &serde_dynamo::Item| {
            json!({ "Put": {
                "TableName": table.name,
                "Item": item,
                "ConditionExpression": dynamodb::NOT_EXISTS,
            }})
        };
        let request = json!({ "TransactItems": [put(&item), put(&status_item)] });
        // Two captures of one id at once can cancel each other: try again, and the loser
        // then finds the winner's items.
        for attempt in 0..3 {
            let error = match table.call("TransactWriteItems", &request) {
                Ok(_) => return Ok(CaptureOutcome::Stored(status_to_wit(&status))),
                Err(error) => error,
            };
            if error.reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                let existing = table.status(&webhook.id)?.ok_or_else(|| {
                    StoreError::Unavailable(format!("{} exists but has no status yet", webhook.id))
                })?;
                return Ok(CaptureOutcome::Duplicate(status_to_wit(&existing)));
            }
            if error.reasons.iter().any(|r| r == "TransactionConflict") && attempt < 2 {
                continue;
            }
            if error.kind == "ValidationException" && error.message.contains("size") {
                return Err(StoreError::TooLarge(error.message));
            }
            return Err(error.unavailable());
        }
        unreachable!("the last attempt returns")
    }

    fn get_webhook(id: String) -> Result<Option<wit::Webhook>, StoreError> {
        let table = Table::from_config()?;
        // Immutable once written: an eventually consistent read is enough.
        let Some(item) = table.get(&id, WEBHOOK_SK, false)? else {
            return Ok(None);
        };
        let item: WebhookItem = from_item(item)?;
        let webhook = item
            .into_webhook()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Some(webhook_to_wit(webhook)))
    }

    fn get_status(id: String) -> Result<Option<wit::Status>, StoreError> {
        Ok(Table::from_config()?
            .status(&id)?
            .as_ref()
            .map(status_to_wit))
    }

    fn list_webhooks(
        state: Option<wit::State>,
        limit: u32,
    ) -> Result<Vec<wit::Summary>, StoreError> {
        let table = Table::from_config()?;
        let names: HashMap<String, &str> = dynamodb::SUMMARY_ATTRIBUTES
            .iter()
            .enumerate()
            .map(|(i, name)| (format!("#p{i}"), *name))
            .chain([("#sk".to_owned(), "SK")])
            .collect();
        let projection: Vec<_> = (0..dynamodb::SUMMARY_ATTRIBUTES.len())
            .map(|i| format!("#p{i}"))
            .collect();
        let mut items = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut request = json!({
                "TableName": table.name,
                "FilterExpression": "#sk IN (:webhook, :status)",
                "ProjectionExpression": projection.join(", "),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":webhook": { "S": WEBHOOK_SK }, ":status": { "S": STATUS_SK },
                },
            });
            if let Some(key) = start.take() {
                request["ExclusiveStartKey"] = key;
            }
            let page = table
                .call("Scan", &request)
                .map_err(AwsError::unavailable)?;
            for item in page["Items"].as_array().cloned().unwrap_or_default() {
                items.push(
                    serde_json::from_value::<serde_dynamo::Item>(item).map_err(|e| {
                        StoreError::Unavailable(format!("an item DynamoDB sent: {e}"))
                    })?,
                );
            }
            match page.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => start = Some(key.clone()),
                _ => break,
            }
        }
        let limit = limit.min(inbox_core::capture::MAX_LIST) as usize;
        let views = dynamodb::summaries(items, state.map(state_from_wit), limit)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(views.into_iter().map(view_to_summary).collect())
    }

    fn replay(id: String) -> Result<wit::Status, StoreError> {
        let table = Table::from_config()?;
        let status = table.status(&id)?.ok_or(StoreError::NotFound)?;
        let replayed = status
            .replay(now_ms())
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let update = dynamodb::status_update(&id, status.version, &replayed);
        let request = json!({
            "TableName": table.name,
            "Key": update.key,
            "UpdateExpression": update.update,
            "ConditionExpression": update.condition,
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
        });
        match table.call("UpdateItem", &request) {
            Ok(_) => Ok(status_to_wit(&replayed)),
            Err(error) if error.kind == "ConditionalCheckFailedException" => {
                Err(StoreError::Conflict(format!(
                    "{id} changed while it was being replayed; try again"
                )))
            }
            Err(error) => Err(error.unavailable()),
        }
    }
}

/// Configuration read through `wasi:config/store`.
struct WasiConfig;

impl Config for WasiConfig {
    fn get(&self, key: &str) -> Option<String> {
        bindings::wasi::config::store::get(key).ok().flatten()
    }
}

/// The table, and how to reach and sign for it.
struct Table {
    name: String,
    region: String,
    https: bool,
    authority: String,
    credentials: Credentials,
    retention_secs: Option<u64>,
}

impl Table {
    fn from_config() -> Result<Table, StoreError> {
        let config = &WasiConfig;
        let required = |key: &str| {
            config.get(key).filter(|v| !v.is_empty()).ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "the DynamoDB store is not configured: set {}",
                    inbox_core::config::describe(key)
                ))
            })
        };
        let name = required(settings::TABLE)?;
        let region = required(settings::REGION)?;
        let endpoint = config
            .get(settings::ENDPOINT_URL)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        let (https, authority) = match endpoint.split_once("://") {
            Some(("https", rest)) => (true, rest.trim_end_matches('/').to_owned()),
            Some(("http", rest)) => (false, rest.trim_end_matches('/').to_owned()),
            _ => {
                return Err(StoreError::Unavailable(format!(
                    "aws_endpoint_url {endpoint:?} is not an http(s) URL"
                )));
            }
        };
        let session_token = secrets(config, settings::SESSION_TOKEN).into_iter().next();
        let credentials = Credentials::new(
            required(settings::ACCESS_KEY_ID)?,
            required(settings::SECRET_ACCESS_KEY)?,
            session_token,
            None,
            "spin-variables",
        );
        let retention_secs =
            settings::retention_secs(config).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Table {
            name,
            region,
            https,
            authority,
            credentials,
            retention_secs,
        })
    }

    fn get(&self, id: &str, sk: &str, consistent: bool) -> Result<Option<Value>, StoreError> {
        let request = json!({
            "TableName": self.name,
            "Key": dynamodb::key(id, sk),
            "ConsistentRead": consistent,
        });
        let answer = self
            .call("GetItem", &request)
            .map_err(AwsError::unavailable)?;
        Ok(answer.get("Item").filter(|item| !item.is_null()).cloned())
    }

    fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        self.get(id, STATUS_SK, true)?
            .map(|item| from_item::<StatusItem>(item).map(StatusItem::into_status))
            .transpose()
    }

    /// One DynamoDB API call, signed with SigV4.
    fn call(&self, target: &str, request: &Value) -> Result<Value, AwsError> {
        let body = serde_json::to_vec(request).expect("a request serialises");
        let scheme = if self.https { "https" } else { "http" };
        let uri = format!("{scheme}://{}/", self.authority);
        let target = format!("DynamoDB_20120810.{target}");
        let mut signed = http::Request::builder()
            .method("POST")
            .uri(&uri)
            .header("host", &self.authority)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", &target)
            .body(())
            .map_err(|e| AwsError::local(e.to_string()))?;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AwsError::local(e.to_string()))?
            .into();
        let headers: Vec<(&str, &str)> = signed
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            &uri,
            headers.into_iter(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| AwsError::local(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| AwsError::local(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut signed);

        // The host sets Host from the authority, as signed.
        let fields: Vec<(String, Vec<u8>)> = signed
            .headers()
            .iter()
            .filter(|(name, _)| *name != http::header::HOST)
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let (status, answer) =
            send(self.https, &self.authority, fields, &body).map_err(AwsError::local)?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(answer);
        }
        let kind = answer["__type"].as_str().unwrap_or_default();
        Err(AwsError {
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
                .filter_map(|r| r["Code"].as_str().map(str::to_owned))
                .collect(),
        })
    }
}

/// A refusal from DynamoDB (or a failure to reach it).
struct AwsError {
    kind: String,
    message: String,
    /// A cancelled transaction's reason per item (`None`, `ConditionalCheckFailed`, ...).
    reasons: Vec<String>,
}

impl AwsError {
    fn local(message: String) -> AwsError {
        AwsError {
            kind: "RequestFailed".into(),
            message,
            reasons: Vec::new(),
        }
    }

    fn unavailable(self) -> StoreError {
        StoreError::Unavailable(format!("DynamoDB: {}: {}", self.kind, self.message))
    }
}

fn from_item<T: for<'de> serde::Deserialize<'de>>(item: Value) -> Result<T, StoreError> {
    let item: serde_dynamo::Item = serde_json::from_value(item)
        .map_err(|e| StoreError::Unavailable(format!("an item DynamoDB sent: {e}")))?;
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Unavailable(format!("stored data cannot be read: {e}")))
}

/// POSTs `body` to `/` on `authority`; returns the status and the answer.
fn send(
    https: bool,
    authority: &str,
    headers: Vec<(String, Vec<u8>)>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let fields = Fields::from_list(&headers).map_err(|e| format!("invalid header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| format!("invalid {what}");
    request
        .set_method(&Method::Post)
        .map_err(|()| invalid("method"))?;
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some("/"))
        .map_err(|()| invalid("path"))?;
    let outgoing = request.body().map_err(|()| "no request body".to_owned())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let stream = outgoing
        .write()
        .map_err(|()| "no request stream".to_owned())?;
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("writing the body: {e:?}"))?;
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "the response was already taken".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| "no response body".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "no response stream".to_owned())?;
    let mut answer = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => answer.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    drop(stream);
    IncomingBody::finish(incoming);
    Ok((status, answer))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
