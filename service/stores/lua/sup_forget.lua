-- The call is over: drop its record. KEYS as sup_put.lua; ARGV[1] call id
local id = ARGV[1]
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
return 1
