-- warmlane budget: one atomic step on one budget's token buckets.
-- The arithmetic is level.rs's, step for step; keep the two together.
--
-- KEYS[1]  the budget's hash: fields s (shared level), r (reserved level),
--          at (microseconds, server clock). Absent means full.
-- ARGV     op ('reserve' | 'refund' | 'peek'), capacity, period_us, burst,
--          light_share, lane ('light' | 'heavy'), cost, part ('s' | 'r'),
--          now_us (empty: the server's TIME; tests pass a fake clock).
-- Returns  { part, wait_us, s, r, at, returned } as strings.
local op = ARGV[1]
local capacity, period, burst, share =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lane, cost, part = ARGV[6], tonumber(ARGV[7]), ARGV[8]
local now
if ARGV[9] ~= nil and ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local rate = capacity / period
local rate_s, cap_s = rate * (1 - share), burst * (1 - share)
local rate_r, cap_r = rate * share, burst * share
local reserve = share > 0

local s, r, at = cap_s, cap_r, now
local stored = redis.call('HMGET', KEYS[1], 's', 'r', 'at')
if stored[1] and stored[2] and stored[3] then
  s, r, at = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3])
  local dt = now - at
  if dt < 0 then dt = 0 end
  s = math.min(s + dt * rate_s, cap_s)
  r = math.min(r + dt * rate_r, cap_r)
  if now > at then at = now end
end

local wait, returned = 0, 0
if op == 'reserve' then
  if lane == 'light' and reserve then
    if r >= cost then
      part = 'r'
    elseif s >= cost then
      part = 's'
    elseif cost > cap_r then
      part = 's'
    else
      local wait_r = (cost - r) / rate_r
      local wait_s = (cost - s) / rate_s
      if wait_r <= wait_s then part = 'r' else part = 's' end
    end
  elseif lane == 'heavy' and reserve and r - cost >= cap_r / 2 then
    part = 'r'
  else
    part = 's'
  end
  if part == 'r' then
    r = r - cost
    if r < 0 then wait = -r / rate_r end
  else
    s = s - cost
    if s < 0 then wait = -s / rate_s end
  end
elseif op == 'refund' then
  -- Only to a bucket nobody waits on (see level.rs).
  if part == 'r' then
    if r >= 0 then returned = math.min(r + cost, cap_r) - r; r = r + returned end
  else
    part = 's'
    if s >= 0 then returned = math.min(s + cost, cap_s) - s; s = s + returned end
  end
else
  part = 's'
end

local f = function(x) return string.format('%.17g', x) end
if op ~= 'peek' then
  redis.call('HSET', KEYS[1], 's', f(s), 'r', f(r), 'at', f(at))
  -- Forget the budget once both buckets would be full again: absent is full.
  local full = (cap_s - s) / rate_s
  if reserve then full = math.max(full, (cap_r - r) / rate_r) end
  redis.call('PEXPIRE', KEYS[1], math.ceil(full / 1000) + 1000)
end
return { part, f(wait), f(s), f(r), f(at), f(returned) }
