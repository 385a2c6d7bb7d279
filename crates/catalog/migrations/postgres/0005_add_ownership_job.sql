-- The ownership pass, the second job on the queue: once a dump is 'ready' and its file is in
-- object storage, a worker re-reads the file and computes its dominator tree and retained
-- sizes. The pass lives on the dump's row beside the ingest job: its state (NULL while no pass
-- is queued: the dump is not ready or has no object_key), the reason of a skipped or failed
-- pass, its own attempt count, and the worker holding its lease and when the lease expires
-- (Unix milliseconds, the server's clock), both NULL unless the pass is 'running'.
--
-- Dumps already ready when this step runs get no pass (ownership_state stays NULL) until they
-- are ingested again. Every column is nullable or has a constant default, so adding them
-- rewrites no rows.

ALTER TABLE dumps ADD COLUMN ownership_state TEXT
    CHECK (ownership_state IN ('queued', 'running', 'ready', 'skipped', 'failed'));
ALTER TABLE dumps ADD COLUMN ownership_reason TEXT;
ALTER TABLE dumps ADD COLUMN ownership_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dumps ADD COLUMN ownership_lease_worker TEXT;
ALTER TABLE dumps ADD COLUMN ownership_lease_expires_at_unix_ms BIGINT;

-- Serves claim_ownership_job and queue_stats: only the ownership backlog (queued passes and
-- leased ones) is indexed, in registration order, so the oldest claimable pass is the first
-- matching entry.
CREATE INDEX dumps_ownership_queue ON dumps (registration_seq)
    WHERE ownership_state IN ('queued', 'running');
