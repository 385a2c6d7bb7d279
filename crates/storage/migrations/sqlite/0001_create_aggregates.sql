-- The embedded aggregate store's first schema.
--
-- Every table leads with dump_id, so each dump is a contiguous key range (the embedded
-- counterpart of one partition per dump) and per-dump reads and deletes are range scans.
--
-- A site key is spread over columns that must be NOT NULL to sit in a WITHOUT ROWID primary
-- key, so absent parts are encoded: `line` is -1 without a line, `generation` is -1 without a
-- generation, and `absent` has bit 1 set without a file and bit 2 set without a class name
-- (`file` and `class_name` are then ''). This keeps "no file" apart from an empty file name.
-- Unsigned 64-bit totals are stored as INTEGER; the code rejects values that do not fit.

-- The small per-dump parts, as JSON: duplicated strings (at most 500), GC-root categories,
-- SHAPE totals and the parser's statistics.
CREATE TABLE dump_aggregates (
    dump_id            TEXT NOT NULL PRIMARY KEY,
    duplicated_strings TEXT NOT NULL,
    roots              TEXT NOT NULL,
    shapes             TEXT NOT NULL,
    parse              TEXT NOT NULL
) WITHOUT ROWID;

-- One row per (site, generation) of a dump: what every view, timeline and leak report reads.
CREATE TABLE site_totals (
    dump_id         TEXT    NOT NULL,
    file            TEXT    NOT NULL,
    line            INTEGER NOT NULL,
    object_type     TEXT    NOT NULL,
    class_name      TEXT    NOT NULL,
    absent          INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    object_count    INTEGER NOT NULL,
    memsize         INTEGER NOT NULL,
    bytesize        INTEGER NOT NULL,
    reference_count INTEGER NOT NULL,
    PRIMARY KEY (dump_id, file, line, object_type, class_name, absent, generation)
) WITHOUT ROWID;

-- The site table the object index refers to, by position (two positions may hold equal keys
-- when classes of the same name were merged).
CREATE TABLE index_sites (
    dump_id     TEXT    NOT NULL,
    site_number INTEGER NOT NULL,
    file        TEXT    NOT NULL,
    line        INTEGER NOT NULL,
    object_type TEXT    NOT NULL,
    class_name  TEXT    NOT NULL,
    absent      INTEGER NOT NULL,
    PRIMARY KEY (dump_id, site_number)
) WITHOUT ROWID;

-- Encoded object-index chunks (about 1 MiB each). A rowid table on purpose: SQLite advises
-- against WITHOUT ROWID for rows this large.
CREATE TABLE index_chunks (
    dump_id      TEXT    NOT NULL,
    chunk_number INTEGER NOT NULL,
    bytes        BLOB    NOT NULL,
    PRIMARY KEY (dump_id, chunk_number)
);

-- A row here means the dump's index is finished with chunks 0..chunk_count.
CREATE TABLE index_state (
    dump_id     TEXT    NOT NULL PRIMARY KEY,
    chunk_count INTEGER NOT NULL
) WITHOUT ROWID;
