-- Hand over: the owner's records become claimable at once.
-- KEYS as sup_put.lua; ARGV[1] owner, ARGV[2..] call ids
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('HSET', KEYS[2], id, '')
    redis.call('ZADD', KEYS[3], 0, id)
  end
end
return 1
