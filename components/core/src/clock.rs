//! The wall clock, read the same way by every component and host: unix milliseconds.
//! (The one ambient read the core offers; on wasm it is `wasi:clocks/wall-clock`.)

/// How long from `now` until `at` (both unix milliseconds): nothing once it has passed.
pub fn until(at: i64, now: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
}

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
