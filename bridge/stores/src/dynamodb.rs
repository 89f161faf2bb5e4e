//! DynamoDB natively: the one DynamoDB store ([`inbox_dynamodb`]) with the AWS SDK's own
//! HTTP client, runtime and configuration.

pub use inbox_dynamodb::*;

/// A client from the AWS SDK's own configuration: `AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` (which is how tests point it at moto).
pub async fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
}
