-- Where a dump's file is kept in object storage: the key the gateway wrote or a worker
-- registered. NULL for a dump imported from a local file, which no ingest worker reads.

ALTER TABLE dumps ADD COLUMN object_key TEXT;
