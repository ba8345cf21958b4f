-- Change a known user's record atomically; nil for an unknown user (never creates one).
--
-- KEYS[1] the record;  ARGV: 1 'role' | 'revoke'  2 the role (for 'role')
-- Setting a role also clears a revocation. Records are durable: no TTL is ever set.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] == 'role' then
  redis.call('HSET', KEYS[1], 'role', ARGV[2], 'revoked', '0')
else
  redis.call('HSET', KEYS[1], 'revoked', '1')
end
return redis.call('HGETALL', KEYS[1])
