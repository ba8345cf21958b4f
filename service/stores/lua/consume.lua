-- The tenant-wide half of a decision on Redis Cluster, where tenant buckets live in
-- another slot than the user's (see docs/redis.md).
--
-- KEYS[1 .. n]   the tenant's buckets;  KEYS[n+1]  the tenant's user index, when ARGV[5] ~= ''
-- ARGV: 1 now_us|''  2 cost  3 commit ('1': consume when all admit; '0': only report)
--       4 n  5 user_id to add to the index, or ''  6.. period_us, interval_us per bucket
-- Reply: {status ('ok'|'refused'), outcomes...} as admit.lua, bucket numbers 1..n.
local now = now_us(ARGV[1])
local cost = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[n + 1], 0, ARGV[5]) end
local specs = {}
for i = 1, n do
  specs[i] = {KEYS[i], tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i]), i}
end
local allowed, flat = decide(specs, now, cost, ARGV[3] == '1')
local reply = {'ok'}
if not allowed then reply[1] = 'refused' end
for _, v in ipairs(flat) do reply[#reply + 1] = v end
return reply
