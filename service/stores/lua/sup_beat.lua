-- Renew one owner's heartbeats; return the call ids it no longer owns.
-- KEYS as sup_put.lua; ARGV[1] owner, ARGV[2] ttl (microseconds), ARGV[3..] call ids
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('ZADD', KEYS[3], expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
