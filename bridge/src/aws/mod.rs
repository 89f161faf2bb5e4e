//! What the inbox reads and writes on AWS besides its table: the failed and dead queues
//! (SQS) and the table's stream, for the Lambda handlers and the operator's commands alike.

pub mod sqs;
pub mod stream;
