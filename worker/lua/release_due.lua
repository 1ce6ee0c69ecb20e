-- Claim deferred jobs that are due and mark them queued, atomically (two releasers never claim one job).
-- KEYS[1] scheduled index (score = due ms)   KEYS[2] queued index   KEYS[3] status counts
-- KEYS[4] job events stream   KEYS[5] callback outbox stream
-- ARGV[1] now (ms)   ARGV[2] claim jobs due up to this time (ms)   ARGV[3] at most this many   ARGV[4] stream max length
-- Job keys are derived from the ids here (JOB_PREFIX, EVENTS_SUFFIX: one Redis, not a cluster).
-- Returns a flat list id1, due1, id2, due2, ... of the jobs now queued. Ids whose job is no longer
-- `scheduled` (cancelled, expired, or gone with its retention) are dropped from the index.
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[2], "WITHSCORES", "LIMIT", 0, tonumber(ARGV[3]))
local released = {}
for i = 1, #due, 2 do
  local id, score = due[i], due[i + 1]
  redis.call("ZREM", KEYS[1], id)
  local job = JOB_PREFIX .. id
  if redis.call("HGET", job, "status") == "scheduled" then
    redis.call("HSET", job, "status", "queued", "updated_at", ARGV[1])
    record_event(job, job .. EVENTS_SUFFIX, KEYS[4], KEYS[5], ARGV[4], id, "scheduled", "queued", ARGV[1], "due")
    redis.call("ZADD", KEYS[2], tonumber(ARGV[1]), id)
    redis.call("HINCRBY", KEYS[3], "queued", 1)
    released[#released + 1] = id
    released[#released + 1] = score
  end
end
return released
