-- Atomic all-or-nothing reservation against windowed counters (router/state/redis.py).
-- KEYS: per counter, its hash (fields used, held, r:<grant id> = held amount) then its zset of hold expiries.
-- ARGV: now, grant id, hold ttl s, then per counter: amount, limit, expires_at, hold (1|0).
-- Returns {1, 0, level...} when granted, {0, i, level...} when counter i (1-based) would exceed its limit.
local now = tonumber(ARGV[1])
local id = ARGV[2]
local ttl = tonumber(ARGV[3])
local n = #KEYS / 2
local levels = {}
local denied = 0
for i = 1, n do
  local k, z = KEYS[2 * i - 1], KEYS[2 * i]
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(expired) do          -- holds of a process that died: give them back
    local a = redis.call('HGET', k, 'r:' .. rid)
    if a then
      redis.call('HINCRBYFLOAT', k, 'held', -tonumber(a))
      redis.call('HDEL', k, 'r:' .. rid)
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  local v = redis.call('HMGET', k, 'used', 'held')
  local level = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  local b = 4 + (i - 1) * 4
  if denied == 0 and level + tonumber(ARGV[b]) > tonumber(ARGV[b + 1]) + 1e-9 then denied = i end
  levels[i] = level
end
local out = {denied == 0 and 1 or 0, denied}
for i = 1, n do
  local k, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 4 + (i - 1) * 4
  local amount = tonumber(ARGV[b])
  if denied == 0 then
    if ARGV[b + 3] == '1' then
      redis.call('HINCRBYFLOAT', k, 'held', amount)
      redis.call('HSET', k, 'r:' .. id, ARGV[b])
      redis.call('ZADD', z, now + ttl, id)
      redis.call('EXPIREAT', z, math.ceil(tonumber(ARGV[b + 2])) + 3600)
    else
      redis.call('HINCRBYFLOAT', k, 'used', amount)
    end
    redis.call('EXPIREAT', k, math.ceil(tonumber(ARGV[b + 2])) + 3600)
    levels[i] = levels[i] + amount
  end
  out[#out + 1] = tostring(levels[i])
end
return out
