//! The engine's settings, which every engine of every host is made with, and which a
//! precompiled component must have been compiled with (`crate::precompiled`).

/// What every engine is made with: deadlines by epoch interruption. A precompiled
/// component must have been compiled with the same settings (wasmtime refuses it
/// otherwise), so `inbox compile` starts from these too.
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    // Instances (their memories, tables and async stacks) come from slots reserved once and
    // reused, instead of being mapped and unmapped for every request: the unmapping's TLB
    // shootdowns across cores were the largest cost of a capture. The pool is sized far
    // above what the hosts run at once (capture requests and attempts are bounded by
    // INBOX_MAX_CONCURRENT_REQUESTS and INBOX_WORKER_CONCURRENCY); its reservations are
    // address space, touched only as instances use them.
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 16)
        .total_memories(POOLED_INSTANCES * 4)
        .total_tables(POOLED_INSTANCES * 4)
        .total_stacks(POOLED_INSTANCES)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(100_000)
        // A slot given back is reset by zeroing what an instance typically touches rather
        // than by returning it to the kernel, and what is returned goes back in batches:
        // each `madvise` costs a TLB flush on every core.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .async_stack_keep_resident(KEEP_RESIDENT / 4)
        .decommit_batch_size(64)
        .pagemap_scan(pagemap_scan(
            &std::fs::read_to_string("/proc/swaps").unwrap_or_default(),
        ));
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Where the kernel can say which pages an instance touched (`PAGEMAP_SCAN`, Linux 6.7),
/// only those are reset, and a slot's untouched pages are not written at all; elsewhere the
/// kept-resident region is reset whole. Measured with scripts/bench-ab: capture from 0.72 to
/// 0.78 of the native baseline, and a third less resident memory. But the scan finds only
/// pages in memory: one an instance wrote that was swapped out would be neither reset nor
/// returned, and the next instance in the slot (a user's processor) would read it. So only
/// on a host without swap (`swaps`, the text of /proc/swaps: a header line and one line a
/// device), as Lambda is.
fn pagemap_scan(swaps: &str) -> wasmtime::Enabled {
    match swaps.lines().count() {
        1 => wasmtime::Enabled::Auto,
        _ => wasmtime::Enabled::No,
    }
}

/// Component instances the pool holds at once: the hosts refuse to start with settings
/// that could run more ([`fits_the_pool`]).
pub const POOLED_INSTANCES: u32 = 512;

/// Whether `instances` at once (capture requests and processing attempts together) fit the
/// instance pool: past it, instantiation fails, which a processor would be blamed for.
pub fn fits_the_pool(instances: usize) -> anyhow::Result<()> {
    // Half the pool: a capture that calls the app itself (the demo route) holds two.
    if instances > POOLED_INSTANCES as usize / 2 {
        anyhow::bail!(
            "{instances} component instances at once (INBOX_MAX_CONCURRENT_REQUESTS plus INBOX_WORKER_CONCURRENCY) is more than this host runs: at most {}",
            POOLED_INSTANCES / 2
        );
    }
    Ok(())
}
/// Bytes of each memory slot kept resident between instances.
const KEEP_RESIDENT: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_scanned_only_without_swap() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert_eq!(pagemap_scan(header), wasmtime::Enabled::Auto);
        let with_swap = format!("{header}/swapfile   file   1048572   0   -2\n");
        assert_eq!(pagemap_scan(&with_swap), wasmtime::Enabled::No);
        assert_eq!(
            pagemap_scan(""),
            wasmtime::Enabled::No,
            "unreadable: assume swap"
        );
    }

    #[test]
    fn the_hosts_run_at_most_half_the_pool_at_once() {
        let half = POOLED_INSTANCES as usize / 2;
        assert!(fits_the_pool(half).is_ok());
        let error = fits_the_pool(half + 1).unwrap_err().to_string();
        assert!(error.contains("INBOX_MAX_CONCURRENT_REQUESTS"), "{error}");
    }
}
