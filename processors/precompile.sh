# Sourced by the kits' build scripts: the precompiled form of a processor (`inbox compile`),
# which a host loads in milliseconds instead of compiling it for seconds, made when an
# `inbox` executable is at hand (INBOX_BIN, on PATH, or the workspace's build), unless
# INBOX_PRECOMPILE=0.

precompile_for_this_machine() {
    local wasm="$1" inbox="${INBOX_BIN:-}"
    if [ "${INBOX_PRECOMPILE:-1}" = 0 ]; then
        return
    fi
    if [ -z "$inbox" ]; then
        inbox="$(command -v inbox || true)"
    fi
    if [ -z "$inbox" ]; then
        inbox="${CARGO_TARGET_DIR:-$HOME/.cache/webhook-inbox/target}/release/inbox"
    fi
    if [ -x "$inbox" ]; then
        "$inbox" compile "$wasm" --out-dir "$(dirname "$wasm")"
    else
        echo "no inbox executable to precompile it with; later: inbox compile $wasm --out-dir $(dirname "$wasm")"
    fi
}
