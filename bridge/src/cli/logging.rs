//! Logs: structured, to stderr, as JSON lines on Lambda or with `INBOX_LOG_FORMAT=json`.

use crate::terminal;

/// Starts the log. A command whose output is a report logs only warnings by default; the
/// kit's processor prints are there with `INBOX_LOG=info`.
pub fn init(report: bool) {
    let default = match report {
        true => "warn,wasmtime_wasi_http=error",
        false => "info,wasmtime=warn,cranelift=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A log line that cannot be written (the disk under the log is full) is dropped: the
    // subscriber's own report of it would go to the same stderr and panic the thread that
    // logged, a request's task or the SQLite writer.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal::colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // Lambda sends each line to CloudWatch, where JSON lines can be queried by field.
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if on_lambda || std::env::var("INBOX_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
