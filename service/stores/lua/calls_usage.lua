-- Add to one user's usage of one day and return the new total.
-- KEYS[1] the day's usage hash; ARGV[1] tokens, ARGV[2] seconds, ARGV[3] key TTL (seconds)
local tokens = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
local seconds = redis.call('HINCRBYFLOAT', KEYS[1], 'seconds', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {tokens, seconds}
