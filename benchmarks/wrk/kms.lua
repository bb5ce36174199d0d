-- wrk script for AWS JSON 1.1 (KMS) load, driven by environment variables:
--
--   KLB_TARGET            X-Amz-Target value, e.g. "TrentService.Encrypt"
--   KLB_BODY_FILE         file holding one JSON request body (static request;
--                         fastest mode, wrk pre-formats the request once)
--   KLB_BODIES_FILE       file holding one JSON body per line; each thread
--                         cycles through them (used for the N-key sample run)
--   KLB_QUOTA_PER_THREAD  if > 0, each thread stops after that many HTTP 200
--                         responses (used to create exactly-enough keys)
--   KLB_DELAY_MS          if > 0, each connection waits that many milliseconds
--                         after a response before its next request (a paced load)
--   KLB_DONE_DIR          with a quota: each thread touches
--                         <dir>/thread-<n>.done when it reaches its quota, so
--                         the caller can end the run early with SIGINT
--
-- done() prints one line "KLBENCH_JSON {...}" with the run's figures
-- (latencies in microseconds) for benchmarks/http_bench.py to parse.

local target = os.getenv("KLB_TARGET") or "TrentService.Encrypt"
local body_file = os.getenv("KLB_BODY_FILE") or ""
local bodies_file = os.getenv("KLB_BODIES_FILE") or ""
local done_dir = os.getenv("KLB_DONE_DIR") or ""
quota = tonumber(os.getenv("KLB_QUOTA_PER_THREAD") or "0") or 0
local delay_ms = tonumber(os.getenv("KLB_DELAY_MS") or "0") or 0
ok = 0

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

wrk.method = "POST"
wrk.path = "/"
wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
wrk.headers["X-Amz-Target"] = target
if body_file ~= "" then
  wrk.body = read_all(body_file)
else
  wrk.body = "{}"
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  table.insert(threads, thread)
end

local requests_cache = nil
local cursor = 0

function init(args)
  if bodies_file ~= "" then
    requests_cache = {}
    for line in io.lines(bodies_file) do
      if #line > 0 then
        requests_cache[#requests_cache + 1] = wrk.format("POST", "/", nil, line)
      end
    end
    -- start each thread at a different place in the list
    cursor = ((thread_index or 1) - 1) * 7919 % #requests_cache
  end
end

-- Only define request()/response() when needed: without request() wrk sends
-- one pre-formatted static request, and without response() it does not parse
-- response headers/bodies in Lua (both matter for throughput).
if bodies_file ~= "" then
  function request()
    cursor = cursor % #requests_cache + 1
    return requests_cache[cursor]
  end
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

if quota > 0 then
  function response(status, headers, body)
    if status == 200 then
      ok = ok + 1
      if ok >= quota then
        if done_dir ~= "" then
          local f = io.open(done_dir .. "/thread-" .. tostring(thread_index) .. ".done", "w")
          if f then f:write(tostring(ok)) f:close() end
        end
        wrk.thread:stop()
      end
    end
  end
end

function done(summary, latency, requests)
  local ok_total = 0
  for _, t in ipairs(threads) do
    ok_total = ok_total + (tonumber(t:get("ok")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'KLBENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%.1f,"mean":%.1f,"max":%.1f,"stdev":%.1f,' ..
    '"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f},"ok_counted":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50.0), latency:percentile(90.0),
    latency:percentile(99.0), latency:percentile(99.9),
    ok_total))
end
