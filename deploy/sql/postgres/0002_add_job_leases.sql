-- The ingest job queue: a claimed dump (status 'ingesting') records the worker holding its
-- lease and when the lease expires (Unix milliseconds, the server's clock). Both are NULL
-- whenever no worker holds the dump, including a dump set to 'ingesting' outside the queue,
-- which is therefore never re-claimed by expiry.
--
-- registration_seq orders dumps by registration more finely than registered_at_unix (whole
-- seconds); rows registered before this step are numbered in no particular order.

ALTER TABLE dumps ADD COLUMN lease_worker TEXT;
ALTER TABLE dumps ADD COLUMN lease_expires_at_unix_ms BIGINT;
ALTER TABLE dumps ADD COLUMN registration_seq BIGINT GENERATED ALWAYS AS IDENTITY;

-- Serves claim_job: only the backlog (queued dumps and leased ones) is indexed, in
-- registration order, so the oldest claimable dump is the first matching entry.
CREATE INDEX dumps_job_queue ON dumps (registration_seq)
    WHERE status IN ('queued', 'ingesting');
