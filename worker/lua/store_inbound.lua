-- Store a user's inbound message once, however often Sinch delivers its callback.
-- KEYS[1] the message's seen marker   KEYS[2] the contact's inbound list   KEYS[3] counters hash
-- ARGV[1] the message JSON   ARGV[2] messages kept per contact   ARGV[3] retention (s)   ARGV[4] the message kind
-- Returns 1 when stored, 0 for a duplicate.
-- The seen marker is written last: a script that fails half-way (Redis scripts do not roll back) leaves the
-- message unmarked, so Sinch's retry stores it, instead of a marked message that was never stored.
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("HINCRBY", KEYS[3], "inbound:duplicate", 1)
  return 0
end
redis.call("RPUSH", KEYS[2], ARGV[1])
redis.call("LTRIM", KEYS[2], -tonumber(ARGV[2]), -1)
redis.call("EXPIRE", KEYS[2], tonumber(ARGV[3]))
redis.call("HINCRBY", KEYS[3], "inbound:" .. ARGV[4], 1)
redis.call("SET", KEYS[1], "1", "EX", tonumber(ARGV[3]))
return 1
