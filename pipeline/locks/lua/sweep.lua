-- Maintenance: drop holds whose lease ran out (their holder died or stopped)
-- and hand their resources on; expire jobs parked longer than the wait timeout.
-- Never touches a live lease. Safe to run from many processes at once.
-- ARGV: base, grant_ms, wait_ms, maxlen, limit
-- Returns {holds dropped, parked jobs expired, lines served from the rewake set}.
local cfg = {grant_ms = tonumber(ARGV[2]), wait_ms = tonumber(ARGV[3]), maxlen = ARGV[4]}
local limit = tonumber(ARGV[5])
local dead = redis.call('ZRANGEBYSCORE', B .. 'holders', '-inf', NOW, 'LIMIT', 0, limit)
for _, holder in ipairs(dead) do
  local rec = redis.call('HMGET', hkey(holder), 'claims', 'job')
  if rec[1] then
    local claims = parse_claims(rec[1])
    for _, c in ipairs(claims) do
      local key = holding_key(c)
      local s = redis.call('ZSCORE', key, holder)
      if s and tonumber(s) <= NOW then redis.call('ZREM', key, holder) end
    end
    redis.call('DEL', hkey(holder))
    emit(cfg.maxlen, 'lock_lost', rec[2], cjson.encode({holder = holder, resources = rids_of(claims)}))
    -- Wake every line: its entry may have been dropped lazily already, by a
    -- script that had no reason to serve that resource's line.
    wake_rids(rids_of(claims), cfg)
  end
  redis.call('ZREM', B .. 'holders', holder)
end
local expired = 0
local function expire(job, p)
  local claims = drop_parked(job, 'expired', cjson.encode({
    reason = 'waited longer than the wait timeout for ' .. p.res,
    waited = (NOW - p.since) / 1000}), cfg.maxlen)
  expired = expired + 1
  wake_all(claims, cfg)
end
-- Oldest first. An entry whose job is no longer parked (or was parked again
-- since) is dropped whatever its age, so entries of jobs that waited briefly
-- go as soon as every older one has. Bounded: at most <limit> expiries and
-- ten times as many dropped entries per call.
local order, cutoff, popped = B .. 'parked:order', NOW - cfg.wait_ms, 0
while expired < limit and popped < limit * 10 do
  local head = redis.call('LINDEX', order, 0)
  if not head then break end
  local bar = string.find(head, '|', 1, true)
  local since, job = tonumber(string.sub(head, 1, bar - 1)), string.sub(head, bar + 1)
  local p = park_read(job)
  local live = p and p.since == since
  if live and (cfg.wait_ms <= 0 or since > cutoff) then break end
  redis.call('LPOP', order)
  popped = popped + 1
  if live then expire(job, p) end
end
-- Jobs parked by an earlier release are indexed in a sorted set instead.
local legacy = B .. 'parked:since'
if cfg.wait_ms > 0 and redis.call('EXISTS', legacy) == 1 then
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', legacy, '-inf', cutoff, 'LIMIT', 0, limit)) do
    redis.call('ZREM', legacy, job)
    local p = park_read(job)
    if p then expire(job, p) end
  end
end
local served = drain_rewake(limit, cfg)
-- Cancel marks only matter while a message may still arrive: keep a day.
redis.call('ZREMRANGEBYSCORE', B .. 'cancelled', '-inf', NOW - 86400000)
return {#dead, expired, served}
