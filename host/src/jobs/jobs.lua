-- warmlane jobs: the state changes that must be atomic, one per op.
--
-- Every key of one lane — its stream, its job sets, and every key of its
-- jobs — carries the lane's hash tag ({light} or {heavy}), so each call
-- touches one slot of a Redis Cluster. Keys are passed in KEYS, in the
-- order each op lists.
--
-- Fencing: a batch's result is accepted only from the claim that holds it
-- now — the consumer XPENDING names, with the delivery count it had when it
-- claimed the entry (a takeover increments it). Chunking is fenced by the
-- token in the job's chunk lock and by the job's cursor.
--
-- ARGV[1] is the op. Replies are tables whose first element is a status.
local op = ARGV[1]
local GROUP = 'workers'

-- The entry's current claim is (consumer, deliveries).
local function holds(stream, id, consumer, deliveries)
  local p = redis.call('XPENDING', stream, GROUP, id, id, 1)
  if #p == 0 then return false end
  return p[1][2] == consumer and tonumber(p[1][4]) == tonumber(deliveries)
end

local function expire(keys, ms)
  for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ms) end
end

-- Queues batches next .. next+n-1 of job `id` (of `batches`), as far as
-- the accepting replica has stored them; the places it could not fill yet
-- are owed, and filled as the batches arrive ('store').
local function enqueue(job, stream, id, n)
  local nxt = tonumber(redis.call('HGET', job, 'next'))
  local batches = tonumber(redis.call('HGET', job, 'batches'))
  -- (A job admitted before batches were stored after admission has them all.)
  local stored = tonumber(redis.call('HGET', job, 'stored')) or batches
  local added = 0
  while added < n and nxt < stored do
    redis.call('XADD', stream, '*', 'job', id, 'unit', 'b' .. nxt)
    nxt = nxt + 1
    added = added + 1
  end
  redis.call('HSET', job, 'next', nxt)
  if added < n and nxt < batches then
    redis.call('HINCRBY', job, 'owed', n - added)
  end
  return added
end

if op == 'admit' then
  -- KEYS: job, stream, active, waiting, job:batch (to expire)
  -- ARGV: op, id, now_ms, running, queue, window, ttl_ms, then field/value pairs
  local job, stream, active, waiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local id, now, running, queue = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local window, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
  local n = redis.call('ZCARD', active)
  if n >= running + queue then return { 'full', redis.call('LLEN', waiting) } end
  for i = 8, #ARGV, 2 do redis.call('HSET', job, ARGV[i], ARGV[i + 1]) end
  redis.call('HSET', job, 'next', 0, 'parsed', 0, 'cursor', 0, 'chunks', 0,
    'errors', 0, 'cpu', 0, 'chunk_cpu', 0, 'bytes', 0, 'created', now,
    'stored', 0, 'stored_at', now, 'owed', 0)
  redis.call('ZADD', active, now, id)
  local in_flight = n - redis.call('LLEN', waiting)
  local status
  if in_flight < running then
    status = 'running'
    redis.call('HSET', job, 'status', status)
    enqueue(job, stream, id, window)
  else
    status = 'queued'
    redis.call('HSET', job, 'status', status)
    redis.call('RPUSH', waiting, id)
  end
  expire({ job }, ttl)
  return { 'ok', status }

elseif op == 'store' then
  -- KEYS: job, stream, job:batch
  -- ARGV: op, id, stored, now_ms, ttl_ms, then field/value pairs
  -- Stores one batch of an admitted job (or its pages, or why a page could
  -- not be cut): `stored` batches are there now. Fills the places in the
  -- job's window that waited for it.
  local job, stream, batch = KEYS[1], KEYS[2], KEYS[3]
  local status = redis.call('HGET', job, 'status')
  if status ~= 'running' and status ~= 'queued' then return { 'gone', status or 'missing' } end
  for i = 6, #ARGV, 2 do redis.call('HSET', batch, ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', batch, ARGV[5])
  redis.call('HSET', job, 'stored', ARGV[3], 'stored_at', ARGV[4])
  if status == 'running' then
    local owed = tonumber(redis.call('HGET', job, 'owed')) or 0
    if owed > 0 then
      redis.call('HSET', job, 'owed', 0)
      enqueue(job, stream, ARGV[2], owed)
    end
  end
  return { 'ok' }

elseif op == 'discard' then
  -- KEYS: job, active, waiting, job:batch, job:parsed, job:out, job:errors, job:lock
  -- ARGV: op, id, stalled_before_ms
  -- Forgets a job whose document was never stored whole, when its storing
  -- last moved before `stalled_before_ms`: the replica that accepted it
  -- stopped before it answered, so nobody was given its id.
  local job = KEYS[1]
  local stored, batches = redis.call('HGET', job, 'stored'), redis.call('HGET', job, 'batches')
  if not stored or tonumber(stored) >= tonumber(batches) then return { 'kept' } end
  if tonumber(redis.call('HGET', job, 'stored_at')) >= tonumber(ARGV[3]) then return { 'kept' } end
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('LREM', KEYS[3], 0, ARGV[2])
  redis.call('DEL', job, KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  return { 'ok' }

elseif op == 'promote' then
  -- KEYS: active, waiting.  ARGV: op, running
  -- Pops the next waiting job while fewer than `running` run.
  local active, waiting = KEYS[1], KEYS[2]
  local running = tonumber(ARGV[2])
  if redis.call('ZCARD', active) - redis.call('LLEN', waiting) >= running then return { 'none' } end
  local id = redis.call('LPOP', waiting)
  if not id then return { 'none' } end
  return { 'ok', id }

elseif op == 'start' then
  -- KEYS: job, stream.  ARGV: op, id, window
  local job, stream = KEYS[1], KEYS[2]
  if redis.call('HGET', job, 'status') ~= 'queued' then return { 'not-queued' } end
  redis.call('HSET', job, 'status', 'running')
  enqueue(job, stream, ARGV[2], tonumber(ARGV[3]))
  return { 'ok' }

elseif op == 'complete' then
  -- KEYS: job, stream, parsed, dead
  -- ARGV: op, entry, consumer, deliveries, id, unit, first, count,
  --       outcome ('parsed' | 'split' | 'dead'), results, reason
  local job, stream, parsed, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local entry, consumer, deliveries = ARGV[2], ARGV[3], ARGV[4]
  local id, unit, first, count = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
  local outcome, results = ARGV[9], ARGV[10]
  if not holds(stream, entry, consumer, deliveries) then return { 'fenced' } end
  local function done_with_entry()
    redis.call('XACK', stream, GROUP, entry)
    redis.call('XDEL', stream, entry)
  end
  local status = redis.call('HGET', job, 'status')
  if status ~= 'running' then
    done_with_entry()
    return { 'gone', status or 'missing' }
  end
  if outcome == 'split' then
    for p = first, first + count - 1 do
      redis.call('XADD', stream, '*', 'job', id, 'unit', 'p' .. p)
    end
  else
    redis.call('HSET', parsed, 'u' .. first, results)
    redis.call('HINCRBY', job, 'parsed', count)
    if outcome == 'dead' then
      redis.call('XADD', dead, 'MAXLEN', '~', 10000, '*', 'job', id, 'unit', unit,
        'reason', ARGV[11])
    end
  end
  -- A batch leaves the window: the job's next one takes its place.
  if string.sub(unit, 1, 1) == 'b' then enqueue(job, stream, id, 1) end
  done_with_entry()
  return { 'ok' }

elseif op == 'renew' then
  -- KEYS: stream.  ARGV: op, consumer, then (entry, deliveries) pairs.
  -- Resets the idle time of the entries this claim still holds; returns
  -- those it no longer holds.
  local stream, consumer = KEYS[1], ARGV[2]
  local lost = {}
  for i = 3, #ARGV, 2 do
    if holds(stream, ARGV[i], consumer, ARGV[i + 1]) then
      redis.call('XCLAIM', stream, GROUP, consumer, 0, ARGV[i], 'JUSTID')
    else
      table.insert(lost, ARGV[i])
    end
  end
  return { 'ok', lost }

elseif op == 'handback' then
  -- KEYS: stream.  ARGV: op, entry, consumer, deliveries, idle_ms
  -- Gives an entry up at once: idle past every lease, its delivery count
  -- untouched (it was never worked on), for the next takeover to find.
  local stream = KEYS[1]
  if not holds(stream, ARGV[2], ARGV[3], ARGV[4]) then return { 'fenced' } end
  redis.call('XCLAIM', stream, GROUP, ARGV[3], 0, ARGV[2], 'IDLE', ARGV[5], 'JUSTID')
  return { 'ok' }

elseif op == 'charge' then
  -- KEYS: job.  ARGV: op, field, n
  -- Adds to a counter of a job Redis still holds: never makes the job's
  -- key again once it is gone (expired, or forgotten by a restart).
  if redis.call('HEXISTS', KEYS[1], 'status') == 0 then return { 'gone' } end
  return { 'ok', redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3]) }

elseif op == 'peek' then
  -- KEYS: job, job:parsed
  -- The job's status, chunk cursor and chunker state, and the parsed
  -- pages waiting at the cursor (false if none).
  local f = redis.call('HMGET', KEYS[1], 'status', 'cursor', 'state')
  local waiting = false
  if f[2] then waiting = redis.call('HGET', KEYS[2], 'u' .. f[2]) end
  return { 'ok', f[1] or '', f[2] or '0', f[3] or '', waiting }

elseif op == 'lock' then
  -- KEYS: lock, dirty.  ARGV: op, token, ms
  -- Takes the job's chunk lock, or marks the job dirty so the holder looks
  -- again before it lets go.
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
    redis.call('DEL', KEYS[2])
    return { 'ok' }
  end
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[3])
  return { 'held' }

elseif op == 'unlock' then
  -- KEYS: lock, dirty.  ARGV: op, token
  if redis.call('GET', KEYS[1]) ~= ARGV[2] then return { 'lost' } end
  if redis.call('DEL', KEYS[2]) == 1 then return { 'again' } end
  redis.call('DEL', KEYS[1])
  return { 'released' }

elseif op == 'relock' then
  -- KEYS: lock.  ARGV: op, token, ms
  if redis.call('GET', KEYS[1]) ~= ARGV[2] then return { 'lost' } end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return { 'ok' }

elseif op == 'append' then
  -- KEYS: job, out, errors, lock, parsed, batch, active, finished, results
  -- ARGV: op, token, id, cursor, next_cursor, state, done, now_ms,
  --       retention_ms, batch fields to drop (comma-separated), then
  --       (kind, line) pairs: kind 'c' a chunk, 'e' a page error
  local job, out, errors, lock, parsed, batch = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
  local active, finished, results = KEYS[7], KEYS[8], KEYS[9]
  local token, id, cursor, nxt = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  if redis.call('GET', lock) ~= token then return { 'fenced' } end
  if tonumber(redis.call('HGET', job, 'cursor')) ~= cursor then return { 'fenced' } end
  if redis.call('HGET', job, 'status') ~= 'running' then return { 'gone' } end
  local chunks, errs, bytes = 0, 0, 0
  for i = 11, #ARGV, 2 do
    local kind, line = ARGV[i], ARGV[i + 1]
    redis.call('XADD', out, '*', 'line', line)
    bytes = bytes + #line
    if kind == 'c' then chunks = chunks + 1 else
      errs = errs + 1
      redis.call('RPUSH', errors, line)
    end
  end
  redis.call('HSET', job, 'cursor', nxt, 'state', ARGV[6])
  redis.call('HINCRBY', job, 'chunks', chunks)
  redis.call('HINCRBY', job, 'errors', errs)
  redis.call('HINCRBY', job, 'bytes', bytes)
  redis.call('HINCRBY', results, id, bytes)
  redis.call('HINCRBY', results, '#total', bytes)
  redis.call('HDEL', parsed, 'u' .. cursor)
  if ARGV[10] ~= '' then
    for b in string.gmatch(ARGV[10], '[^,]+') do redis.call('HDEL', batch, b) end
  end
  if ARGV[7] == '1' then
    local now, keep = tonumber(ARGV[8]), tonumber(ARGV[9])
    redis.call('HSET', job, 'status', 'done', 'finished', now)
    redis.call('XADD', out, '*', 'done', 'done')
    redis.call('ZREM', active, id)
    redis.call('ZADD', finished, now, id)
    redis.call('DEL', lock, parsed, batch)
    expire({ job, out, errors }, keep)
    return { 'done' }
  end
  return { 'ok' }

elseif op == 'cancel' then
  -- KEYS: job, out, active, waiting, finished, parsed, batch, lock, errors
  -- ARGV: op, id, now_ms, retention_ms
  local job, out, active, waiting, finished = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  local status = redis.call('HGET', job, 'status')
  if not status then return { 'missing' } end
  if status ~= 'running' and status ~= 'queued' then return { 'ended', status } end
  local now, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
  redis.call('HSET', job, 'status', 'cancelled', 'finished', now)
  redis.call('XADD', out, '*', 'done', 'cancelled')
  redis.call('ZREM', active, ARGV[2])
  redis.call('LREM', waiting, 0, ARGV[2])
  redis.call('ZADD', finished, now, ARGV[2])
  redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
  expire({ job, out, KEYS[9] }, keep)
  return { 'ok' }

elseif op == 'evict' then
  -- KEYS: job, out, errors, finished, results.  ARGV: op, id
  -- Drops a finished job's results; its state says so.
  local job, id = KEYS[1], ARGV[2]
  local status = redis.call('HGET', job, 'status')
  redis.call('ZREM', KEYS[4], id)
  local bytes = tonumber(redis.call('HGET', KEYS[5], id)) or 0
  redis.call('HDEL', KEYS[5], id)
  redis.call('HINCRBY', KEYS[5], '#total', -bytes)
  if status == 'done' or status == 'cancelled' then
    redis.call('HSET', job, 'status', 'evicted', 'bytes', 0)
    redis.call('DEL', KEYS[2], KEYS[3])
  end
  return { 'ok', bytes }

elseif op == 'forget' then
  -- KEYS: finished, results.  ARGV: op, cutoff_ms
  -- Forgets the finished jobs whose keys have expired by now.
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  for _, id in ipairs(ids) do
    local bytes = tonumber(redis.call('HGET', KEYS[2], id)) or 0
    redis.call('HDEL', KEYS[2], id)
    redis.call('HINCRBY', KEYS[2], '#total', -bytes)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  return { 'ok', #ids }
end

return redis.error_reply('unknown op ' .. tostring(op))
