-- take(t): take every claim of a job at once, or park it. All or nothing.
-- Shared by acquire.lua (a worker starting a job) and claim.lua (an agent
-- claiming one over HTTP), so both contend for one resource by one rule.
-- t: job, holder, lease (ms), prio, claims (text), host, pid,
--    detail (the started event's d, a JSON object; the hold's facts go in x),
--    msg (the message to park with; '' = do not park), queue (the list a
--    hand-off pushes it to), cfg {grant_ms, wait_ms, maxlen},
--    submitted_ms (when the job was published, with its fraction of a ms;
--    0 = unknown, use now),
--    step (true for a later step of a workflow: it takes the hold over even
--    while the previous step is still finishing),
--    resources (JSON array of the claims' resource ids),
--    guest (true for a job published inside a running job whose hold it
--    hopes to run under: <holder> is that job's hold),
--    agent, pool (an agent's claim: written into the started event's x).
-- Returns {1, token, resources, holder[, granted_at]} taken (the holder is the
-- job's own id for a guest whose parent's hold is gone; granted_at, in ms, when
-- a release handed the job its locks while it was parked); {3, token, resources, holder}
-- running as a guest of the running job that holds for <holder>; {0, rid, by, position}
-- blocked (position 0 when not parked because no msg was given); {2} the job
-- already runs elsewhere; {4, holder} the hold of <holder> runs but does not
-- cover the job; {5} the job (or its workflow) was cancelled: drop it.
local function take(t)
  local job, holder = t.job, t.holder
  local lease, prio = t.lease, t.prio
  local claims_text, host, pid = t.claims, t.host, t.pid
  local detail, maxlen, msg, queue = t.detail, t.cfg.maxlen, t.msg, t.queue
  local cfg = t.cfg
  -- In microseconds: jobs published within one millisecond keep their order.
  local submitted = math.floor(t.submitted_ms * 1000)
  if submitted <= 0 or submitted > NOW * 1000 then submitted = NOW * 1000 end
  local is_step, resources, is_guest = t.step, t.resources, t.guest
  local claims = parse_claims(claims_text)
  local deadline = NOW + lease

  -- The started event: the caller's detail as given, the hold's facts in x.
  local function started(token, rids, resources_text, guest_of)
    redis.call('XADD', KEY.events, 'MAXLEN', '~', maxlen, '*', 'e', 'started', 'j', job,
               't', NOW, 'd', detail, 'x', cjson.encode({holder = holder, resources = rids,
               token = tonumber(token), host = host, pid = pid, guest_of = guest_of,
               agent = t.agent, pool = t.pool}))
    return {1, token, resources_text, holder}
  end

  -- 0. Cancelled while it waited in the broker (or its workflow was).
  local cancelled = KEY.cancelled
  if redis.call('ZSCORE', cancelled, job) or (holder ~= job and redis.call('ZSCORE', cancelled, holder)) then
    -- A cancelled workflow's next step: the hold it kept between steps goes too
    -- (never a hold a step still runs under: that step ends it).
    local kept = redis.call('HMGET', hkey(holder), 'claims', 'state')
    if holder ~= job and kept[1] and kept[2] ~= 'running' then
      wake_rids(drop_hold(holder, parse_claims(kept[1])), cfg)
    end
    emit(maxlen, 'cancelled', job, '{"reason":"cancelled before it started"}')
    return {5}
  end

  -- 1. The holder already holds: a job handed its locks at release, the next
  --    step of a workflow, or a job started inside a running step.
  local hk = hkey(holder)
  local rec = redis.call('HMGET', hk, 'claims', 'token', 'state', 'job', 'since')
  if rec[1] then
    local held = parse_claims(rec[1])
    local alive = hold_alive(holder, held)
    local covered = alive
    if alive then
      local have = {}
      for _, c in ipairs(held) do have[c[2] .. c[1]] = true end
      for _, c in ipairs(claims) do
        if not have[c[2] .. c[1]] and not have['x' .. c[1]] then covered = false break end
      end
    end
    if alive and rec[3] == 'running' and rec[4] == job then return {2} end
    local held_rids = rids_of(held)
    if alive and is_guest and rec[4] ~= job then
      -- A guest (a job published inside a running job whose hold covers it):
      -- runs under the hold, which stays until its owner and every guest ended.
      if covered then
        redis.call('HINCRBY', hk, 'guests', 1)
        local reply = started(rec[2], held_rids, cjson.encode(held_rids), rec[4])
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
      redis.call('ZADD', KEY.holders, deadline, holder)
      local reply = started(rec[2], held_rids, cjson.encode(held_rids))
      -- Handed its locks by a release (not the next step of a workflow): when.
      if rec[3] == 'granted' then reply[5] = rec[5] or '' end
      return reply
    end
    -- The hold ran out or does not cover the job: drop what is left of it.
    wake_rids(drop_hold(holder, held), cfg)
  end
  -- A guest whose parent's hold is gone is a job of its own.
  if is_guest then holder = job end

  -- 2. All or nothing (blocking() in lib.lua says what blocks the job).
  local found = blocking(job, prio, claims, submitted, cfg)
  local blocked = found.blocked
  if #blocked == 0 then
    return started(grant(holder, job, claims_text, claims, deadline, 'running', host, pid),
                   rids_of(claims), resources)
  end
  if msg == '' then return {0, blocked[1][1], blocked[1][2], 0} end

  -- 3. Park (park() in lib.lua). The task labels the park in metrics (the
  --    started detail has it).
  local ok, started_detail = pcall(cjson.decode, detail)
  local task = ok and type(started_detail) == 'table' and started_detail.task or nil
  local position = park({job = job, holder = holder, prio = prio, claims = claims_text,
                         parsed = claims, submitted = submitted, queue = queue, msg = msg,
                         task = task, host = host, cfg = cfg}, found)
  return {0, blocked[1][1], blocked[1][2], position}
end
