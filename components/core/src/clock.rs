//! The wall clock, read the same way by every component and host: unix milliseconds.
//! (The one ambient read the core offers; on wasm it is `wasi:clocks/wall-clock`.)

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
