-- Delivery receipts and the `sent` mark, in one script so that a receipt is never lost or applied twice.
-- A receipt that arrives before the send's own answer waits in the job's pending list; marking the
-- job sent applies the waiting ones in arrival order. Duplicates and receipts that come after the
-- job has moved on change nothing and are counted.
-- KEYS[1] job hash   KEYS[2] job events list   KEYS[3] status counts   KEYS[4] sending index   KEYS[5] unknown index
-- KEYS[6] pending receipts list   KEYS[7] job events stream   KEYS[8] callback outbox   KEYS[9] counters hash
-- ARGV[1] job id   ARGV[2] mode: "receipt" or "sent"   ARGV[3] now (ms)   ARGV[4] retention (s)
-- ARGV[5] stream max length
-- mode "receipt": ARGV[6] receipt JSON {status, code, sub_code, description, message_id}
-- mode "sent":    ARGV[6] owner token   ARGV[7] Sinch message id   ARGV[8] attempts
-- Returns {outcome, status after}: outcome is applied, pending, duplicate, late, missing (receipt mode)
-- or sent, refused (sent mode).
local job, now, retention, maxlen = KEYS[1], ARGV[3], tonumber(ARGV[4]), ARGV[5]

local function move(current, status, reason, fields)
  redis.call("HSET", job, "status", status, "updated_at", now, unpack(fields))
  if current == "sending" then redis.call("ZREM", KEYS[4], ARGV[1]) end
  if current == "unknown" then redis.call("ZREM", KEYS[5], ARGV[1]) end
  record_event(job, KEYS[2], KEYS[7], KEYS[8], maxlen, ARGV[1], current, status, now, reason)
  redis.call("HINCRBY", KEYS[3], status, 1)
  if status == "delivered" or status == "failed" then
    redis.call("HDEL", job, "parameters", "owner")
    redis.call("HSET", job, "terminal_at", now)
    redis.call("EXPIRE", job, retention)
    redis.call("EXPIRE", KEYS[2], retention)
  end
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
      redis.call("HSET", job, unpack(fields))
      redis.call("RPUSH", KEYS[2], cjson.encode({at = tonumber(now), from = current, to = current,
        reason = "receipt " .. status}))
    end
    return "applied"
  end
  if current == "delivered" and status == "READ" and not redis.call("HGET", job, "read_at") then
    redis.call("HSET", job, "read_at", now, "delivery_status", "READ")
    redis.call("RPUSH", KEYS[2], cjson.encode({at = tonumber(now), from = current, to = current, reason = "receipt READ"}))
    return "applied"
  end
  local seen = redis.call("HGET", job, "delivery_status")
  if seen == status or (status == "DELIVERED" and seen == "READ") then
    return "duplicate"
  end
  return "late"
end

if ARGV[2] == "receipt" then
  local outcome = apply(ARGV[6])
  redis.call("HINCRBY", KEYS[9], "receipts:" .. outcome, 1)
  return {outcome, redis.call("HGET", job, "status") or ""}
end

-- mode "sent": only the owner that handed the request to Sinch records its answer.
local current = redis.call("HGET", job, "status")
if (current ~= "sending" and current ~= "unknown") or redis.call("HGET", job, "owner") ~= ARGV[6] then
  return {"refused", current or ""}
end
move(current, "sent", "accepted by Sinch", {"message_id", ARGV[7], "attempts", ARGV[8]})
local waiting = redis.call("LRANGE", KEYS[6], 0, -1)
redis.call("DEL", KEYS[6])
for _, raw in ipairs(waiting) do
  redis.call("HINCRBY", KEYS[9], "receipts:" .. apply(raw), 1)
end
return {"sent", redis.call("HGET", job, "status")}
