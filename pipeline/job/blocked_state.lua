-- Write a job's BLOCKED state to Celery's Redis result backend, unless the job
-- has moved on already: a parked job can be handed its locks, start and even
-- finish before the process that parked it gets to write BLOCKED.
-- KEYS: the job's result key.
-- ARGV: encoded meta (JSON), expiry in seconds (0 = none), pid, worker hostname
-- Returns 1 if written, 0 if the stored state is newer.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' then
    local status = meta['status']
    if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then return 0 end
    if status == 'STARTED' then
      -- Celery writes STARTED (task_track_started) just before the job tries
      -- its locks: that one, by this very process, BLOCKED replaces; a STARTED
      -- of another process is the job running after its hand-off.
      local by = meta['result']
      if type(by) ~= 'table' or tostring(by['pid']) ~= ARGV[3] or by['hostname'] ~= ARGV[4] then
        return 0
      end
    end
  end
end
local expires = tonumber(ARGV[2])
if expires > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', expires)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
