-- Claim up to ARGV[3] records whose heartbeat lapsed (or that were handed over).
-- KEYS as sup_put.lua; ARGV[1] owner, ARGV[2] ttl (microseconds), ARGV[3] limit
-- Returns {id1, record1, id2, record2, ...}. Atomic: a record is claimed by one caller.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(due) do
  local record = redis.call('HGET', KEYS[1], id)
  if record then
    redis.call('HSET', KEYS[2], id, ARGV[1])
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = record
  else
    -- A heartbeat without a record: left by a forget that raced a claim.
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
return claimed
