-- Shared by every lock script (prepended at load time, after the key table K
-- generated from pipeline/keys.py: no key name is spelled out here). ARGV[1]
-- is the key base, "{tag}:"; every key a script touches starts with it, so all
-- of them live in one Redis Cluster slot. Nothing here runs at load time but
-- definitions: see begin().
--
-- Data layout (K names; see pipeline/keys.py for each key's meaning):
--   writers/readers  zset holder -> lease deadline (ms) per resource
--   line             zset job -> rank, jobs parked behind a resource
--   holder           hash: job, claims, token, state, host, pid, since, expires
--   parked           string: the parked job's record (see park_read)
--   parked_order     list of "<parked-at ms>|<job>", oldest first, for expiry
--                    without a scan (entries of jobs no longer parked are
--                    dropped when they reach the head)
--   holders          zset holder -> deadline, every hold (sweeps, listing)
--   fence            counter: the last fencing token issued
--   parked_count     hash priority -> parked jobs
--   parked_kinds     hash resource kind -> parked jobs first blocked by one
--   events           stream of job events (fields e, j, t, d; x for what a
--                    script adds to the detail d a caller gave)
--   rewake           set of resource ids whose line still needs serving (a
--                    wake that ran out of budget, a job expired while being
--                    served); drained by the next release and by every sweep
--   fair             hash per priority level: the fair-share state (see fair_rank)
-- and of the broker's: a granted job's message goes to its queue's most urgent
-- list (p.q), with a token on the queue's wake list (p.q .. WAKE_SUFFIX, see
-- pipeline/broker/fetch.lua).
--
-- A claim is "<mode>|<capacity>|<rid>", mode x (exclusive) or s (shared);
-- claims of a job are joined by newlines.
-- A rank is priority * 2^44 + a fair-share tag (see fair_rank): lower runs first.
local RANK_STEP = 17592186044416
local WAKE_BUDGET = 256

-- Per call: B, the key base ("{tag}:", ARGV[1]); NOW, the server's time in
-- ms; KEY.<name>, a key of the whole system; <x>key(id), a key of one thing.
-- Set by begin(ARGV), the first thing every script does: as a script (EVAL)
-- the whole file runs per call anyway; as a Redis function the library is
-- loaded once and only begin() runs per call.
local B, NOW, KEY
local wkey, rkey, lkey, hkey, pkey, fkey
local function keyer(name)
  local before, after = B .. K[name][1], K[name][2]
  return function(id) return before .. id .. after end
end
local function begin(argv)
  if argv[1] ~= B then
    B = argv[1]
    KEY = setmetatable({}, {__index = function(known, name)
      local key = B .. K[name]
      known[name] = key
      return key
    end})
    wkey, rkey, lkey = keyer('writers'), keyer('readers'), keyer('line')
    hkey, pkey, fkey = keyer('holder'), keyer('parked'), keyer('fair')
  end
  local T = redis.call('TIME')
  NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
end
local function num(n) return string.format('%.0f', n) end
local US = '\31'
-- The most expired jobs kept for the sweep to report (pipeline.job.revoked).
local EXPIRED_KEPT = 10000

-- A parked job's record is one string of eight fields separated by US:
-- rank, parked-at (ms), holder ('' = the job itself), queue list, the
-- resource it waits for, what blocks it there, claims, stored message (last,
-- so it may hold anything). One string rather than a hash: the message is
-- longer than a compact hash allows, and a full hash costs three times more.
-- A park record that is not one (written by hand, or by something else) is
-- set aside where an operator reads what no worker could use (the list
-- set_aside of pipeline.broker.setaside) and read as no record, so the lines
-- it stands in move on instead of waiting for it forever.
local function set_aside_park(job, raw)
  local why = 'malformed park record'
  redis.call('LPUSH', B .. K.set_aside, cjson.encode({at = NOW / 1000, queue = 'parked ' .. job,
             reason = why, raw = raw, encoding = 'utf-8', size = #raw}))
  redis.call('HINCRBY', B .. K.set_aside_count, why, 1)
  redis.call('HINCRBY', B .. K.set_aside_count, 'total', 1)
  redis.call('DEL', pkey(job))
  return nil
end

local function park_read(job)
  local s = redis.pcall('GET', pkey(job))
  if type(s) == 'table' and s.err then
    return set_aside_park(job, 'a key of type ' .. redis.call('TYPE', pkey(job)).ok)
  end
  if not s then return nil end
  local f, pos = {}, 1
  for i = 1, 7 do
    local e = string.find(s, US, pos, true)
    if not e then return set_aside_park(job, s) end
    f[i] = string.sub(s, pos, e - 1)
    pos = e + 1
  end
  local rank, since = tonumber(f[1]), tonumber(f[2])
  if not rank or not since then return set_aside_park(job, s) end
  local holder = f[3]
  if holder == '' then holder = job end
  return {rank = rank, since = since, holder = holder, q = f[4],
          res = f[5], by = f[6], claims = f[7], msg = string.sub(s, pos)}
end

local function park_write(job, p)
  local holder = p.holder
  if holder == job then holder = '' end
  redis.call('SET', pkey(job), table.concat(
    {num(p.rank), num(p.since), holder, p.q, p.res, p.by, p.claims, p.msg}, US))
end

-- The stored message as the broker needs it: a message stored without its
-- correlation id and delivery tag (pipeline.messages.envelope.envelope with
-- complete=False: 110 bytes less per parked job) gets them here.
local function deliverable(msg, job, token)
  -- Only the end of the message tells: a name or header anywhere in it may
  -- contain any text.
  if not string.find(msg, '"priority":%d+}}$') then return msg end
  local id = cjson.encode(job)
  return string.sub(msg, 1, -3) .. ',"correlation_id":' .. id .. ',"delivery_tag":' ..
         cjson.encode(job .. '.' .. token) .. '}}'
end

local function parse_claims(text)
  local out = {}
  for line in string.gmatch(text, '[^\n]+') do
    local mode, cap, rid = string.match(line, '^([xs])|(%d+)|(.+)$')
    -- A line that is no claim (a record written by something else) claims nothing.
    if mode then out[#out + 1] = {rid, mode, tonumber(cap)} end
  end
  return out
end

local function holding_key(c)
  if c[2] == 's' then return rkey(c[1]) end
  return wkey(c[1])
end

local function emit(maxlen, etype, job, detail)
  redis.call('XADD', KEY.events, 'MAXLEN', '~', maxlen, '*',
             'e', etype, 'j', job, 't', NOW, 'd', detail)
end

-- Drop holders of <key> whose lease ran out; returns how many are left.
local function live_count(key)
  local n = redis.call('ZCARD', key)
  if n == 0 then return 0 end
  return n - redis.call('ZREMRANGEBYSCORE', key, '-inf', NOW)
end

local function first_member(key)
  local m = redis.call('ZRANGE', key, 0, 0)
  return m[1] or ''
end

-- Can claim c be granted now to job <job> of rank <rank>? Capacity first,
-- then order: nobody ranked ahead of the job may wait in the resource's line.
-- Returns nil when it can, else the id blocking it (a holder or a waiter).
-- <has_line>: whether the resource's line exists (nil: look). Only models
-- have readers (shared claims), so only their readers are looked at.
local function blocker(c, job, rank, has_line)
  local rid, mode, cap = c[1], c[2], c[3]
  local wk = wkey(rid)
  local nw = redis.call('ZCARD', wk)
  if nw > 0 and (mode == 's' or nw >= cap) then
    nw = live_count(wk)
  end
  if mode == 's' then
    if nw > 0 then return first_member(wk) end
  else
    if nw >= cap then return first_member(wk) end
    if string.sub(rid, 1, 6) == 'model:' then
      local rk = rkey(rid)
      if redis.call('EXISTS', rk) == 1 and live_count(rk) > 0 then
        return first_member(rk)
      end
    end
  end
  local lk = lkey(rid)
  if has_line == nil then has_line = redis.call('EXISTS', lk) == 1 end
  if has_line then
    while true do
      local ahead = redis.call('ZRANGEBYSCORE', lk, '-inf', '(' .. num(rank), 'LIMIT', 0, 1)
      if not ahead[1] or ahead[1] == job then break end
      if park_read(ahead[1]) then return ahead[1] end
      -- No record (or none that reads): nobody waits there; the line moves on.
      redis.call('ZREM', lk, ahead[1])
    end
  end
  return nil
end

-- Record holder <h> on every claim until <deadline>; returns its fencing token.
local function grant(h, job, claims_text, claims, deadline, state, host, pid)
  for _, c in ipairs(claims) do
    redis.call('ZADD', holding_key(c), deadline, h)
  end
  -- A token never falls behind the server's clock (ms): a primary promoted
  -- after a failover that lost the dead primary's last grants (asynchronous
  -- replication) starts past every token that one handed out, as long as the
  -- failover outlasts the clock skew between the two and grants stay under
  -- one per millisecond on average (see docs/reliability.md).
  local token = redis.call('INCR', KEY.fence)
  if token < NOW then
    token = NOW
    redis.call('SET', KEY.fence, token)
  end
  local hk = hkey(h)
  redis.call('HSET', hk, 'job', job, 'claims', claims_text, 'token', token,
             'state', state, 'host', host, 'pid', pid, 'since', NOW, 'expires', deadline)
  redis.call('PEXPIRE', hk, (deadline - NOW) * 3 + 60000)
  redis.call('ZADD', KEY.holders, deadline, h)
  return token
end

-- Whether <holder> still holds every claim under a lease that has not run out.
local function hold_alive(holder, claims)
  for _, c in ipairs(claims) do
    local s = redis.call('ZSCORE', holding_key(c), holder)
    if not s or tonumber(s) <= NOW then return false end
  end
  return true
end

-- The resource ids of <claims> (a list; cjson encodes it as an array).
local function rids_of(claims)
  local r = {}
  for i, c in ipairs(claims) do r[i] = c[1] end
  return r
end

-- The kind of resource id <rid>: 'user', 'model', 'project' or 'global'.
local function kind_of(rid)
  return string.match(rid, '^([^:]+):') or rid
end

-- Count parked job(s) whose first blocking resource is <rid> (delta +1 / -1).
local function count_blocking(rid, delta)
  if rid ~= '' then redis.call('HINCRBY', KEY.parked_kinds, kind_of(rid), delta) end
end

-- Fair share: within one priority level, parked jobs of different projects
-- wake in turn, by start-time fair queueing. A parked job's rank is
-- priority * 2^44 + its tag. Each flow (a project, or '' for the jobs without
-- one) keeps the (submitted us, tag) pairs of its last FAIR_RING parked jobs:
-- * a job submitted after all of them gets max(V, last tag + FAIR_Q), V being
--   the tag of the level's last job handed its locks: a flow with a backlog
--   takes one turn per job, a flow that was idle starts at the current turn
--   (no credit for the time it was idle);
-- * a job submitted before some of them (delivered out of order) gets a tag
--   between its neighbours by submission, so each flow stays FIFO.
-- The hash of a level is reset when a job parks at a level with no job parked,
-- so tags stay small: below 2^44 for 2^34 turns of a level that never drains.
local FAIR_Q, FAIR_RING, FAIR_BASE = 1024, 16, 1048576

local function flow_of(claims)
  for _, c in ipairs(claims) do
    if string.sub(c[1], 1, 8) == 'project:' then return c[1] end
  end
  return ''
end

local function ring_read(text)
  local ring = {}
  for s, t in string.gmatch(text or '', '(%d+):(%d+)') do
    ring[#ring + 1] = {tonumber(s), tonumber(t)}
  end
  return ring
end

local function ring_text(ring)
  local parts = {}
  for i, e in ipairs(ring) do parts[i] = num(e[1]) .. ':' .. num(e[2]) end
  return table.concat(parts, ',')
end

-- The rank of a job of priority <prio> with <claims>, submitted at <submitted>
-- (us); with <commit> its flow remembers the tag (the job parks).
local function fair_rank(prio, claims, submitted, commit)
  local key, flow = fkey(prio), flow_of(claims)
  local v, ring = FAIR_BASE, {}
  if (tonumber(redis.call('HGET', KEY.parked_count, prio)) or 0) <= 0 then
    if commit then redis.call('DEL', key) end
  else
    local got = redis.call('HMGET', key, 'V', flow)
    v, ring = tonumber(got[1]) or FAIR_BASE, ring_read(got[2])
  end
  local n, tag, at = #ring, v, #ring + 1
  if n > 0 and submitted >= ring[n][1] then
    tag = math.max(v, ring[n][2] + FAIR_Q)
  elseif n > 0 then
    at = 1
    while ring[at][1] <= submitted do at = at + 1 end
    if at > 1 then
      tag = math.floor((ring[at - 1][2] + ring[at][2]) / 2)
    else
      tag = math.max(0, ring[1][2] - FAIR_Q / 64)
    end
  end
  if commit then
    table.insert(ring, at, {submitted, tag})
    if #ring > FAIR_RING then table.remove(ring, 1) end
    redis.call('HSET', key, flow, ring_text(ring))
  end
  return prio * RANK_STEP + tag
end

-- A parked job of rank <rank> was handed its locks: the level's turn moves on.
local function fair_served(rank)
  local prio = math.floor(rank / RANK_STEP)
  local key, tag = fkey(prio), rank - prio * RANK_STEP
  local v = tonumber(redis.call('HGET', key, 'V'))
  if not v or tag > v then redis.call('HSET', key, 'V', num(tag)) end
end

-- Forget parked job <job> (record <p>): its lines, its record, the counters.
local function unpark(job, p, claims)
  for _, c in ipairs(claims) do redis.call('ZREM', lkey(c[1]), job) end
  redis.call('DEL', pkey(job))
  redis.call('HINCRBY', KEY.parked_count, math.floor(p.rank / RANK_STEP), -1)
  count_blocking(p.res, -1)
end

-- End the wait of parked job <job> without running it (expired, cancelled).
-- Returns its claims (the caller wakes their lines), or nil if not parked.
local function drop_parked(job, etype, detail, maxlen)
  local p = park_read(job)
  if not p then return nil end
  local claims = parse_claims(p.claims)
  unpark(job, p, claims)
  emit(maxlen, etype, job, detail)
  if etype == 'expired' then
    -- The sweep marks it REVOKED in the result backend (pipeline.job.revoked), with
    -- the workflow steps its message carries; bounded like the event stream.
    redis.call('RPUSH', KEY.expired, job .. US .. p.msg)
    redis.call('LTRIM', KEY.expired, -EXPIRED_KEPT, -1)
  end
  return claims
end

-- Hand free capacity of <rid> to the jobs parked behind it, in rank order.
-- A job is granted only when all of its claims can be; one that is still
-- blocked elsewhere moves to the line of what blocks it. cfg: grant_ms,
-- wait_ms, maxlen.
local function wake(rid, cfg)
  local lk = lkey(rid)
  for step = 1, WAKE_BUDGET + 1 do
    if step > WAKE_BUDGET then
      -- Bounded work per call: the rest of this line is served later.
      redis.call('SADD', KEY.rewake, rid)
      return
    end
    local head = redis.call('ZRANGE', lk, 0, 0)
    local job = head[1]
    if not job then return end
    local p = park_read(job)
    if not p then
      redis.call('ZREM', lk, job)
    elseif cfg.wait_ms > 0 and NOW - p.since > cfg.wait_ms then
      local expired = drop_parked(job, 'expired', cjson.encode({
        reason = 'waited longer than the wait timeout for ' .. rid,
        waited = (NOW - p.since) / 1000}), cfg.maxlen)
      -- Its other lines move up too (later: no recursion here).
      for _, c in ipairs(expired) do
        if c[1] ~= rid then redis.call('SADD', KEY.rewake, c[1]) end
      end
    else
      local claims = parse_claims(p.claims)
      local stuck_here, first_rid, first_by = false, nil, nil
      for _, c in ipairs(claims) do
        local by = blocker(c, job, p.rank)
        if by then
          redis.call('ZADD', lkey(c[1]), num(p.rank), job)
          if c[1] == rid then stuck_here = true end
          if not first_rid then first_rid, first_by = c[1], by end
        end
      end
      if not first_rid then
        local token = grant(p.holder, job, p.claims, claims, NOW + cfg.grant_ms, 'granted', '', '')
        unpark(job, p, claims)
        fair_served(p.rank)
        redis.call('RPUSH', p.q, deliverable(p.msg, job, token))
        redis.call('LPUSH', p.q .. WAKE_SUFFIX, WAKE_TOKEN)
        emit(cfg.maxlen, 'granted', job, cjson.encode({holder = p.holder, resources = rids_of(claims)}))
      else
        if p.res ~= first_rid or p.by ~= first_by then
          -- Still blocked. By another resource: the audit log says which (a new
          -- holder of the same one is the routine course of a line, not logged).
          if p.res ~= first_rid then
            emit(cfg.maxlen, 'conflict', job, cjson.encode({
              resource = first_rid, holder = first_by, priority = math.floor(p.rank / RANK_STEP)}))
          end
          if kind_of(p.res) ~= kind_of(first_rid) then
            count_blocking(p.res, -1)
            count_blocking(first_rid, 1)
          end
          p.res, p.by = first_rid, first_by
          park_write(job, p)
        end
        if stuck_here then return end
        redis.call('ZREM', lk, job)
      end
    end
  end
end

local function wake_all(claims, cfg)
  if claims then
    for _, c in ipairs(claims) do wake(c[1], cfg) end
  end
end

-- Remove <holder> from every claim it still holds (whatever its deadline);
-- returns the resource ids it really held.
local function drop_hold(holder, claims)
  local freed = {}
  for _, c in ipairs(claims) do
    if redis.call('ZREM', holding_key(c), holder) == 1 then freed[#freed + 1] = c[1] end
  end
  redis.call('DEL', hkey(holder))
  redis.call('ZREM', KEY.holders, holder)
  return freed
end

local function wake_rids(rids, cfg)
  for _, rid in ipairs(rids) do wake(rid, cfg) end
end

-- Serve up to <count> lines left for later (see the rewake set).
local function drain_rewake(count, cfg)
  local rids = redis.call('SPOP', KEY.rewake, count)
  wake_rids(rids, cfg)
  return #rids
end


-- Whether job <job> of priority <prio> can have <claims> (parsed) now, without
-- taking anything. Jobs parked behind a resource whose holder's lease ran out
-- are served first (wake). A job ranks by priority, then by its fair-share
-- tag: within a project (and among jobs without one) by when it was submitted
-- (<submitted>, us), so jobs delivered to two processes at once still queue in
-- submission order; between projects in turn (fair_rank).
-- Returns {blocked = list of {rid, by}, lines = whether any claim has a line,
-- kept = the job's own park record when it has one (a second delivery), or nil}.
-- Shared by take() (a worker's start, an agent's claim) and the broker's fetch
-- (pipeline/broker/park.lua), so both see one resource by one rule.
local function blocking(job, prio, claims, submitted, cfg)
  local lines, has_line = false, {}
  for i, c in ipairs(claims) do
    local rid = c[1]
    has_line[i] = redis.call('EXISTS', lkey(rid)) == 1
    if has_line[i] then
      lines = true
      local wk, rk = wkey(rid), rkey(rid)
      local before = redis.call('ZCARD', wk) + redis.call('ZCARD', rk)
      if before > 0 and live_count(wk) + live_count(rk) < before then wake(rid, cfg) end
    end
  end
  -- A second delivery of a parked job keeps its record and its place in line.
  local kept = lines and park_read(job) or nil
  local rank = 0  -- only lines read it
  if kept then
    rank = kept.rank
  elseif lines then
    rank = fair_rank(prio, claims, submitted, false)
  end
  local blocked = {}
  for i, c in ipairs(claims) do
    local by = blocker(c, job, rank, has_line[i])
    if by then blocked[#blocked + 1] = {c[1], by} end
  end
  return {blocked = blocked, lines = lines, kept = kept}
end

-- Park job <job> that blocking() found blocked (<found>): in the line of
-- everything that blocks it, by rank (ties: by job id, as sorted sets order
-- equal scores), with its message <msg>, which the release that hands it its
-- locks pushes back to <queue> (wake). p: job, holder, prio, claims (text),
-- parsed (the parsed claims), submitted (us), queue, msg, task and host (they
-- label the park's event), cfg.
-- Returns the job's position in the line of the first resource blocking it.
local function park(p, found)
  local job, prio, blocked = p.job, p.prio, found.blocked
  local kept = found.kept
  if not found.lines then kept = park_read(job) end
  local rank
  if kept then
    rank = kept.rank
  else
    rank = fair_rank(prio, p.parsed, p.submitted, true)
  end
  for _, b in ipairs(blocked) do redis.call('ZADD', lkey(b[1]), num(rank), job) end
  if not kept then
    park_write(job, {rank = rank, since = NOW, holder = p.holder, q = p.queue, res = blocked[1][1],
                     by = blocked[1][2], claims = p.claims, msg = p.msg})
    redis.call('HINCRBY', KEY.parked_count, prio, 1)
    count_blocking(blocked[1][1], 1)
    redis.call('RPUSH', KEY.parked_order, num(NOW) .. '|' .. job)
  end
  local position = redis.call('ZRANK', lkey(blocked[1][1]), job) + 1
  -- The reason is left to readers (pipeline.locks.ticket.blocked_reason): shorter
  -- events, and the stream holds one per parked job until it is recorded.
  -- The task and the worker's host label the park in metrics.
  emit(p.cfg.maxlen, 'blocked', job, cjson.encode({
    resource = blocked[1][1], holder = blocked[1][2], position = position, priority = prio,
    task = p.task, host = p.host}))
  return position
end
