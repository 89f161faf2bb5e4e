# What scripts/bench and scripts/bench-ab share, sourced with $seconds set: wrk (from
# Debian's packages if absent), the builds, a scratch directory, enough unique signed
# deliveries, and start/run for one server and one wrk run.
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
build_components
cargo build --locked --release -p inbox-bridge --bin inbox --example native_inbox

dir=$(mktemp -d)
server=""
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
export INBOX_BIGCOMMERCE_SECRET=bench-secret INBOX_LOG=warn
# Enough unique deliveries for the fastest run: a duplicate would be answered 200 unwritten.
python3 scripts/bench.d/deliveries.py bench-secret $((seconds * 40000)) "$$" > "$dir/deliveries"
export INBOX_BENCH_REQUESTS="$dir/deliveries"

start() {  # start NAME COMMAND...: runs it on a fresh database, sets $server and $url
    local name="$1"; shift
    rm -f "$dir"/*.db* "$dir/$name.out"
    "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
    server=$!
    until grep -q listening "$dir/$name.out" 2>/dev/null; do sleep 0.05; done
    url=$(sed -n 's/listening on //p' "$dir/$name.out")
}

run() {  # run CONNECTIONS: one wrk run against $url, its RESULT line
    local connections="$1" threads=2
    [ "$connections" -lt 2 ] && threads=1
    INBOX_BENCH_THREADS=$threads wrk -t"$threads" -c"$connections" -d"${seconds}s" \
        -s scripts/bench.d/capture.lua "$url" | grep '^RESULT'
}

