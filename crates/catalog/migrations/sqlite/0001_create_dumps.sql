-- The embedded catalog's first schema: one row per registered dump.
--
-- Unsigned 64-bit counters are stored as INTEGER (signed 64-bit); the code rejects values that
-- do not fit. Labels are a JSON object in `labels`; label filters read it with json_each, so
-- no side table has to be kept in step with it.

CREATE TABLE dumps (
    dump_id            TEXT    NOT NULL PRIMARY KEY,
    tenant             TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    pid                INTEGER NOT NULL,
    instance           TEXT    NOT NULL,
    taken_at_unix      INTEGER NOT NULL,
    jobs               INTEGER,
    role               TEXT,
    labels             TEXT    NOT NULL DEFAULT '{}',
    file_name          TEXT    NOT NULL,
    size_bytes         INTEGER NOT NULL,
    content_sha256     TEXT    NOT NULL,
    gc_count           INTEGER,
    rss_bytes          INTEGER,
    status             TEXT    NOT NULL
        CHECK (status IN ('uploaded', 'queued', 'ingesting', 'ready', 'failed')),
    failure_reason     TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    objects            INTEGER NOT NULL DEFAULT 0,
    bad_lines          INTEGER NOT NULL DEFAULT 0,
    registered_at_unix INTEGER NOT NULL
);

-- Serves list_dumps (a tenant's dumps in process and time order) and list_processes.
CREATE INDEX dumps_by_process ON dumps (tenant, host, pid, instance, taken_at_unix, dump_id);
