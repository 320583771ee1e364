-- Settle a grant exactly once: release its holds, add the actual use (router/state/redis.py).
-- KEYS: per held counter its hash then its zset, and last the grant's "settled" marker.
-- ARGV: grant id, actual, marker ttl s. Returns 1, or 0 when the grant was already settled.
if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local id = ARGV[1]
local actual = tonumber(ARGV[2])
for i = 1, (#KEYS - 1) / 2 do
  local k, z = KEYS[2 * i - 1], KEYS[2 * i]
  local a = redis.call('HGET', k, 'r:' .. id)
  if a then
    redis.call('HINCRBYFLOAT', k, 'held', -tonumber(a))
    redis.call('HDEL', k, 'r:' .. id)
    redis.call('ZREM', z, id)
  end
  if actual ~= 0 then redis.call('HINCRBYFLOAT', k, 'used', actual) end
end
return 1
