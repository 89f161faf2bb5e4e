//! What a component prints (stdout and stderr), as the host's structured log: each line it
//! writes becomes one `tracing` event naming the component, so on Lambda it is a JSON line
//! like any other.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A longer line is logged up to this size and the rest of it dropped, so a guest cannot
/// grow the buffer (and no piece of a URL is logged apart from its start, unredacted).
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone, Copy)]
pub struct GuestOutput {
    pub component: &'static str,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            component: self.component,
            line: Vec::new(),
            cut: false,
        })
    }
}

struct LineLogger {
    component: &'static str,
    line: Vec<u8>,
    /// The current line ran past [`MAX_LINE`]: the rest of it is dropped.
    cut: bool,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        // A component may print a destination with its credentials.
        let text = inbox_core::redact::urls_in(text.trim_end());
        if !text.is_empty() {
            tracing::info!(target: "component", component = self.component, "{text}");
        }
        self.line.clear();
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        for &byte in bytes {
            if byte == b'\n' {
                self.emit();
                self.cut = false;
            } else if !self.cut {
                self.line.push(byte);
                if self.line.len() >= MAX_LINE {
                    self.line.extend_from_slice(" …(cut)".as_bytes());
                    self.emit();
                    self.cut = true;
                }
            }
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}
