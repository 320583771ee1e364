-- wrk script for the ai-router benchmark: POST a JSON body, unique per request, and report as JSON.
--
-- Environment (set by bench/load.py):
--   BENCH_BODY  file holding the body template; every "@N@" in it becomes a per-request counter,
--               so response caches never hit (a benchmark of the pipeline, not of the cache)
--   BENCH_PATH  request path (default /v1/chat/completions)
--   BENCH_AUTH  optional bearer key sent as "Authorization: Bearer ..."
-- At the end it prints one line "BENCH_JSON {...}" with counts, errors and latency percentiles (µs).

local threads = {}
local counter = 0
local prefix, suffix
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local headers = { ["Content-Type"] = "application/json" }

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  headers["Authorization"] = "Bearer " .. auth
end

local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY not set"), "rb"))
local template = f:read("*a")
f:close()
local at = string.find(template, "@N@", 1, true)
if at then
  prefix = string.sub(template, 1, at - 1)
  suffix = string.sub(template, at + 3)
end

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function request()
  if not prefix then
    return wrk.format("POST", path, headers, template)
  end
  counter = counter + 1
  return wrk.format("POST", path, headers, prefix .. (tid or 0) .. "-" .. counter .. suffix)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
