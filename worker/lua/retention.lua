-- Prelude prepended after record_event.lua (worker.jobs loads them together): how a job record ages out.
-- retain() starts the retention period of the record, its event list and its idempotency key together: a key
-- that outlived its record would answer a job nobody can read (create_job.lua treats such a key as free).
local function retain(job_key, events_key, job_id, retention)
  redis.call("EXPIRE", job_key, retention)
  redis.call("EXPIRE", events_key, retention)
  local key = redis.call("HGET", job_key, "idempotency_key")
  if key and key ~= "" and redis.call("GET", IDEMPOTENCY_PREFIX .. key) == job_id then
    redis.call("EXPIRE", IDEMPOTENCY_PREFIX .. key, retention)
  end
end

-- finish() is the end of every terminal transition: one-time codes in template parameters are not kept, and
-- the record ages out.
local function finish(job_key, events_key, job_id, now, retention)
  redis.call("HDEL", job_key, "parameters", "owner")
  redis.call("HSET", job_key, "terminal_at", now)
  retain(job_key, events_key, job_id, retention)
end

