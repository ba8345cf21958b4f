-- Take (or renew) a call's one relay slot. KEYS[1] the slot; ARGV[1] relay id, ARGV[2] ttl (ms)
-- Returns 1 when `relay` holds it now, 0 when another relay does.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
