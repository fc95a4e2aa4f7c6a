-- Force-release one resource (an operator's action on a stuck lock): end every
-- hold on it, whatever its lease, and hand what was freed to the parked jobs
-- that can now run, in the same call, as a release does.
-- A hold is all or nothing, so an ended hold frees every resource it had. Its
-- holder finds the lease lost at its next renewal (its hold record is gone),
-- and its own late release finds no hold and frees nothing: it can never free
-- the lock of the job the resource was handed to.
-- ARGV: base, resource id, by, reason, grant_ms, wait_ms, maxlen
-- Returns {ended, handed}: ended lists holder, job, token, claims of each hold
-- ended (job, token and claims empty for a holder entry without its record);
-- handed lists the holders of the resource afterwards (the jobs it went to).
local rid, by, reason = ARGV[2], ARGV[3], ARGV[4]
local cfg = {grant_ms = tonumber(ARGV[5]), wait_ms = tonumber(ARGV[6]), maxlen = ARGV[7]}
local holders, seen = {}, {}
for _, key in ipairs({wkey(rid), rkey(rid)}) do
  for _, holder in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if not seen[holder] then
      seen[holder] = true
      holders[#holders + 1] = holder
    end
  end
end
local ended, lines, queued = {}, {}, {}
local function serve(r)
  if not queued[r] then
    queued[r] = true
    lines[#lines + 1] = r
  end
end
serve(rid)
for _, holder in ipairs(holders) do
  local rec = redis.call('HMGET', hkey(holder), 'claims', 'job', 'token')
  local job, token, claims_text = '', '', ''
  if rec[1] then
    claims_text, job, token = rec[1], rec[2] or '', rec[3] or ''
    local claims = parse_claims(claims_text)
    drop_hold(holder, claims)
    for _, c in ipairs(claims) do serve(c[1]) end
    emit(cfg.maxlen, 'lock_lost', job, cjson.encode({holder = holder, resources = rids_of(claims)}))
  else
    -- A holder entry whose record is gone: nothing else to end.
    redis.call('ZREM', KEY.holders, holder)
  end
  -- Whatever the record said, the resource itself no longer lists the holder.
  redis.call('ZREM', wkey(rid), holder)
  redis.call('ZREM', rkey(rid), holder)
  emit(cfg.maxlen, 'operator', job, cjson.encode({
    action = 'lock_release', by = by, target = rid, reason = reason, count = 1}))
  for _, v in ipairs({holder, job, token, claims_text}) do ended[#ended + 1] = v end
end
wake_rids(lines, cfg)
local handed = redis.call('ZRANGE', wkey(rid), 0, -1)
for _, h in ipairs(redis.call('ZRANGE', rkey(rid), 0, -1)) do handed[#handed + 1] = h end
return {ended, handed}
