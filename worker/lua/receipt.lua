-- Delivery receipts and the outcomes of a send, in one script so that a receipt is never lost or applied twice.
-- A receipt that arrives before the send's own answer waits in the job's pending list; the moment the job leaves
-- `sending` for `sent` or `unknown` the waiting ones are applied in arrival order (so a DELIVERED receipt that
-- overtook an ambiguous send resolves the `unknown` job). Duplicates and receipts that come after the job has
-- moved on change nothing and are counted.
-- KEYS[1] job hash   KEYS[2] job events list   KEYS[3] status counts   KEYS[4] sending index   KEYS[5] unknown index
-- KEYS[6] pending receipts list   KEYS[7] job events stream   KEYS[8] callback outbox   KEYS[9] counters hash
-- KEYS[10] queued index
-- ARGV[1] job id   ARGV[2] mode   ARGV[3] now (ms)   ARGV[4] retention (s)   ARGV[5] stream max length
-- mode "receipt": ARGV[6] receipt JSON {status, code, sub_code, description, message_id}
-- mode "sent":    ARGV[6] owner token   ARGV[7] Sinch message id   ARGV[8] attempts. Sinch accepted the request:
--                 the template parameters are no longer needed and the record starts its retention (a receipt
--                 that never comes does not keep it forever; a later one still finds it within retention).
-- mode "unknown": ARGV[6] owner token   ARGV[7] reason   ARGV[8..] field, value pairs. The send's outcome is
--                 ambiguous; only the owner may say so (the job may already be `unknown`: the reconciler got there first).
-- mode "stale":   ARGV[6] claimed before (ms)   ARGV[7] requeue limit. The reconciler's decision about a `sending`
--                 job whose worker vanished, taken here so that no worker can hand the request to Sinch between
--                 the look and the move: request never left -> `queued` again (or `failed`, requeue_limit, after
--                 that many requeues); request left -> `unknown`, never resent.
-- Returns {outcome, status after}: receipt mode: applied, pending, duplicate, late, missing; sent mode: sent,
-- refused; unknown mode: unknown, refused; stale mode: requeued, unknown, failed, skipped.
local job, now, retention, maxlen = KEYS[1], ARGV[3], tonumber(ARGV[4]), ARGV[5]

local function move(current, status, reason, fields)
  redis.call("HSET", job, "status", status, "updated_at", now, unpack(fields))
  if current == "sending" then redis.call("ZREM", KEYS[4], ARGV[1]) end
  if current == "unknown" then redis.call("ZREM", KEYS[5], ARGV[1]) end
  if status == "unknown" then redis.call("ZADD", KEYS[5], tonumber(now), ARGV[1]) end
  if status == "queued" then redis.call("ZADD", KEYS[10], tonumber(now), ARGV[1]) end
  record_event(job, KEYS[2], KEYS[7], KEYS[8], maxlen, ARGV[1], current, status, now, reason)
  redis.call("HINCRBY", KEYS[3], status, 1)
  if status == "delivered" or status == "failed" then
    finish(job, KEYS[2], ARGV[1], now, retention)
  end
end

local function annotate(current, reason)
  redis.call("RPUSH", KEYS[2], cjson.encode({at = tonumber(now), from = current, to = current, reason = reason}))
end

local function apply(raw)
  local receipt = cjson.decode(raw)
  local current = redis.call("HGET", job, "status")
  if not current then
    return "missing"
  end
  if current == "queued" or current == "scheduled" or current == "sending" then
    redis.call("RPUSH", KEYS[6], raw)
    redis.call("EXPIRE", KEYS[6], retention)
    return "pending"
  end
  local status = receipt.status
  if current == "sent" or current == "unknown" then
    local fields = {"delivery_status", status}
    for _, name in ipairs({"code", "sub_code", "description"}) do
      if receipt[name] and receipt[name] ~= "" and receipt[name] ~= cjson.null then
        fields[#fields + 1] = "delivery_" .. name
        fields[#fields + 1] = receipt[name]
      end
    end
    if (redis.call("HGET", job, "message_id") or "") == "" and receipt.message_id and receipt.message_id ~= "" then
      fields[#fields + 1] = "message_id"
      fields[#fields + 1] = receipt.message_id
    end
    if status == "DELIVERED" or status == "READ" then
      fields[#fields + 1] = status == "READ" and "read_at" or "delivered_at"
      fields[#fields + 1] = now
      move(current, "delivered", "receipt " .. status, fields)
    elseif status == "FAILED" then
      move(current, "failed", "receipt FAILED " .. (receipt.code or ""), fields)
    else
      -- QUEUED_ON_CHANNEL, SWITCHING_CHANNEL and codes Sinch may add: on the record, no status change.
      -- The same report again (Sinch retries a callback) is a duplicate: no second event.
      if redis.call("HGET", job, "delivery_status") == status then
        return "duplicate"
      end
      redis.call("HSET", job, unpack(fields))
      annotate(current, "receipt " .. status)
    end
    return "applied"
  end
  if current == "delivered" and status == "READ" and not redis.call("HGET", job, "read_at") then
    redis.call("HSET", job, "read_at", now, "delivery_status", "READ")
    annotate(current, "receipt READ")
    return "applied"
  end
  local seen = redis.call("HGET", job, "delivery_status")
  if seen == status or (status == "DELIVERED" and seen == "READ") then
    return "duplicate"
  end
  return "late"
end

-- The receipts that waited for the send's outcome, in arrival order.
local function drain()
  local waiting = redis.call("LRANGE", KEYS[6], 0, -1)
  redis.call("DEL", KEYS[6])
  for _, raw in ipairs(waiting) do
    redis.call("HINCRBY", KEYS[9], "receipts:" .. apply(raw), 1)
  end
end

local mode = ARGV[2]
if mode == "receipt" then
  local outcome = apply(ARGV[6])
  redis.call("HINCRBY", KEYS[9], "receipts:" .. outcome, 1)
  return {outcome, redis.call("HGET", job, "status") or ""}
end

local current = redis.call("HGET", job, "status")

if mode == "sent" then
  -- Only the owner that handed the request to Sinch records its answer (also after the reconciler made it unknown).
  if (current ~= "sending" and current ~= "unknown") or redis.call("HGET", job, "owner") ~= ARGV[6] then
    return {"refused", current or ""}
  end
  move(current, "sent", "accepted by Sinch", {"message_id", ARGV[7], "attempts", ARGV[8]})
  redis.call("HDEL", job, "parameters")
  retain(job, KEYS[2], ARGV[1], retention)
  drain()
  return {"sent", redis.call("HGET", job, "status")}
end

if mode == "unknown" then
  if (current ~= "sending" and current ~= "unknown") or redis.call("HGET", job, "owner") ~= ARGV[6] then
    return {"refused", current or ""}
  end
  local fields = {}
  for i = 8, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  if current == "sending" then
    move(current, "unknown", ARGV[7], fields)
  else
    if #fields > 0 then redis.call("HSET", job, unpack(fields)) end
    annotate(current, ARGV[7])
  end
  drain()
  return {"unknown", redis.call("HGET", job, "status")}
end

if mode == "stale" then
  local claimed = redis.call("ZSCORE", KEYS[4], ARGV[1])
  if current ~= "sending" or not claimed or tonumber(claimed) > tonumber(ARGV[6]) then
    return {"skipped", current or ""}  -- moved on, or claimed again since the reconciler looked
  end
  if redis.call("HGET", job, "http_started_at") then
    move(current, "unknown", "the worker vanished after handing the request to Sinch", {})
    drain()
    return {"unknown", redis.call("HGET", job, "status")}
  end
  local requeues = tonumber(redis.call("HGET", job, "requeues") or "0")
  local limit = tonumber(ARGV[7])
  if requeues >= limit then
    move(current, "failed", "requeue_limit: its worker vanished before sending " .. (requeues + 1) .. " times",
      {"delivery_code", "REQUEUE_LIMIT",
       "delivery_description", "requeued " .. requeues .. " times after its worker vanished; not tried again"})
    return {"failed", "failed"}
  end
  redis.call("HDEL", job, "owner")
  redis.call("HSET", job, "requeues", requeues + 1)
  move(current, "queued", "the worker vanished before sending (requeue " .. (requeues + 1) .. " of " .. limit .. ")", {})
  return {"requeued", "queued"}
end

return redis.error_reply("unknown mode " .. tostring(mode))
