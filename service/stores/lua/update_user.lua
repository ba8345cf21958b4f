-- Change a known user's record atomically; nil for an unknown user (never creates one).
--
-- KEYS[1] the record;  KEYS[2] (optional) the tenant's set of revoked users
-- ARGV: 1 'role' | 'revoke'  2 the role (for 'role')
-- Setting a role also clears a revocation. Records are durable: no TTL is ever set.
-- Without KEYS[2] (a Cluster: another slot) the caller updates the set itself.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == 'role' then
  redis.call('HSET', KEYS[1], 'role', ARGV[2], 'revoked', '0')
  if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[3]) end
else
  redis.call('HSET', KEYS[1], 'revoked', '1')
  if KEYS[2] then redis.call('SADD', KEYS[2], ARGV[3]) end
end
return redis.call('HGETALL', KEYS[1])
