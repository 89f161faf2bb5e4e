//! The SDK's errors as the core reads DynamoDB's refusals.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use inbox_core::item::dynamodb::Refusal;

/// A cancelled transaction's reason code per item.
pub(crate) fn cancellation_reasons<R>(error: &SdkError<TransactWriteItemsError, R>) -> Vec<String> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// An SDK error as the core reads DynamoDB's refusals.
pub(crate) fn refusal<E, R>(error: &SdkError<E, R>, reasons: Vec<String>) -> Refusal
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(error).to_string();
    match error.code() {
        Some(kind) => Refusal {
            kind: kind.to_owned(),
            message: error.message().unwrap_or_default().to_owned(),
            reasons,
            detail,
        },
        // Not an answer from DynamoDB: it could not be reached.
        None => Refusal {
            kind: "RequestFailed".into(),
            message: detail,
            reasons,
            detail: String::new(),
        },
    }
}
