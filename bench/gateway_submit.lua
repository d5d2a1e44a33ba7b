-- wrk script for bench/gateway.py: POST each pre-generated declaration once.
--
--   wrk -t T -c C -d 3600s -s bench/gateway_submit.lua URL -- LISTFILE TOKEN RATE T
--
-- LISTFILE names one body file per line; thread i (of T) takes lines i, i+T, i+2T...
-- and stops itself once every one is answered (bench/gateway.py then interrupts wrk).
-- RATE > 0 paces the requests to RATE per second in all (each thread keeps its own
-- schedule and delay() waits for the next slot); 0 sends as fast as answers come.
-- Only 202 answers are counted as accepted; done() prints one WRK_RESULT line.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local bodies = {}
local index = 0
local answered = 0
local verify_call = false
local headers = {}
local interval_ms = 0
local next_due = nil
accepted = 0
other = 0
dup200 = 0 -- idempotent replays (a request wrk re-sent after a reconnect)
c4xx = 0
c5xx = 0
first_other = "" -- the first answer other than 202 (status and start of the body), for the report

function init(args)
  local listfile, token, rate, nthreads = args[1], args[2], tonumber(args[3]), tonumber(args[4])
  local n = 0
  for path in io.lines(listfile) do
    if n % nthreads == id then
      local f = assert(io.open(path, "rb"))
      table.insert(bodies, f:read("*a"))
      f:close()
    end
    n = n + 1
  end
  -- wrk calls request() once on thread 0 right after init to check it; that call must
  -- not use up a body.
  verify_call = (id == 0)
  headers["Authorization"] = "Bearer " .. token
  headers["Content-Type"] = "application/xml"
  if rate > 0 then
    interval_ms = 1000 * nthreads / rate
  end
end

function delay()
  if index >= #bodies then
    return 600000 -- used up: idle until the last answers arrive and the thread stops
  end
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  if next_due == nil then
    next_due = now
  end
  next_due = next_due + interval_ms
  local wait = next_due - now
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end

function request()
  if verify_call then
    verify_call = false
    return wrk.format("POST", "/v1/messages", headers, bodies[1])
  end
  if index >= #bodies then
    -- used up (wrk may still ask once per connection): a health check, not counted below
    return wrk.format("GET", "/healthz")
  end
  index = index + 1
  return wrk.format("POST", "/v1/messages", headers, bodies[index])
end

function response(status, hdrs, body)
  if status == 200 and body and string.find(body, "outbox_depth", 1, true) then
    return -- the health check sent once the bodies were used up
  end
  answered = answered + 1
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
    if first_other == "" then
      first_other = status .. " " .. string.gsub(string.sub(body or "", 1, 400), "%s+", " ")
    end
    if status == 200 then dup200 = dup200 + 1
    elseif status >= 500 then c5xx = c5xx + 1
    elseif status >= 400 then c4xx = c4xx + 1 end
  end
  if answered >= #bodies then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local acc, oth, d, c4, c5 = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    local f = t:get("first_other")
    if f ~= nil and f ~= "" then io.write("WRK_FIRST_OTHER " .. f .. "\n") end
    acc = acc + t:get("accepted")
    oth = oth + t:get("other")
    d = d + t:get("dup200")
    c4 = c4 + t:get("c4xx")
    c5 = c5 + t:get("c5xx")
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT accepted=%d other=%d requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "errors=%d dup200=%d c4xx=%d c5xx=%d\n",
    acc, oth, summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, d, c4, c5))
end
