-- Move a job from one of the expected statuses to a new one: the compare-and-set of every status change.
-- KEYS[1] job hash   KEYS[2] job events list   KEYS[3] status counts
-- KEYS[4..7] status indexes of scheduled, queued, sending, unknown (worker.keys.INDEXED_STATUSES, in that order)
-- ARGV[1] job id   ARGV[2] expected statuses, comma-separated   ARGV[3] new status   ARGV[4] now (ms)
-- ARGV[5] index score for the new status (due time for scheduled, else now)
-- ARGV[6] owner token the job must hold ("" = not checked)   ARGV[7] reason (free text for the event)
-- ARGV[8] retention (s) applied when the new status is terminal, else "0"
-- ARGV[9] number N of fields to delete, ARGV[10 .. 9+N] their names, then field, value pairs to set
-- Returns {1, previous status} on success, {0, current status or ""} when the status did not match
-- (a missing job, an owner mismatch, or a duplicate/late transition: nothing changes).
local current = redis.call("HGET", KEYS[1], "status")
if not current then
  return {0, ""}
end
local allowed = false
for status in string.gmatch(ARGV[2], "[^,]+") do
  if status == current then
    allowed = true
  end
end
if not allowed then
  return {0, current}
end
if ARGV[6] ~= "" and redis.call("HGET", KEYS[1], "owner") ~= ARGV[6] then
  return {0, current}
end

-- A transition to the same status only records fields and an event (e.g. "request handed to Sinch").
local moves = current ~= ARGV[3]
local indexed = {scheduled = KEYS[4], queued = KEYS[5], sending = KEYS[6], unknown = KEYS[7]}
if moves and indexed[current] then
  redis.call("ZREM", indexed[current], ARGV[1])
end
if moves and indexed[ARGV[3]] then
  redis.call("ZADD", indexed[ARGV[3]], tonumber(ARGV[5]), ARGV[1])
end

local deletes = tonumber(ARGV[9])
for i = 10, 9 + deletes do
  redis.call("HDEL", KEYS[1], ARGV[i])
end
local fields = {}
for i = 10 + deletes, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], "status", ARGV[3], "updated_at", ARGV[4], unpack(fields))
redis.call("RPUSH", KEYS[2], cjson.encode({at = tonumber(ARGV[4]), from = current, to = ARGV[3], reason = ARGV[7]}))
if moves then
  redis.call("HINCRBY", KEYS[3], ARGV[3], 1)
end

local retention = tonumber(ARGV[8])
if retention > 0 then
  -- Terminal: one-time codes in template parameters are not kept, and the record ages out.
  redis.call("HDEL", KEYS[1], "parameters", "owner")
  redis.call("HSET", KEYS[1], "terminal_at", ARGV[4])
  redis.call("EXPIRE", KEYS[1], retention)
  redis.call("EXPIRE", KEYS[2], retention)
end
return {1, current}
