//! What the inbox reads and writes on AWS besides its table: the failed and dead queues
//! (SQS) and the table's stream, for the Lambda handlers and the operator's commands alike,
//! and the secrets a function reads from SSM Parameter Store when it starts.

pub mod sqs;
pub mod ssm;
pub mod stream;
