-- Claim, for one agent, the most urgent job of an agent pool whose locks can all
-- be taken (pipeline.remote.claims). The pool's messages are taken off its
-- lists most urgent list first, FIFO within one (kombu pushes left and pops
-- right); each is given to take() (take.lua), the rule a worker's start
-- follows: granted with a lease, or parked in the lines of what blocks it, to
-- come back to the front of the pool when a release hands it its locks.
-- ARGV: base, pool, queue (the pool's broker queue), agent, host (what the hold
--       names as its host: the agent), lease_ms, secret
--       (the random part of the lease token), capacities of user, project,
--       model and global (the claiming process's settings, as a worker uses
--       its own), default priority, grant_ms, wait_ms, maxlen, budget (the
--       most messages one call looks at), then the queue's lists, most
--       urgent first.
-- Returns
--   {1, job, token, lease, deadline, msg, holder, resources, notes}: claimed;
--   {0, notes, next_due}: nothing claimable now (next_due: when the next
--       delayed job is due, ms, or -1);
--   {2, notes}: the budget ran out with messages left: call again.
-- notes: a flat list of (kind, job, text) for the caller to report: 'parked'
-- (JSON: resource, blocked_by, position), 'cancelled' (its message), 'expired'.
local pool, queue, agent, host = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lease_ms, secret = tonumber(ARGV[6]), ARGV[7]
local caps = {user = tonumber(ARGV[8]), project = tonumber(ARGV[9]),
              model = tonumber(ARGV[10]), global = tonumber(ARGV[11])}
local default_prio = tonumber(ARGV[12])
local cfg = {grant_ms = tonumber(ARGV[13]), wait_ms = tonumber(ARGV[14]), maxlen = ARGV[15]}
local budget = tonumber(ARGV[16])
local lists = {}
for i = 17, #ARGV do lists[#lists + 1] = ARGV[i] end
local wake = lists[1] .. WAKE_SUFFIX
local notes = {}

local function note(kind, job, text)
  notes[#notes + 1] = kind
  notes[#notes + 1] = job
  notes[#notes + 1] = text
end

local function text_of(v)
  if type(v) == 'string' and v ~= '' then return v end
  return nil
end

local function names_of(v)
  local out = {}
  if type(v) == 'table' then
    for _, n in ipairs(v) do
      if type(n) == 'string' then out[#out + 1] = n end
    end
  end
  return out
end

-- The claims of a job whose pipeline header is <h>: pipeline.locks.resources.claims
-- under the capacities given (a kind of capacity 0 is not locked).
local function claims_of(h)
  local out = {}
  local function add(mode, cap, rid)
    if cap > 0 then out[#out + 1] = {rid, mode, cap} end
  end
  if text_of(h.user) then add('x', caps.user, 'user:' .. h.user) end
  if text_of(h.project) then add('x', caps.project, 'project:' .. h.project) end
  for _, m in ipairs(names_of(h.models)) do add('x', caps.model, 'model:' .. m) end
  for _, m in ipairs(names_of(h.shared_models)) do add('s', caps.model, 'model:' .. m) end
  add('x', caps.global, 'global')
  table.sort(out, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  return out
end

-- Look at one message taken off list number <index>: the claim's reply when
-- the job is claimed, else nil (it was parked, delayed, dropped or set aside).
local function consider(item, index)
  local ok, m = pcall(cjson.decode, item)
  local headers = ok and type(m) == 'table' and m.headers
  if type(headers) ~= 'table' or not text_of(headers.id) then
    set_aside_item(queue, 'not a task message', item)
    return nil
  end
  local job = headers.id
  local h = type(headers.pipeline) == 'table' and headers.pipeline or {}
  local not_before = tonumber(h.not_before)
  if not_before and not_before * 1000 > NOW then
    delay(queue, index, item, not_before * 1000)
    return nil
  end
  local expires_at = tonumber(h.expires_at)
  if expires_at and expires_at * 1000 <= NOW then
    -- As a worker drops an expired message: REVOKED by the caller (pipeline.job.revoked).
    emit(cfg.maxlen, 'expired', job, cjson.encode({
      reason = 'its expiry passed before an agent of pool ' .. pool .. ' claimed it'}))
    redis.call('RPUSH', KEY.expired, job .. US .. item)
    redis.call('LTRIM', KEY.expired, -EXPIRED_KEPT, -1)
    note('expired', job, '')
    return nil
  end
  local props = type(m.properties) == 'table' and m.properties or {}
  local prio = tonumber(props.priority) or default_prio
  local claims = claims_of(h)
  local texts, rids = {}, {}
  for i, c in ipairs(claims) do
    texts[i] = c[2] .. '|' .. c[3] .. '|' .. c[1]
    rids[i] = c[1]
  end
  local models = names_of(h.models)
  for _, n in ipairs(names_of(h.shared_models)) do models[#models + 1] = n end
  local holder = text_of(h.workflow) or job
  local detail = cjson.encode({task = text_of(headers.task),
    priority = tonumber(h.priority) or prio, attempt = (tonumber(headers.retries) or 0) + 1,
    user = text_of(h.user), project = text_of(h.project), models = models,
    workflow = text_of(h.workflow), queued_at = tonumber(h.submitted_at),
    agent = agent, pool = pool})
  local reply = take({job = job, holder = holder, lease = lease_ms, prio = prio,
    claims = table.concat(texts, '\n'), host = host, pid = '', detail = detail,
    msg = item, queue = lists[1], cfg = cfg,
    submitted_ms = (tonumber(h.submitted_at) or 0) * 1000,
    step = (tonumber(h.step) or 0) > 1, resources = cjson.encode(rids), guest = false,
    agent = agent, pool = pool})
  local status = tonumber(reply[1])
  if status == 1 or status == 3 then
    local token = tostring(reply[2])
    local deadline = NOW + lease_ms
    local lease = token .. '.' .. secret
    redis.call('HSET', lease_key(job), 'lease', lease, 'token', token, 'holder', reply[4],
               'agent', agent, 'pool', pool, 'msg', item, 'q', lists[index], 'w', wake,
               'claimed', NOW, 'started', '', 'expires', deadline)
    redis.call('ZADD', KEY.leases, deadline, job)
    return {1, job, token, lease, deadline, item, reply[4], reply[3], notes}
  elseif status == 0 then
    note('parked', job, cjson.encode({resource = reply[2], blocked_by = reply[3],
                                      position = reply[4]}))
  elseif status == 2 then
    -- The job runs under a live lease already (it was published twice): this
    -- copy is looked at again after one lease, when that run has ended or lost it.
    delay(queue, index, item, NOW + lease_ms)
  elseif status == 5 then
    note('cancelled', job, item)
  else
    -- 4: a guest whose parent's hold does not cover it (pool jobs are no guests).
    set_aside_item(queue, 'a pool job under a hold that does not cover it', item)
  end
  return nil
end

-- The pool's wake tokens (one per message pushed; a long-polling agent waits on
-- them, see pipeline.api.agents): never more than the messages left, and one
-- while any is left, so every waiting agent a message can serve is woken.
local function settle_tokens()
  local left = 0
  for _, list in ipairs(lists) do left = left + redis.call('LLEN', list) end
  if left == 0 then
    redis.call('DEL', wake)
    return 0
  end
  local tokens = redis.call('LLEN', wake)
  if tokens > left then
    redis.call('LTRIM', wake, 0, left - 1)
  elseif tokens == 0 then
    redis.call('LPUSH', wake, WAKE_TOKEN)
  end
  return left
end

redis.call('SADD', KEY.pools, pool)
-- The claim path serves the jobs of silent agents too, not only the beat sweep.
expire_leases(16, cfg)
promote_due(queue, lists, wake)
for _ = 1, budget do
  local item, index
  for i, list in ipairs(lists) do
    item = redis.call('RPOP', list)
    if item then
      index = i
      break
    end
  end
  if not item then
    -- Every list is empty: the tokens left are stale (as in fetch.lua).
    redis.call('DEL', wake)
    return {0, notes, next_due(queue)}
  end
  local claimed = consider(item, index)
  if claimed then
    settle_tokens()
    return claimed
  end
end
if settle_tokens() > 0 then return {2, notes} end
return {0, notes, next_due(queue)}
