-- The ingest job queue: a claimed dump (status 'ingesting') records the worker holding its
-- lease and when the lease expires (Unix milliseconds, system clock). Both are NULL whenever
-- no worker holds the dump, including a dump set to 'ingesting' outside the queue, which is
-- therefore never re-claimed by expiry.

ALTER TABLE dumps ADD COLUMN lease_worker TEXT;
ALTER TABLE dumps ADD COLUMN lease_expires_at_unix_ms INTEGER;

-- Serves claim_job: only the backlog (queued dumps and leased ones) is indexed, in
-- registration order (the rowid, which every index entry carries, breaks ties within a
-- second), so the oldest claimable dump is the first matching entry.
CREATE INDEX dumps_job_queue ON dumps (registered_at_unix)
    WHERE status IN ('queued', 'ingesting');
