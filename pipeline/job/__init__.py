"""A job's path, one phase a module: publish, start (or park), attempts, finish.

The whole loop of one job, and where each step lives::

    caller: task.apply_async()
      │  publishing.prepare       check priority and resources, stamp the header
      │                           (pipeline.messages.header), stamp a chain's steps
      │                           (workflows, canvas)
      │  broker.transport._put    message + wake token in one round trip
      ▼
    worker main process: broker/fetch.lua
      │                           take the message and record it as unacked, one Lua call,
      │                           sent behind the wait on the wake list (it runs as a token
      │                           wakes it); while the queues hold more, sent alone with the
      │                           acks given since
      ▼
    pool process: PipelineTask.before_start
      │  starting.start           every lock in one call (locks/lua/acquire.lua)
      ├── granted ──────────────▶ attempts.call_with_retries   the body; a retriable
      │                           │                            error retries with backoff
      │                           ▼
      │                           finishing.finish             after_return, on_retry,
      │                                                        task_postrun: release
      │                                                        (locks/lua/release.lua)
      └── blocked: parked         acquire.lua stores the job's message (messages.envelope)
                                  in the lines of what blocks it; BLOCKED; the
                                  message is acknowledged (Ignore)
    hand-off, in Lua:             a release (lib.lua ``wake``) grants the parked jobs
                                  that can now run and pushes each stored message to the
                                  front of its queue with a wake token: the job returns
                                  through the broker and ``before_start`` finds its hold

A pool process that dies is covered by its worker's main process (``request``:
the hold is released, deliveries counted, ``deliveries`` dead-letters a job that
keeps killing its process); a whole worker that dies, by its leases and the
broker's rescue.
"""
