-- Take every claim of a job at once, or park it (take() in take.lua).
-- ARGV: base, job, holder, lease_ms, priority, claims, host, pid,
--       started detail (a JSON object, written as the event's d; the script's
--       own fields go in x), maxlen, msg, queue list key, grant_ms, wait_ms,
--       submitted_ms (when the job was published, with its fraction of a ms;
--       0 = unknown, use now),
--       step (1 for a later step of a workflow), resources (JSON array of the
--       claims' resource ids), guest (1 for a job published inside a running
--       job whose hold it hopes to run under)
-- Returns what take() returns.
return take({job = ARGV[2], holder = ARGV[3], lease = tonumber(ARGV[4]),
             prio = tonumber(ARGV[5]), claims = ARGV[6], host = ARGV[7], pid = ARGV[8],
             detail = ARGV[9], msg = ARGV[11], queue = ARGV[12],
             cfg = {grant_ms = tonumber(ARGV[13]), wait_ms = tonumber(ARGV[14]),
                    maxlen = ARGV[10]},
             submitted_ms = tonumber(ARGV[15]), step = ARGV[16] == '1',
             resources = ARGV[17], guest = ARGV[18] == '1'})
