-- wrk script: device listings (GET /api/v1/devices?QUERY) with a viewer token.
--
--   EG_TOKEN=egt_... EG_QUERY='user=u{u}@example.com' [EG_USERS=100000]
--   [EG_DEVICES=1000000] [EG_PREFIX=BENCH]
--   wrk -t1 -c1 -d10s -s bench/core/list.lua https://127.0.0.1:PORT
--
-- In EG_QUERY, {u} becomes a random user number, {d} a random device
-- number (for after= cursors) and {now-1d}/{now-7d} milliseconds since the
-- epoch one or seven days before the run started. done() prints one line of
-- JSON for bench/core/run.sh.
local token = os.getenv("EG_TOKEN") or ""
local query = os.getenv("EG_QUERY") or ""
local users = tonumber(os.getenv("EG_USERS") or "100000")
local devices = tonumber(os.getenv("EG_DEVICES") or "1000000")
local prefix = os.getenv("EG_PREFIX") or "BENCH"
local now = os.time() * 1000
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

local headers = {["Authorization"] = "Bearer " .. token}

function request()
  local q = query:gsub("{u}", function() return tostring(math.random(0, users - 1)) end)
  q = q:gsub("{d}", function() return prefix .. math.random(0, devices - 1) end)
  q = q:gsub("{now%-1d}", tostring(now - 86400000))
  q = q:gsub("{now%-7d}", tostring(now - 7 * 86400000))
  return wrk.format("GET", "/api/v1/devices?" .. q, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rate":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
