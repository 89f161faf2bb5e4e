-- wrk: unique signed BigCommerce deliveries, pre-signed in the file INBOX_BENCH_REQUESTS
-- names (a line each: signature TAB body), shared out among wrk's threads so that no two
-- requests carry the same delivery (INBOX_BENCH_THREADS: how many threads wrk runs).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local count = tonumber(os.getenv("INBOX_BENCH_THREADS"))
  deliveries = {}
  local n = 0
  for line in io.lines(os.getenv("INBOX_BENCH_REQUESTS")) do
    n = n + 1
    if n % count == id - 1 then
      local signature, body = line:match("^([^\t]+)\t(.*)$")
      table.insert(deliveries, { signature, body })
    end
  end
  sent = 0
  captured = 0
end

function response(status, headers, body)
  if status == 202 then
    captured = captured + 1
    wrk.thread:set("captured", captured)
  end
end

function request()
  sent = sent + 1
  local delivery = deliveries[(sent - 1) % #deliveries + 1]
  return wrk.format("POST", "/api/webhooks/bigcommerce",
    { ["Content-Type"] = "application/json", ["Signature"] = delivery[1] }, delivery[2])
end

-- rps counts the captures (202) only: a duplicate (200) or a refusal would not be one.
function done(summary, latency, requests)
  local captures = 0
  for _, thread in ipairs(threads) do
    captures = captures + (thread:get("captured") or 0)
  end
  io.write(string.format(
    "RESULT requests=%d captures=%d seconds=%.3f rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests, captures, summary.duration / 1e6, captures / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
