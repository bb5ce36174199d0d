-- wrk script for AWS JSON 1.1 (KMS) load, driven by environment variables:
--
--   KLB_TARGET            X-Amz-Target value, e.g. "TrentService.Encrypt"
--   KLB_BODY_FILE         file holding one JSON request body (static request;
--                         fastest mode, wrk pre-formats the request once)
--   KLB_BODIES_FILE       file holding one JSON body per line; each thread
--                         cycles through them (used for the N-key sample run)
--   KLB_REQUESTS_FILE     file holding whole requests (pre-signed SigV4 ones);
--                         each thread cycles through them. One request is
--                         zero or more lines "H <Name>: <value>" (its headers,
--                         e.g. Host, X-Amz-Date, Authorization; they replace
--                         the defaults of the same name) and then one line
--                         "B <body>" that ends it
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
local requests_file = os.getenv("KLB_REQUESTS_FILE") or ""
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
  elseif requests_file ~= "" then
    requests_cache = {}
    local headers = {}
    for line in io.lines(requests_file) do
      local kind, rest = line:sub(1, 2), line:sub(3)
      if kind == "H " then
        local name, value = rest:match("^([^:]+):%s?(.*)$")
        assert(name, "bad header line in " .. requests_file .. ": " .. line)
        headers[name] = value
      elseif kind == "B " then
        local h = {}
        for k, v in pairs(wrk.headers) do h[k] = v end
        for k, v in pairs(headers) do h[k] = v end
        h["Content-Length"] = nil -- wrk.format sets it from the body
        requests_cache[#requests_cache + 1] = wrk.format("POST", "/", h, rest)
        headers = {}
      end
    end
    assert(#requests_cache > 0, "no request in " .. requests_file)
  end
  if requests_cache then
    -- start each thread at a different place in the list
    cursor = ((thread_index or 1) - 1) * 7919 % #requests_cache
  end
end

-- Only define request()/response() when needed: without request() wrk sends
-- one pre-formatted static request, and without response() it does not parse
-- response headers/bodies in Lua (both matter for throughput).
if bodies_file ~= "" or requests_file ~= "" then
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
