//! `webhooks:inbox/store` on DynamoDB, for Spin in the cloud: the one DynamoDB store
//! ([`inbox_dynamodb`], which the native bridge runs too) with the AWS SDK's `wasi:http`
//! client, so the table and its stream are the same whichever host wrote them.
//!
//! Settings (Spin variables, or the native host's `INBOX_*`): `dynamodb_table`,
//! `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, optionally
//! `aws_session_token`, `aws_endpoint_url`, `payload_bucket` (S3, for payloads too large
//! for their item; without it they are refused), `retention_days` (30 from completion; 0
//! keeps forever) and `replay_guard_days` (three times the retention).

mod bindings {
    inbox_guest::with_shared_interfaces!("dynamodb-store", "../../wit");
}

use std::future::Future;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_wasm::wasi::{WasiHttpClientBuilder, WasiSleep};
use bindings::exports::webhooks::inbox::store::{
    CaptureOutcome, Destination as WitDestination, Existing, Guest, StoreError as WitError,
};
use bindings::webhooks::inbox::types as wit;
use inbox_core::clock::now_ms;
use inbox_core::config::{Config, describe};
use inbox_core::item::dynamodb::settings;
use inbox_core::store::{self, Captured, StoreError, WebhookStore};
use inbox_dynamodb::{DynamoStore, PayloadBucket};
use inbox_guest::config::WasiConfig;

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);
inbox_core::store_error_conversion!(bindings::exports::webhooks::inbox::store);
inbox_core::destination_conversions!(bindings::exports::webhooks::inbox::store);

struct Component;

bindings::export!(Component with_types_in bindings);

impl Guest for Component {
    fn capture(
        webhook: wit::Webhook,
        refuse_replayed_body: bool,
    ) -> Result<CaptureOutcome, WitError> {
        let webhook = webhook_from_wit(webhook);
        let captured =
            run(|store| async move { store.capture(webhook, refuse_replayed_body).await })?;
        Ok(match captured {
            Captured::Stored(status) => CaptureOutcome::Stored(status_to_wit(&status)),
            Captured::Duplicate { id, status } => CaptureOutcome::Duplicate(Existing {
                id,
                status: status_to_wit(&status),
            }),
        })
    }

    fn get_webhook(id: String) -> Result<Option<wit::Webhook>, WitError> {
        let webhook = run(|store| async move { store.webhook(&id).await })?;
        Ok(webhook.map(webhook_to_wit))
    }

    fn get_details(id: String) -> Result<Option<wit::Details>, WitError> {
        let details = run(|store| async move { store.details(&id).await })?;
        Ok(details.map(details_to_wit))
    }

    fn list_webhooks(query: wit::ListQuery) -> Result<wit::Page, WitError> {
        let query = query_from_wit(query);
        let page = run(|store| async move { store.list(&query).await })?;
        Ok(page_to_wit(page))
    }

    fn count_webhooks(filter: wit::Filter) -> Result<Vec<wit::Count>, WitError> {
        let filter = filter_from_wit(filter);
        let counts = run(|store| async move { store.counts(&filter).await })?;
        Ok(counts_to_wit(counts))
    }

    fn replay(id: String) -> Result<wit::Status, WitError> {
        let status = run(|store| async move { store::replay(&store, &id, now_ms()).await })?;
        Ok(status_to_wit(&status))
    }

    fn list_destinations() -> Result<Vec<WitDestination>, WitError> {
        let views = run(|store| async move { store::destination_views(&store).await })?;
        Ok(views.into_iter().map(destination_to_wit).collect())
    }

    fn pause_destination(name: String, paused: bool) -> Result<WitDestination, WitError> {
        let view =
            run(|store| async move { store::set_paused(&store, &name, paused, now_ms()).await })?;
        Ok(destination_to_wit(view))
    }
}

/// Runs one call of the store to its end: the component's exports are synchronous, and
/// `wstd`'s reactor drives the SDK's `wasi:http` requests and its backoff timers.
fn run<T, F>(call: impl FnOnce(DynamoStore) -> F) -> Result<T, WitError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let store = from_config(&WasiConfig).map_err(store_error_to_wit)?;
    wstd::runtime::block_on(call(store)).map_err(store_error_to_wit)
}

/// The store the settings name, reached with the credentials they give.
fn from_config(config: &dyn Config) -> Result<DynamoStore, StoreError> {
    // Trimmed: a variable pasted with a newline would otherwise fail every signature.
    let setting = |key: &str| {
        let value = config.get(key)?;
        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
    };
    let required = |key: &str| {
        setting(key).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "the DynamoDB store is not configured: set {}",
                describe(key)
            ))
        })
    };
    let table = required(settings::TABLE)?;
    let credentials = Credentials::new(
        required(settings::ACCESS_KEY_ID)?,
        required(settings::SECRET_ACCESS_KEY)?,
        setting(settings::SESSION_TOKEN),
        None,
        "spin-variables",
    );
    let region = Region::new(required(settings::REGION)?);
    let endpoint = setting(settings::ENDPOINT_URL);
    if let Some(endpoint) = &endpoint
        && !endpoint.starts_with("http://")
        && !endpoint.starts_with("https://")
    {
        return Err(StoreError::Unavailable(format!(
            "{} is not an http(s) URL",
            describe(settings::ENDPOINT_URL)
        )));
    }
    let mut client = aws_sdk_dynamodb::Config::builder()
        .region(region.clone())
        .credentials_provider(credentials.clone())
        .http_client(WasiHttpClientBuilder::new().build())
        .sleep_impl(WasiSleep);
    client.set_endpoint_url(endpoint.clone());
    let retention = inbox_dynamodb::Retention::from_config(config)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(client.build()),
        table,
        retention,
    );
    let Some(bucket) = setting(settings::PAYLOAD_BUCKET) else {
        return Ok(store);
    };
    // The same SDK signs S3's requests (SigV4) and sends them over wasi:http. An endpoint
    // of its own (moto, MinIO) names buckets in the path, not the host.
    let mut s3 = aws_sdk_s3::Config::builder()
        .region(region)
        .credentials_provider(credentials)
        .http_client(WasiHttpClientBuilder::new().build())
        .sleep_impl(WasiSleep)
        .force_path_style(endpoint.is_some());
    s3.set_endpoint_url(endpoint);
    Ok(store.with_payloads(PayloadBucket::new(
        aws_sdk_s3::Client::from_conf(s3.build()),
        bucket,
    )))
}
