-- Move a job from one of the expected statuses to a new one: the compare-and-set of every status change.
-- KEYS[1] job hash   KEYS[2] job events list   KEYS[3] status counts
-- KEYS[4..7] status indexes of scheduled, queued, sending, unknown (worker.keys.INDEXED_STATUSES, in that order)
-- KEYS[8] job events stream   KEYS[9] callback outbox stream
-- ARGV[1] job id   ARGV[2] expected statuses, comma-separated   ARGV[3] new status ("" = keep the current one)
-- ARGV[4] now (ms)   ARGV[5] index score for the new status (due time for scheduled, else now)
-- ARGV[6] owner token the job must hold ("" = not checked)   ARGV[7] reason (free text for the event)
-- ARGV[8] retention (s) applied when the new status is terminal, else "0"   ARGV[9] stream max length
-- ARGV[10] number N of fields to delete, ARGV[11 .. 10+N] their names, then field, value pairs to set
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

local new_status = ARGV[3] ~= "" and ARGV[3] or current
-- A transition to the same status only records fields and an event (e.g. "request handed to Sinch").
local moves = current ~= new_status
local indexed = {scheduled = KEYS[4], queued = KEYS[5], sending = KEYS[6], unknown = KEYS[7]}
if moves and indexed[current] then
  redis.call("ZREM", indexed[current], ARGV[1])
end
if moves and indexed[new_status] then
  redis.call("ZADD", indexed[new_status], tonumber(ARGV[5]), ARGV[1])
end

local deletes = tonumber(ARGV[10])
for i = 11, 10 + deletes do
  redis.call("HDEL", KEYS[1], ARGV[i])
end
local fields = {}
for i = 11 + deletes, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], "status", new_status, "updated_at", ARGV[4], unpack(fields))
if moves then
  record_event(KEYS[1], KEYS[2], KEYS[8], KEYS[9], ARGV[9], ARGV[1], current, new_status, ARGV[4], ARGV[7])
  redis.call("HINCRBY", KEYS[3], new_status, 1)
else
  redis.call("RPUSH", KEYS[2], cjson.encode({at = tonumber(ARGV[4]), from = current, to = current, reason = ARGV[7]}))
end

local retention = tonumber(ARGV[8])
if moves and retention > 0 then
  finish(KEYS[1], KEYS[2], ARGV[1], ARGV[4], retention)  -- terminal: parameters gone, the record ages out
end
return {1, current}
