//! `inbox`: the command line of [`inbox_bridge::cli`].

use anyhow::Result;
use inbox_bridge::cli::{Cli, logging};

fn main() -> Result<()> {
    // A body is up to 25 MB, held briefly by whichever thread captures or attempts it.
    // glibc's threshold for giving such a block its own mapping rises as they are freed,
    // after which each thread's arena keeps the freed blocks: 16 deliveries of 24 MB at
    // once peaked at 1.8 GB that way, 1.0 GB with a fixed threshold (BENCHMARKS.md).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; it only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20)
    };
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
