# Sourced by the other scripts: one cargo target directory outside the clone, so CI and
# repeated runs reuse what was already built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/webhook-inbox/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2
    fi
}

# Builds the wasm components, each once, into $CARGO_TARGET_DIR/wasm32-wasip2/release.
build_components() {
    ensure_wasm_target
    cargo build --locked --release --target wasm32-wasip2 -p inbox-capture -p inbox-processor "$@"
}
