-- Take (or extend) a call lease, unless the user holds max live leases already.
-- KEYS[1] the user's lease set (sorted set: call id -> expiry, microseconds)
-- ARGV[1] call id, ARGV[2] max concurrent (-1: no bound), ARGV[3] ttl (microseconds),
-- ARGV[4] now (microseconds; empty: Redis's own clock)
-- Returns {1, expiry} when held, {0, 0} when refused.
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local key, call_id = KEYS[1], ARGV[1]
local max, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
-- Leases past their call's deadline (nobody released them) stop counting here.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZSCORE', key, call_id)
if not held and max >= 0 and redis.call('ZCARD', key) >= max then return {0, 0} end
local expiry = now + ttl
redis.call('ZADD', key, expiry, call_id)
-- The set outlives its longest lease by nothing: an idle user leaves no key behind.
-- Relative to `now`, so that a test clock far from Redis's own still works.
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.ceil((tonumber(last[2]) - now) / 1000) + 1)
return {1, string.format('%.0f', expiry)}
