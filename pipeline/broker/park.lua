-- Parking in the fetch (see pipeline/broker/parking.py): a job whose
-- resources are visibly held is parked by the very call that takes its
-- message off its queue (fetch.lua), with the lock scripts' own blocking()
-- and park() (lib.lua, put in front of this file with the key table K): the
-- same park record, lines, counters, fair rank and 'blocked' event as a job
-- parked by acquire.lua, and no pool process ever sees the job. Nothing is
-- taken here: locks are only taken when a job starts (before_start).
--
-- Only a job whose claims are exactly those its start would take is parked:
-- one published by the pipeline (its header, a version this worker reads),
-- running under its own hold (no workflow, no guest, no agent pool), with no
-- ETA or expiry, not a copy to check (redelivered, rechecked), not cancelled,
-- neither held nor parked already, its ids and names free of control
-- characters. Anything else is delivered as before.

local CONTROL_CHARS = '[%z\1-\31\127]'

local function absent(v) return v == nil or v == cjson.null end

-- Whether every byte-string a sorts before b (Python's str order on UTF-8):
-- Lua's own '<' follows the server's locale.
local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function claim_before(a, b)
  if a[1] ~= b[1] then return bytes_less(a[1], b[1]) end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end

-- A header field that must be a string or absent: the string, false when
-- absent, nil when it is anything else.
local function text_field(v)
  if absent(v) then return false end
  if type(v) ~= 'string' then return nil end
  return v
end

-- A header list of names (absent: none); nil when it is anything else.
local function names_field(v)
  if absent(v) then return {} end
  if type(v) ~= 'table' then return nil end
  local count = 0
  for k, x in pairs(v) do
    count = count + 1
    if type(k) ~= 'number' or type(x) ~= 'string' then return nil end
  end
  if count ~= #v then return nil end
  return v
end

-- The claims a job of header <h> takes under capacities <caps> (user,
-- project, model, global; 0 = not locked), as pipeline.locks.resources.claims
-- computes them: text (claims_text) and parsed (parse_claims). nil when the
-- header's fields are not what the worker reads.
local function header_claims(h, caps)
  local user, project = text_field(h.user), text_field(h.project)
  local models, shared = names_field(h.models), names_field(h.shared_models)
  if user == nil or project == nil or not models or not shared then return nil end
  local out = {}
  if user and caps.user > 0 then out[#out + 1] = {'user:' .. user, 'x', caps.user} end
  if project and caps.project > 0 then
    out[#out + 1] = {'project:' .. project, 'x', caps.project}
  end
  if caps.model > 0 then
    for _, m in ipairs(models) do out[#out + 1] = {'model:' .. m, 'x', caps.model} end
    for _, m in ipairs(shared) do out[#out + 1] = {'model:' .. m, 's', caps.model} end
  end
  if caps.global > 0 then out[#out + 1] = {'global', 'x', caps.global} end
  table.sort(out, claim_before)
  local lines = {}
  for i, c in ipairs(out) do
    if string.find(c[1], CONTROL_CHARS) then return nil end
    lines[i] = c[2] .. '|' .. string.format('%d', c[3]) .. '|' .. c[1]
  end
  return table.concat(lines, '\n'), out
end

-- The park of message <msg> (decoded) as park() takes it, with its claims
-- parsed; nil when the job is no job to park here (see the top of the file).
local function park_plan(msg, PARK)
  if msg['content-type'] ~= 'application/json' then return nil end
  local h, props = msg.headers, msg.properties
  if type(h) ~= 'table' or type(props) ~= 'table' then return nil end
  local header = h[PARK.header]
  if type(header) ~= 'table' then return nil end
  local version = header.version
  if type(version) ~= 'number' or version < 1 or version > PARK.version or version % 1 ~= 0 then
    return nil
  end
  if not absent(header.workflow) or not absent(header.pool) or not absent(header.step)
      or not absent(h.eta) or not absent(h.expires) or not absent(h[PARK.recheck])
      or not absent(h.redelivered) then
    return nil
  end
  local info = props.delivery_info
  if type(info) == 'table' and not absent(info.redelivered) then return nil end
  local job, task, prio = h.id, h.task, props.priority
  if type(job) ~= 'string' or job == '' or string.find(job, CONTROL_CHARS)
      or type(task) ~= 'string' then
    return nil
  end
  if type(prio) ~= 'number' or prio % 1 ~= 0 or prio < 0 or prio > 9 then return nil end
  local submitted_at = header.submitted_at
  if absent(submitted_at) then submitted_at = 0 end
  if type(submitted_at) ~= 'number' then return nil end
  local claims_text, claims = header_claims(header, PARK.caps)
  if not claims_text or #claims == 0 then return nil end
  -- As take() reads its submitted_ms: in microseconds, now when unknown.
  local submitted = math.floor(submitted_at * 1000 * 1000)
  if submitted <= 0 or submitted > NOW * 1000 then submitted = NOW * 1000 end
  return {job = job, holder = job, prio = prio, claims = claims_text, parsed = claims,
          submitted = submitted, task = task, host = PARK.host, cfg = PARK.cfg}
end

-- Park the job of <item> (<msg> decoded) taken off <queue> (its most urgent
-- list) if its resources are visibly held. Returns {job, task, resource,
-- blocked by, position, ignore_result ('1', '0', '' = the task's own)} when it
-- parked it, else nil (deliver it).
local function park_in_fetch(item, msg, queue, PARK)
  local plan = park_plan(msg, PARK)
  if not plan then return nil end
  local job = plan.job
  local found = blocking(job, plan.prio, plan.parsed, plan.submitted, plan.cfg)
  if #found.blocked == 0 then return nil end
  -- Looked at only now, to keep the common case (nothing blocks) cheap: a job
  -- handed its locks (its own hold blocks it), a second delivery of a parked
  -- one, a cancelled one: their start handles them.
  if redis.call('EXISTS', hkey(job)) == 1 or found.kept or redis.call('EXISTS', pkey(job)) == 1
      or redis.call('ZSCORE', KEY.cancelled, job) then
    return nil
  end
  plan.queue, plan.msg = queue, item
  local position = park(plan, found)
  local ignore = msg.headers.ignore_result
  ignore = (ignore == true and '1') or (ignore == false and '0') or ''
  return {job, plan.task, found.blocked[1][1], found.blocked[1][2], position, ignore}
end
