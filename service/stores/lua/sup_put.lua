-- Create (or overwrite) a call's supervision record, owned, with a heartbeat.
-- KEYS[1] records (hash id -> JSON), KEYS[2] owners (hash id -> owner),
-- KEYS[3] heartbeats (sorted set id -> expiry, microseconds), KEYS[4] ids (sorted set, score 0)
-- ARGV[1] call id, ARGV[2] record JSON, ARGV[3] owner, ARGV[4] ttl (microseconds)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local id = ARGV[1]
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[2], id, ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), id)
redis.call('ZADD', KEYS[4], 0, id)
return 1
