-- wrk script: device check-ins (POST /api/v1/checkin) for the synthetic
-- fleet of bench/coreseed/fleet.h, devices picked at random.
--
--   EG_TOKEN=egt_... EG_DEVICES=1000000 [EG_PREFIX=BENCH] [EG_FACTS=same|nopass]
--   wrk -t2 -c64 -d30s -s bench/core/checkin.lua https://127.0.0.1:PORT
--
-- EG_FACTS=same reports what coreseed stored, to managed devices only (an
-- unchanged check-in: no state changes, no facts written); nopass reports
-- no passcode, which moves every compliant device into grace (one state
-- change per device, the first time).
-- done() prints one line of JSON for bench/core/run.sh.
local token = os.getenv("EG_TOKEN") or ""
local devices = tonumber(os.getenv("EG_DEVICES") or "1000000")
local prefix = os.getenv("EG_PREFIX") or "BENCH"
local facts = os.getenv("EG_FACTS") or "same"
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

-- fleet_dev() of fleet.h: OS family and version of device i.
local function fleet(i)
  local r = i % 100
  if r < 55 or (r >= 95 and r < 99) then
    return "iOS", "17." .. (i % 3)
  elseif r < 95 then
    return "Android", "1" .. (2 + i % 3)
  end
  return "Other", "10"
end

local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}

function request()
  local i = math.random(0, devices - 1)
  -- coreseed's unmanaged devices (i % 10 == 0) never checked in: their first
  -- check-in stores facts, so "same" picks among the managed ones.
  if facts == "same" and i % 10 == 0 then i = (i + 1) % devices end
  local os_, ver = fleet(i)
  local pass = facts == "nopass" and "false" or "true"
  local body = string.format(
    '{"device_id":"%s%d","os":"%s","os_version":"%s","passcode":%s,' ..
    '"encrypted":true,"jailbroken":false,"agent_version":"1.0"}',
    prefix, i, os_, ver, pass)
  return wrk.format("POST", "/api/v1/checkin", headers, body)
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
