-- Prelude prepended to every script that changes a job's status (worker.jobs loads them together, after the
-- key names JOB_PREFIX, EVENTS_SUFFIX, IDEMPOTENCY_PREFIX and JOB_METRICS from worker.keys).
-- record_event appends one status change to the job's event list, to the public stream of job
-- events (trimmed to about `maxlen`), and, when the job has a callback_url, to the callback outbox
-- that the forwarder POSTs from. One place, inside the same atomic script as the change itself.
local function record_event(job_key, events_key, stream_key, outbox_key, maxlen, job_id, previous, status, at, reason)
  redis.call("RPUSH", events_key,
    cjson.encode({at = tonumber(at), from = previous ~= "" and previous or cjson.null, to = status, reason = reason}))
  local fields = {"job_id", job_id, "from", previous, "to", status, "at", tostring(at), "reason", reason}
  redis.call("XADD", stream_key, "MAXLEN", "~", maxlen, "*", unpack(fields))
  local callback = redis.call("HGET", job_key, "callback_url")
  if callback and callback ~= "" then
    redis.call("XADD", outbox_key, "MAXLEN", "~", maxlen, "*", unpack(fields))
  end
  -- Jobs by status and type for /metrics (worker/metrics.py): every change counts one "into" the new status and
  -- one "out" of the previous one in the hash JOB_METRICS (a prelude has no KEYS: worker.jobs defines the name).
  local job_type = redis.call("HGET", job_key, "type") or ""
  redis.call("HINCRBY", JOB_METRICS, "into:" .. status .. ":" .. job_type, 1)
  if previous ~= "" then
    redis.call("HINCRBY", JOB_METRICS, "out:" .. previous .. ":" .. job_type, 1)
  end
end

