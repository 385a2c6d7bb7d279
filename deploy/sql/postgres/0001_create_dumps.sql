-- The PostgreSQL catalog's first schema: one row per registered dump, the same columns as the
-- embedded catalog's `dumps` table.
--
-- Text that list_dumps and list_processes sort by uses the "C" collation, so rows come back in
-- byte order, as the Catalog trait promises, whatever the database's default collation is.
-- Unsigned 64-bit counters are stored as BIGINT (signed); the code rejects values that do not
-- fit. Labels are a JSONB object: a label filter is one containment test (`labels @> filter`),
-- which the GIN index serves, and no side table has to be kept in step with it.

CREATE TABLE dumps (
    dump_id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant             TEXT COLLATE "C" NOT NULL,
    host               TEXT COLLATE "C" NOT NULL,
    pid                BIGINT           NOT NULL CHECK (pid BETWEEN 0 AND 4294967295),
    instance           TEXT COLLATE "C" NOT NULL,
    taken_at_unix      BIGINT           NOT NULL,
    jobs               BIGINT,
    role               TEXT,
    labels             JSONB            NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(labels) = 'object'),
    file_name          TEXT             NOT NULL,
    size_bytes         BIGINT           NOT NULL,
    content_sha256     TEXT             NOT NULL,
    gc_count           BIGINT,
    rss_bytes          BIGINT,
    status             TEXT             NOT NULL
        CHECK (status IN ('uploaded', 'queued', 'ingesting', 'ready', 'failed')),
    failure_reason     TEXT,
    attempts           INTEGER          NOT NULL DEFAULT 0,
    objects            BIGINT           NOT NULL DEFAULT 0,
    bad_lines          BIGINT           NOT NULL DEFAULT 0,
    -- The server's clock, so every gateway stamps registrations alike.
    registered_at_unix BIGINT           NOT NULL
        DEFAULT floor(extract(epoch FROM now()))::BIGINT
);

-- Serves list_dumps (a tenant's dumps in process and time order) and list_processes.
CREATE INDEX dumps_by_process ON dumps (tenant, host, pid, instance, taken_at_unix, dump_id);

-- Serves label filters (`labels @> $1`).
CREATE INDEX dumps_by_labels ON dumps USING GIN (labels jsonb_path_ops);
