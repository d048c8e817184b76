-- warmlane sessions: one atomic operation on one session's hash.
--
-- KEYS[1]  the session's hash: v:KEY fields hold values, m:bytes the size
--          of keys and values, u:calls / u:micros / u:tokens / u:cpu the
--          usage (and u:requests, upstream requests), c:N the N-th call's record (the last KEEP kept) and
--          c:next the number of calls logged. It expires after ttl_ms
--          without use.
-- ARGV     op, ttl_ms, max_bytes, then per op: get/delete KEY; set KEY VALUE;
--          cas KEY HAS_EXPECTED EXPECTED HAS_NEW NEW (flags '1' or '0');
--          incr KEY BY; record CALLS MICROS TOKENS CPU_NANOS RECORD KEEP
--          REQUESTS;
--          calls LIMIT.
-- Returns  { status, ... }: status 'ok', 'no-session', 'too-large' or
--          (incr) 'not-a-counter'.
local k = KEYS[1]
local op, ttl, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if op == 'create' then
  local created = redis.call('HSETNX', k, 'm:bytes', 0)
  redis.call('PEXPIRE', k, ttl)
  return { 'ok', created }
elseif op == 'remove' then
  return { 'ok', redis.call('DEL', k) }
end

-- Stores VALUE under KEY if the session stays within max bytes; whether it did.
local function put(key, value)
  local field = 'v:' .. key
  local old = 0
  if redis.call('HEXISTS', k, field) == 1 then
    old = #key + redis.call('HSTRLEN', k, field)
  end
  local total = tonumber(redis.call('HGET', k, 'm:bytes')) - old + #key + #value
  if total > max then return false end
  redis.call('HSET', k, field, value, 'm:bytes', total)
  return true
end

-- Removes KEY: 1 if it was there, else 0.
local function remove(key)
  local field = 'v:' .. key
  if redis.call('HEXISTS', k, field) == 0 then return 0 end
  redis.call('HINCRBY', k, 'm:bytes', -(#key + redis.call('HSTRLEN', k, field)))
  redis.call('HDEL', k, field)
  return 1
end

if redis.call('EXISTS', k) == 0 then
  if op == 'exists' then return { 'ok', 0 } end
  return { 'no-session' }
end
redis.call('PEXPIRE', k, ttl)

if op == 'exists' then
  return { 'ok', 1 }
elseif op == 'get' then
  local v = redis.call('HGET', k, 'v:' .. ARGV[4])
  if v then return { 'ok', 1, v } end
  return { 'ok', 0 }
elseif op == 'set' then
  if not put(ARGV[4], ARGV[5]) then return { 'too-large' } end
  return { 'ok' }
elseif op == 'delete' then
  return { 'ok', remove(ARGV[4]) }
elseif op == 'cas' then
  local key = ARGV[4]
  local now = redis.call('HGET', k, 'v:' .. key)
  if ARGV[5] == '1' then
    if now ~= ARGV[6] then return { 'ok', 0 } end
  elseif now then
    return { 'ok', 0 }
  end
  if ARGV[7] == '1' then
    if not put(key, ARGV[8]) then return { 'too-large' } end
  else
    remove(key)
  end
  return { 'ok', 1 }
elseif op == 'incr' then
  -- HINCRBY reads and writes exact 64-bit integers (Lua's numbers would
  -- not), refuses a value that is not one and a sum that overflows.
  local key = ARGV[4]
  local field = 'v:' .. key
  local before = redis.call('HGET', k, field)
  local r = redis.pcall('HINCRBY', k, field, ARGV[5])
  if type(r) == 'table' and r.err then return { 'not-a-counter' } end
  local after = redis.call('HGET', k, field)
  local old = 0
  if before then old = #key + #before end
  local total = tonumber(redis.call('HGET', k, 'm:bytes')) - old + #key + #after
  if total > max then
    if before then redis.call('HSET', k, field, before) else redis.call('HDEL', k, field) end
    return { 'too-large' }
  end
  redis.call('HSET', k, 'm:bytes', total)
  return { 'ok', after }
elseif op == 'keys' then
  local keys = {}
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 'v:' then keys[#keys + 1] = string.sub(f, 3) end
  end
  table.sort(keys)
  return { 'ok', keys }
elseif op == 'record' then
  redis.call('HINCRBY', k, 'u:calls', ARGV[4])
  redis.call('HINCRBY', k, 'u:micros', ARGV[5])
  redis.call('HINCRBY', k, 'u:tokens', ARGV[6])
  redis.call('HINCRBY', k, 'u:cpu', ARGV[7])
  redis.call('HINCRBY', k, 'u:requests', tonumber(ARGV[10]) or 0)
  local keep = tonumber(ARGV[9])
  local n = redis.call('HINCRBY', k, 'c:next', 1) - 1
  redis.call('HSET', k, 'c:' .. n, ARGV[8])
  if n - keep >= 0 then redis.call('HDEL', k, 'c:' .. (n - keep)) end
  return { 'ok' }
elseif op == 'calls' then
  local next = tonumber(redis.call('HGET', k, 'c:next')) or 0
  local out = {}
  for i = math.max(0, next - tonumber(ARGV[4])), next - 1 do
    local r = redis.call('HGET', k, 'c:' .. i)
    if r then out[#out + 1] = r end
  end
  return { 'ok', out }
elseif op == 'usage' then
  local u = redis.call('HMGET', k, 'u:calls', 'u:micros', 'u:tokens', 'u:cpu', 'u:requests')
  return { 'ok', tonumber(u[1]) or 0, tonumber(u[2]) or 0, tonumber(u[3]) or 0, tonumber(u[4]) or 0,
    tonumber(u[5]) or 0 }
end
return redis.error_reply('warmlane session script: unknown op ' .. tostring(op))
