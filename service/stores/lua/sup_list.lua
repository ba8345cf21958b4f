-- One page of a tenant's records, by call id. KEYS as sup_put.lua;
-- ARGV[1] the exclusive lower bound for ZRANGEBYLEX ('-' or '(' .. id), ARGV[2] count
-- Returns {id, record, owner, heartbeat expiry (microseconds), ...}
local ids = redis.call('ZRANGEBYLEX', KEYS[4], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local rows = {}
for _, id in ipairs(ids) do
  rows[#rows + 1] = id
  rows[#rows + 1] = redis.call('HGET', KEYS[1], id) or ''
  rows[#rows + 1] = redis.call('HGET', KEYS[2], id) or ''
  rows[#rows + 1] = redis.call('ZSCORE', KEYS[3], id) or '0'
end
return rows
