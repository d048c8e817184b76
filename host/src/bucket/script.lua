-- warmlane budget: one atomic step on one budget's token buckets.
-- The arithmetic is level.rs's, step for step; keep the two together.
--
-- KEYS[1]  the budget's hash: fields s, r (shared and reserved levels),
--          at (microseconds, server clock), ns, nr (draws on each so far),
--          h (paused until, microseconds; absent: never). Absent means full.
-- ARGV     op ('reserve' | 'refund' | 'pause' | 'peek'), capacity, period_us, burst,
--          light_share, lane ('light' | 'heavy'), cost, part ('s' | 'r'),
--          ticket (refund: the draw's number), max_wait_us (reserve: empty
--          for no limit; pause: how long), now_us (empty: the server's TIME; tests pass a
--          fake clock).
-- Returns  { part, granted (0|1), wait_us, ticket, returned, s, r, at, h }
--          as strings.
local op = ARGV[1]
local capacity, period, burst, share =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lane, cost, part, ticket = ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local max_wait = tonumber(ARGV[10])
local now
if ARGV[11] ~= nil and ARGV[11] ~= '' then
  now = tonumber(ARGV[11])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local rate = capacity / period
local rate_s, cap_s = rate * (1 - share), burst * (1 - share)
local rate_r, cap_r = rate * share, burst * share

local l = { s = cap_s, r = cap_r, at = now, ns = 0, nr = 0, h = 0 }
local stored = redis.call('HMGET', KEYS[1], 's', 'r', 'at', 'ns', 'nr', 'h')
if stored[1] and stored[2] and stored[3] then
  l.h = tonumber(stored[6]) or 0
  -- A paused budget refills from the end of its pause.
  local dt = now - math.max(tonumber(stored[3]), l.h)
  if dt < 0 then dt = 0 end
  l.s = math.min(tonumber(stored[1]) + dt * rate_s, cap_s)
  l.r = math.min(tonumber(stored[2]) + dt * rate_r, cap_r)
  l.at = math.max(tonumber(stored[3]), now)
  l.ns, l.nr = tonumber(stored[4]) or 0, tonumber(stored[5]) or 0
end
local cap = { s = cap_s, r = cap_r }
local rates = { s = rate_s, r = rate_r }

local granted, wait, returned, write = 0, 0, 0, false
if op == 'reserve' then
  if share <= 0 then
    part = 's'
  elseif lane == 'light' then
    if l.r >= cost then part = 'r'
    elseif l.s >= cost then part = 's'
    elseif cost > cap_r then part = 's'
    elseif (cost - l.r) / rate_r <= (cost - l.s) / rate_s then part = 'r'
    else part = 's' end
  elseif l.r - cost >= cap_r / 2 then
    part = 'r'
  else
    part = 's'
  end
  local after = l[part] - cost
  wait = math.max(l.h - now, 0)
  if after < 0 then wait = wait + -after / rates[part] end
  if max_wait == nil or wait <= max_wait then
    l[part] = after
    l['n' .. part] = l['n' .. part] + 1
    ticket = l['n' .. part]
    granted, write = 1, true
  else
    ticket = 0
  end
elseif op == 'refund' then
  if part ~= 'r' then part = 's' end
  -- Back if nobody drew since, or nobody waits (see level.rs).
  local before = l[part]
  if l['n' .. part] == ticket or before >= 0 then
    l[part] = math.min(before + cost, cap[part])
  end
  returned = l[part] - before
  ticket, write = 0, true
elseif op == 'pause' then
  l.h = math.max(l.h, now + math.ceil(max_wait))
  l.s, l.r = math.min(l.s, 0), math.min(l.r, 0)
  part, ticket, write = 's', 0, true
else
  part, ticket = 's', 0
end

local f = function(x) return string.format('%.17g', x) end
if write then
  redis.call('HSET', KEYS[1], 's', f(l.s), 'r', f(l.r), 'at', f(l.at),
    'ns', f(l.ns), 'nr', f(l.nr), 'h', f(l.h))
  -- Forget the budget once both buckets would be full again: absent is full.
  local full = math.max(l.h - now, 0) + (cap_s - l.s) / rate_s
  if share > 0 then
    full = math.max(full, math.max(l.h - now, 0) + (cap_r - l.r) / rate_r)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(full / 1000) + 1000)
end
return { part, tostring(granted), f(wait), f(ticket), f(returned), f(l.s), f(l.r), f(l.at),
  f(l.h) }
