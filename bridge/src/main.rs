//! `inbox`: the command line of [`inbox_bridge::cli`].

use anyhow::Result;
use inbox_bridge::cli::{Cli, logging};

fn main() -> Result<()> {
    let command = Cli::parse_command()?;
    logging::init(command.reports());
    // A file grown past the process's size limit (RLIMIT_FSIZE, like a full disk) would
    // kill the host by SIGXFSZ mid-transaction; ignored, the write fails with EFBIG and the
    // store answers 503 until there is room again, as it does for a full disk.
    // SAFETY: SIG_IGN installs no handler code, and nothing in the process relies on
    // SIGXFSZ.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(command.run())
}
