-- Give back what an admission consumed: each bucket's TAT moves back by cost
-- emission intervals, never before now (as MemoryStore.refund).
--
-- KEYS: buckets (one slot);  ARGV: 1 now_us|''  2 cost  3.. interval_us per bucket
local now = now_us(ARGV[1])
local cost = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat ~= nil then
    local back = tat - tonumber(ARGV[2 + i]) * cost
    if back < now then back = now end
    save(key, back, now)
  end
end
return #KEYS
