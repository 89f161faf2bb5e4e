//! DynamoDB natively: the one DynamoDB store ([`inbox_dynamodb`]) with the AWS SDK's own
//! HTTP client, runtime and configuration.

use inbox_core::config::Config;
use inbox_core::item::dynamodb::settings;
pub use inbox_dynamodb::*;

/// The store on `table`, from the AWS SDK's own configuration (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL`, which is how tests point it at moto), keeping payloads too large
/// for their item in the bucket `INBOX_PAYLOAD_BUCKET` names, if it is set.
pub async fn open(config: &dyn Config, table: &str, retention: Retention) -> DynamoStore {
    let aws = aws_config::load_from_env().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table, retention);
    let bucket = config
        .get(settings::PAYLOAD_BUCKET)
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty());
    match bucket {
        Some(bucket) => {
            // An endpoint of its own (moto, MinIO) names buckets in the path, not the host.
            let own_endpoint =
                aws.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            let s3 = aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(own_endpoint)
                .build();
            store.with_payloads(PayloadBucket::new(
                aws_sdk_s3::Client::from_conf(s3),
                bucket,
            ))
        }
        None => store,
    }
}
