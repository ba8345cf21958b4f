-- Decide one request for one user in one round trip: revocation, effective role,
-- first-seen record, and every bucket (all or nothing), on Redis's clock.
--
-- KEYS[1]            the user's record (hash)
-- KEYS[2 .. 1+nb]    buckets: the user's (every role's, deduplicated) then the tenant's
-- KEYS[2+nb]         the tenant's user index, when ARGV[9] == '1' (standalone only:
--                    on Redis Cluster it lives in another slot and the caller adds to it)
-- ARGV: 1 now_us|''  2 cost  3 user_id  4 has_name  5 name  6 has_email  7 email
--       8 claimed_role  9 use_index  10 the plan, \31-separated: nu (user buckets),
--       nt (tenant buckets), period_us and interval_us for each of the nu+nt buckets,
--       then nroles, and for each role: name, n, n bucket numbers (1..nu)
-- Reply: {status ('ok'|'refused'|'revoked'), role, need_index, outcomes...}
--        outcomes: bucket number, allowed, remaining, reset_after, retry_after, new_tat
local rec = KEYS[1]
local now = now_us(ARGV[1])
local cost = tonumber(ARGV[2])
local claimed = ARGV[8]
-- ARGV[10] is the limit plan below, its fields joined by \31 (unit separator): it is the
-- same for every request of a tenant and scope, and one argument instead of ~20 keeps the
-- client's command packing cheap. `A` is ARGV with the plan spread out again.
local A = {}
for i = 1, 9 do A[i] = ARGV[i] end
for field in string.gmatch(ARGV[10], '[^\31]+') do A[#A + 1] = field end
local nu = tonumber(A[10])
local nt = tonumber(A[11])

local f = redis.call('HMGET', rec, 'added_at', 'role', 'revoked', 'ix', 'claimed')
local role = claimed
if f[2] and f[2] ~= '' then role = f[2] end
if f[1] and f[3] == '1' then
  -- Revoked: nothing is consumed.
  return {'revoked', role, 0}
end
if not f[1] then
  local fields = {'id', ARGV[3], 'added_at', string.format('%d', math.floor(now / 1000000))}
  if ARGV[4] == '1' then fields[#fields + 1] = 'name'; fields[#fields + 1] = ARGV[5] end
  if ARGV[6] == '1' then fields[#fields + 1] = 'email'; fields[#fields + 1] = ARGV[7] end
  redis.call('HSET', rec, unpack(fields))
end
-- The last role the token claimed, for the directory's listing; written only on change.
if f[5] ~= claimed then redis.call('HSET', rec, 'claimed', claimed) end
local need_index = 0
if f[4] ~= '1' then
  if ARGV[9] == '1' then
    redis.call('ZADD', KEYS[2 + nu + nt], 0, ARGV[3])
    redis.call('HSET', rec, 'ix', '1')
  else
    need_index = 1
  end
end

-- The effective role's limits, else the claimed role's (as MemoryStore._limits_for).
local p = 12 + 2 * (nu + nt)
local nroles = tonumber(A[p])
p = p + 1
local chosen, fallback = nil, nil
for _ = 1, nroles do
  local name, n = A[p], tonumber(A[p + 1])
  local list = {}
  for i = 1, n do list[i] = tonumber(A[p + 1 + i]) end
  if name == role then chosen = list end
  if name == claimed then fallback = list end
  p = p + 2 + n
end
local picked = chosen or fallback or {}

local specs = {}
for _, b in ipairs(picked) do
  specs[#specs + 1] = {KEYS[1 + b], tonumber(A[10 + 2 * b]), tonumber(A[11 + 2 * b]), b}
end
for j = 1, nt do
  local b = nu + j
  specs[#specs + 1] = {KEYS[1 + b], tonumber(A[10 + 2 * b]), tonumber(A[11 + 2 * b]), b}
end
local allowed, flat = decide(specs, now, cost, true)
local reply = {'ok', role, need_index}
if not allowed then reply[1] = 'refused' end
for _, v in ipairs(flat) do reply[#reply + 1] = v end
return reply
