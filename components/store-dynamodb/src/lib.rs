//! `webhooks:inbox/store` on DynamoDB, for Spin in the cloud: the DynamoDB JSON API over
//! `wasi:http/outgoing-handler`, signed with SigV4 (aws-sigv4). It writes the items,
//! conditions and status updates of `inbox_core::item::dynamodb`, as the native DynamoDB
//! store does, so the table's stream feeds the Lambda bridge as usual.
//!
//! Settings (Spin variables, or the native host's `INBOX_*`): `dynamodb_table`,
//! `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, optionally
//! `aws_session_token`, `aws_endpoint_url` and `retention_days` (30; 0 keeps forever).

mod bindings {
    inbox_guest::with_shared_interfaces!("dynamodb-store", "../../wit");
}

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bindings::exports::webhooks::inbox::store::{
    CaptureOutcome, Existing, Guest, StoreError as WitError,
};
use bindings::webhooks::inbox::types as wit;
use inbox_core::clock::now_ms;
use inbox_core::config::{Config, secrets};
use inbox_core::item::dynamodb::{
    self, CaptureRefused, Refusal, SwapRefused, due_index, json, settings,
};
use inbox_core::item::{ItemError, STATUS_SK, WEBHOOK_SK};
use inbox_core::store::{Resend, StoreError};
use inbox_core::{State, Status};
use inbox_guest::config::WasiConfig;
use inbox_guest::http;
use inbox_guest::wasi::http::types::Method;
use serde_dynamo::Item;
use serde_json::Value;

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);
inbox_core::store_error_conversion!(bindings::exports::webhooks::inbox::store);

struct DynamoStore;

bindings::export!(DynamoStore with_types_in bindings);

impl Guest for DynamoStore {
    fn capture(
        webhook: wit::Webhook,
        refuse_replayed_body: bool,
    ) -> Result<CaptureOutcome, WitError> {
        capture(&webhook_from_wit(webhook), refuse_replayed_body).map_err(store_error_to_wit)
    }

    fn get_webhook(id: String) -> Result<Option<wit::Webhook>, WitError> {
        let get = || {
            // Immutable once written: an eventually consistent read is enough.
            let item = Table::from_config()?.get(&dynamodb::key(&id, WEBHOOK_SK), false)?;
            item.map(dynamodb::read_webhook).transpose()
        };
        Ok(get().map_err(store_error_to_wit)?.map(webhook_to_wit))
    }

    fn get_details(id: String) -> Result<Option<wit::Details>, WitError> {
        let details = || {
            let table = Table::from_config()?;
            let projection = dynamodb::details_projection();
            let pk = inbox_core::item::pk(&id);
            let items = table.pages("Query", |start| {
                json::partition(&table.name, &pk, &projection, start)
            })?;
            dynamodb::details(items)
        };
        Ok(details().map_err(store_error_to_wit)?.map(details_to_wit))
    }

    fn list_webhooks(query: wit::ListQuery) -> Result<wit::Page, WitError> {
        let query = query_from_wit(query);
        let list = || {
            let items = Table::from_config()?.summary_items(query.state)?;
            dynamodb::page(items, &query).map_err(corrupt)
        };
        Ok(page_to_wit(list().map_err(store_error_to_wit)?))
    }

    fn count_webhooks(filter: wit::Filter) -> Result<Vec<wit::Count>, WitError> {
        let filter = filter_from_wit(filter);
        let count = || {
            let items = Table::from_config()?.summary_items(None)?;
            dynamodb::counts(items, &filter).map_err(corrupt)
        };
        Ok(counts_to_wit(count().map_err(store_error_to_wit)?))
    }

    fn replay(id: String) -> Result<wit::Status, WitError> {
        let replay = || {
            let table = Table::from_config()?;
            let resend = Resend::replay(&id, table.status(&id)?, now_ms())?;
            let update =
                dynamodb::status_update(&id, resend.expected_version, &resend.transition.status);
            let swapped = match table.call("UpdateItem", &json::update(&table.name, &update)) {
                Ok(_) => true,
                Err(refusal) => match dynamodb::swap_refused(&refusal) {
                    SwapRefused::Lost => false,
                    SwapRefused::Failed(error) => return Err(error),
                },
            };
            resend.outcome(&id, swapped)
        };
        replay()
            .map(|status| status_to_wit(&status))
            .map_err(store_error_to_wit)
    }
}

fn capture(
    webhook: &inbox_core::Webhook,
    refuse_replayed_body: bool,
) -> Result<CaptureOutcome, StoreError> {
    let table = Table::from_config()?;
    let plan = dynamodb::capture(webhook, table.retention_secs, refuse_replayed_body)?;
    let request = json::capture(&table.name, &plan);
    let mut attempt = 0;
    loop {
        let refusal = match table.call("TransactWriteItems", &request) {
            Ok(_) => return Ok(CaptureOutcome::Stored(status_to_wit(&plan.status))),
            Err(refusal) => refusal,
        };
        match dynamodb::capture_refused(&refusal, attempt) {
            CaptureRefused::Duplicate => return table.existing(&webhook.id),
            CaptureRefused::BodySeen => {
                let key = plan
                    .body
                    .as_ref()
                    .expect("only a guarded capture sees a body");
                let body = table.get(key, true)?.ok_or_else(|| {
                    StoreError::Unavailable("a body digest cannot be read yet".into())
                })?;
                return table.existing(&dynamodb::read_body(body)?);
            }
            CaptureRefused::TryAgainAfter(wait) => std::thread::sleep(wait),
            CaptureRefused::Failed(error) => return Err(error),
        }
        attempt += 1;
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

    fn get(&self, key: &Item, consistent: bool) -> Result<Option<Item>, StoreError> {
        let answer = self
            .call("GetItem", &json::get(&self.name, key, consistent))
            .map_err(|refusal| refusal.unavailable())?;
        json::item(answer)
    }

    fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        self.get(&dynamodb::key(id, STATUS_SK), true)?
            .map(dynamodb::read_status)
            .transpose()
    }

    /// A capture's answer when the webhook `id` is already stored.
    fn existing(&self, id: &str) -> Result<CaptureOutcome, StoreError> {
        let status = self
            .status(id)?
            .ok_or_else(|| StoreError::Unavailable(format!("{id} exists but has no status yet")))?;
        Ok(CaptureOutcome::Duplicate(Existing {
            id: id.to_owned(),
            status: status_to_wit(&status),
        }))
    }

    /// The `WEBHOOK` and `STATUS` items a list reads (without payloads): for a state in
    /// flight, the few the `due` index holds and their webhook items; else a scan.
    fn summary_items(&self, state: Option<State>) -> Result<Vec<Item>, StoreError> {
        match state {
            Some(state) if state.in_flight() => {
                let (mut items, keys) =
                    due_index::latest(self.in_flight()?, state).map_err(corrupt)?;
                items.extend(self.batch_get(keys, &dynamodb::summary_projection())?);
                Ok(items)
            }
            _ => self.scan(&dynamodb::summary_scan(&[WEBHOOK_SK, STATUS_SK])),
        }
    }

    /// Every item the scan finds, page after page.
    fn scan(&self, scan: &dynamodb::Scan) -> Result<Vec<Item>, StoreError> {
        self.pages("Scan", |start| json::scan(&self.name, scan, start))
    }

    /// Every status item of the `due` index, partition after partition, page after page.
    fn in_flight(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for query in due_index::queries(None) {
            items.extend(self.pages("Query", |start| {
                json::due_query(&self.name, &query, None, start)
            })?);
        }
        Ok(items)
    }

    /// Every item of a `Scan` or `Query` (`target`), page after page, each `request`ed from
    /// where the last one ended.
    fn pages(
        &self,
        target: &str,
        request: impl Fn(Option<Value>) -> Value,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let answer = self
                .call(target, &request(start.take()))
                .map_err(|refusal| refusal.unavailable())?;
            let (page, next) = json::page(answer)?;
            items.extend(page);
            match next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// The items at `keys`, [`dynamodb::BATCH_GET_KEYS`] a call; a key not stored is left out.
    fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: &dynamodb::Projection,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut left: Vec<Value> = keys
            .iter()
            .map(|key| serde_json::to_value(key).expect("a key serialises"))
            .collect();
        let mut rounds = 0;
        let mut backoff = std::time::Duration::from_millis(50);
        while !left.is_empty() {
            let rest = left.split_off(left.len().min(dynamodb::BATCH_GET_KEYS));
            let request = json::batch_get(&self.name, &left, projection);
            let answer = self
                .call("BatchGetItem", &request)
                .map_err(|refusal| refusal.unavailable())?;
            let (got, unprocessed) = json::batch_got(&self.name, answer)?;
            if !got.is_empty() {
                rounds = 0;
            }
            items.extend(got);
            // Keys DynamoDB had no capacity for come back unprocessed: read them again, after a pause.
            if !unprocessed.is_empty() {
                rounds += 1;
                if rounds > dynamodb::BATCH_GET_ROUNDS {
                    return Err(StoreError::Unavailable(
                        "DynamoDB keeps leaving keys of a batch read unprocessed".into(),
                    ));
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            left = unprocessed;
            left.extend(rest);
        }
        Ok(items)
    }

    /// One DynamoDB API call, signed with SigV4.
    fn call(&self, target: &str, request: &Value) -> Result<Value, Refusal> {
        let local = |message: String| Refusal {
            kind: "RequestFailed".into(),
            message,
            ..Refusal::default()
        };
        let body = serde_json::to_vec(request).expect("a request serialises");
        let scheme = if self.https { "https" } else { "http" };
        let uri = format!("{scheme}://{}/", self.authority);
        let target = format!("DynamoDB_20120810.{target}");
        let mut signed = ::http::Request::builder()
            .method("POST")
            .uri(&uri)
            .header("host", &self.authority)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", &target)
            .body(())
            .map_err(|e| local(e.to_string()))?;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| local(e.to_string()))?
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
        .map_err(|e| local(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| local(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut signed);

        // The host sets Host from the authority, as signed.
        let request = http::Request {
            method: Method::Post,
            https: self.https,
            authority: &self.authority,
            path_with_query: "/",
            headers: signed
                .headers()
                .iter()
                .filter(|(name, _)| *name != ::http::header::HOST)
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect(),
            body: &body,
            timeout: None,
        };
        let answer = http::send(&request, usize::MAX).map_err(local)?;
        let body = answer.body.map_err(local)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if answer.status == 200 {
            Ok(body)
        } else {
            Err(json::refusal(&body))
        }
    }
}

fn corrupt(error: ItemError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}
