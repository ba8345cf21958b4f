-- Free a call's relay slot, if `relay` holds it. KEYS[1] the slot; ARGV[1] relay id
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
