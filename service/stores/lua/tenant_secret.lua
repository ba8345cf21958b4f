-- A tenant's secret, created by the first replica that asks: every replica gets that one.
--
-- KEYS[1] the secret;  ARGV[1] the value to keep when there is none yet.
-- Durable like the records: no TTL is ever set.
local kept = redis.call('GET', KEYS[1])
if kept then return kept end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
