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
    cargo build --locked --release --target wasm32-wasip2 -p inbox-capture -p inbox-processor -p inbox-store-sqlite -p inbox-store-dynamodb "$@"
}

# The processor kits (processors/), each built by its own script with its pinned tool, into
# $CARGO_TARGET_DIR/processors/<language>.wasm, where the tests find them; not precompiled
# (the tests precompile what they load precompiled), and no stale .cwasm left beside.
build_processor_kits() {
    local language
    for language in python javascript; do
        rm -f "$CARGO_TARGET_DIR/processors/$language.cwasm"
        INBOX_PRECOMPILE=0 "processors/$language/build" "$CARGO_TARGET_DIR/processors/$language.wasm"
    done
}

# Python tools in project-local venvs, pinned. moto and aws-sam-cli pin different boto3
# versions, so SAM gets a venv of its own.
MOTO_VERSION=5.2.5
MOTO_EXTRAS=server,dynamodb,dynamodbstreams,sqs,ssm,s3
CARGO_LAMBDA_VERSION=1.9.2
SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
TOOLS_DIR="${INBOX_TOOLS_DIR:-$PWD/.venv}"

ensure_aws_tools() {
    local venv="$TOOLS_DIR/aws"
    if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/cargo-lambda" ] \
        || ! grep -qxF "$MOTO_VERSION[$MOTO_EXTRAS] $CARGO_LAMBDA_VERSION" "$venv/.pinned" 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "moto[$MOTO_EXTRAS]==$MOTO_VERSION"
        # Only the cargo-lambda binary: its zig dependency is for cross-compiling.
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
            "cargo-lambda==$CARGO_LAMBDA_VERSION"
        echo "$MOTO_VERSION[$MOTO_EXTRAS] $CARGO_LAMBDA_VERSION" > "$venv/.pinned"
    fi
    export INBOX_MOTO_SERVER="$venv/bin/moto_server"
    export INBOX_CARGO_LAMBDA="$venv/bin/cargo-lambda"
}

# The console's browser test: Playwright for Python (pinned, in its own venv) driving
# Debian's chromium, installed with apt when missing (Playwright's own browser downloads
# are not used).
PLAYWRIGHT_VERSION=1.65.2

ensure_console_tools() {
    local venv="$TOOLS_DIR/console"
    if [ ! -x "$venv/bin/python" ] || ! grep -qx "$PLAYWRIGHT_VERSION" "$venv/.pinned" 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
        echo "$PLAYWRIGHT_VERSION" > "$venv/.pinned"
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "installing Debian's chromium for the console test" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core >/dev/null
    fi
    export INBOX_CONSOLE_PYTHON="$venv/bin/python"
    INBOX_CHROMIUM="$(command -v chromium)"
    export INBOX_CHROMIUM
}

ensure_sam_tools() {
    local venv="$TOOLS_DIR/sam"
    if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/cfn-lint" ] \
        || ! grep -qx "$SAM_VERSION $CFN_LINT_VERSION" "$venv/.pinned" 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION"
        echo "$SAM_VERSION $CFN_LINT_VERSION" > "$venv/.pinned"
    fi
    export INBOX_SAM="$venv/bin/sam"
    export INBOX_CFN_LINT="$venv/bin/cfn-lint"
}
