-- The GCRA shared by the other scripts, prepended to each of them when loaded (Redis
-- Lua has no `require`). Times are microseconds; `gcra` mirrors
-- service.limits.evaluate line for line, so the memory and Redis stores agree.

-- Scripts read TIME, which needs effects replication on Redis < 5 (a no-op after).
if redis.replicate_commands then pcall(redis.replicate_commands) end

-- Redis's own clock, so that replicas with skewed clocks agree; tests may pass one.
local function now_us(arg)
  local given = tonumber(arg)
  if given ~= nil then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Numbers go back as strings: Redis would truncate a Lua number to an integer.
local function num(x)
  return string.format('%.17g', x)
end

-- One bucket: {allowed (0|1), remaining, reset_after, retry_after, new_tat}.
local function gcra(key, period, interval, now, cost)
  local tat = tonumber(redis.call('GET', key))
  local base = now
  if tat ~= nil and tat > now then base = tat end
  local new_tat = base + interval * cost
  local used = new_tat - now
  if used <= period + 0.001 then
    local remaining = math.max(0, math.floor((period - used) / interval + 1e-9))
    return {1, remaining, used, 0, new_tat}
  end
  local remaining = math.max(0, math.floor((period - (base - now)) / interval + 1e-9))
  return {0, remaining, base - now, used - period, base}
end

-- A bucket lives until it is full again: then it carries no information.
local function save(key, tat, now)
  local ttl = math.ceil((tat - now) / 1000)
  if ttl > 0 then
    redis.call('SET', key, num(tat), 'PX', ttl)
  else
    redis.call('DEL', key)
  end
end

-- Decide buckets all or nothing. `specs`: list of {key, period, interval, tag}.
-- Returns allowed (boolean) and the flat reply part: tag, allowed, remaining,
-- reset_after, retry_after, new_tat for each bucket.
local function decide(specs, now, cost, commit)
  local results = {}
  local allowed = true
  for i, s in ipairs(specs) do
    results[i] = gcra(s[1], s[2], s[3], now, cost)
    if results[i][1] == 0 then allowed = false end
  end
  local flat = {}
  for i, s in ipairs(specs) do
    local r = results[i]
    if allowed and commit then save(s[1], r[5], now) end
    for _, v in ipairs({s[4], r[1], r[2], num(r[3]), num(r[4]), num(r[5])}) do
      flat[#flat + 1] = v
    end
  end
  return allowed, flat
end
