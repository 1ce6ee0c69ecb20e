-- Create a job record unless its idempotency key already names one.
-- KEYS[1] idempotency key (a key nobody writes when the job has none)
-- KEYS[2] job hash   KEYS[3] job events list   KEYS[4] status index of the first status   KEYS[5] status counts
-- KEYS[6] job events stream   KEYS[7] callback outbox stream
-- ARGV[1] job id   ARGV[2] first status   ARGV[3] now (ms)   ARGV[4] index score
-- ARGV[5] "1" when the job has an idempotency key   ARGV[6] stream max length
-- ARGV[7..] field, value pairs of the record
-- Returns {1, job id} when created, {0, existing job id} when the key was taken.
-- The key gets no TTL of its own: it expires with its job's record (retention.lua). A key whose record is
-- gone (an older key with its own TTL, a record deleted by hand) is free: it would name a job nobody can read.
if ARGV[5] == "1" then
  local existing = redis.call("GET", KEYS[1])
  if existing and redis.call("EXISTS", JOB_PREFIX .. existing) == 1 then
    return {0, existing}
  end
  redis.call("SET", KEYS[1], ARGV[1])
end
local fields = {}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[2], "status", ARGV[2], "created_at", ARGV[3], "updated_at", ARGV[3], unpack(fields))
record_event(KEYS[2], KEYS[3], KEYS[6], KEYS[7], ARGV[6], ARGV[1], "", ARGV[2], ARGV[3], "created")
redis.call("ZADD", KEYS[4], tonumber(ARGV[4]), ARGV[1])
redis.call("HINCRBY", KEYS[5], ARGV[2], 1)
return {1, ARGV[1]}
