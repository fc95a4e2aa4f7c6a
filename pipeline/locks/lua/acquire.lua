-- Take every claim of a job at once, or park it. All or nothing.
-- ARGV: base, job, holder, lease_ms, priority, claims, host, pid,
--       started detail (json), maxlen, msg, queue list key, grant_ms, wait_ms,
--       submitted_ms (when the job was published; 0 = unknown, use now),
--       step (1 for a later step of a workflow: it takes the hold over even
--       while the previous step is still finishing)
-- Returns {1, tokens, resources} taken; {3, tokens, resources} running as a guest of the running
-- step that holds for <holder>; {0, rid, by, position} blocked (position 0
-- when not parked because no msg was given); {2} the job already runs
-- elsewhere; {4, holder} the hold of <holder> runs but does not cover the job;
-- {5} the job (or its workflow) was cancelled: drop it.
local job, holder = ARGV[2], ARGV[3]
local lease, prio = tonumber(ARGV[4]), tonumber(ARGV[5])
local claims_text, host, pid = ARGV[6], ARGV[7], ARGV[8]
local detail, maxlen, msg, queue = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local cfg = {grant_ms = tonumber(ARGV[13]), wait_ms = tonumber(ARGV[14]), maxlen = maxlen}
local submitted = tonumber(ARGV[15])
local is_step = ARGV[16] == '1'
if submitted <= 0 or submitted > NOW then submitted = NOW end
local claims = parse_claims(claims_text)
local deadline = NOW + lease

local function started(tokens_text)
  local d = cjson.decode(detail)
  local resources = resources_json(claims)
  d.holder, d.resources, d.tokens, d.host, d.pid = holder, resources, tokens_text, host, pid
  emit(maxlen, 'started', job, cjson.encode(d))
  return {1, tokens_text, resources}
end

-- 0. Cancelled while it waited in the broker (or its workflow was).
local cancelled = B .. 'cancelled'
if redis.call('ZSCORE', cancelled, job) or (holder ~= job and redis.call('ZSCORE', cancelled, holder)) then
  -- A cancelled workflow's next step: the hold it kept between steps goes too.
  local kept = redis.call('HGET', hkey(holder), 'claims')
  if holder ~= job and kept then wake_rids(drop_hold(holder, parse_claims(kept)), cfg) end
  emit(maxlen, 'cancelled', job, cjson.encode({reason = 'cancelled before it started'}))
  return {5}
end

-- 1. The holder already holds: a job handed its locks at release, the next
--    step of a workflow, or a job started inside a running step.
local hk = hkey(holder)
local rec = redis.call('HMGET', hk, 'claims', 'tokens', 'state', 'job')
if rec[1] then
  local held = parse_claims(rec[1])
  local alive = true
  for _, c in ipairs(held) do
    local s = redis.call('ZSCORE', holding_key(c), holder)
    if not s or tonumber(s) <= NOW then alive = false break end
  end
  local covered = alive
  if alive then
    local have = {}
    for _, c in ipairs(held) do have[c[2] .. c[1]] = true end
    for _, c in ipairs(claims) do
      if not have[c[2] .. c[1]] and not have['x' .. c[1]] then covered = false break end
    end
  end
  if alive and rec[3] == 'running' and rec[4] == job then return {2} end
  if alive and rec[3] == 'running' and not is_step then
    -- A guest: runs under the running step's hold and leaves it to that step.
    if covered then
      claims = held
      local d = cjson.decode(detail)
      d.guest_of = rec[4]
      detail = cjson.encode(d)
      local reply = started(rec[2])
      reply[1] = 3
      return reply
    end
    return {4, holder}
  end
  if covered then
    for _, c in ipairs(held) do redis.call('ZADD', holding_key(c), 'XX', deadline, holder) end
    redis.call('HSET', hk, 'job', job, 'state', 'running', 'host', host, 'pid', pid,
               'expires', deadline)
    redis.call('PEXPIRE', hk, lease * 3 + 60000)
    redis.call('ZADD', B .. 'holders', deadline, holder)
    claims = held
    return started(rec[2])
  end
  -- The hold ran out or does not cover the job: drop what is left of it.
  wake_rids(drop_hold(holder, held), cfg)
end

-- 2. Holds that ran out are dropped first and their lines served in order.
for _, c in ipairs(claims) do
  local rid = c[1]
  if redis.call('EXISTS', lkey(rid)) == 1 then
    local wk, rk = wkey(rid), rkey(rid)
    local before = redis.call('ZCARD', wk) + redis.call('ZCARD', rk)
    if before > 0 and live_count(wk) + live_count(rk) < before then wake(rid, cfg) end
  end
end

-- 3. All or nothing. A job ranks by priority, then by when it was submitted,
--    so jobs delivered to two processes at once still queue in submission order.
local rank = prio * RANK_STEP + submitted
local blocked = {}
for _, c in ipairs(claims) do
  local by = blocker(c, job, rank)
  if by then blocked[#blocked + 1] = {c[1], by} end
end
if #blocked == 0 then
  local tokens = grant(holder, job, claims_text, claims, deadline, 'running', host, pid)
  return started(table.concat(tokens, ','))
end
if msg == '' then return {0, blocked[1][1], blocked[1][2], 0} end

-- 4. Park: in the line of everything that blocks it, ranked by priority then
--    submission (ties: by job id, as sorted sets order equal scores). The stored message is pushed back to the queue by the release
--    that hands the job its locks.
for _, b in ipairs(blocked) do redis.call('ZADD', lkey(b[1]), num(rank), job) end
redis.call('HSET', pkey(job), 'rank', num(rank), 'claims', claims_text, 'holder', holder,
           'msg', msg, 'q', queue, 'since', NOW, 'res', blocked[1][1], 'by', blocked[1][2])
redis.call('HINCRBY', B .. 'parked:count', prio, 1)
redis.call('ZADD', B .. 'parked:since', NOW, job)
local position = redis.call('ZRANK', lkey(blocked[1][1]), job) + 1
emit(maxlen, 'blocked', job, cjson.encode({
  resource = blocked[1][1], holder = blocked[1][2], position = position, priority = prio,
  reason = 'waiting for ' .. blocked[1][1] .. ' (held by or queued behind ' .. blocked[1][2] .. ')'}))
return {0, blocked[1][1], blocked[1][2], position}
