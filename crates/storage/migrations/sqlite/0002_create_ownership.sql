-- Each dump's ownership results (retained sizes and owners), stored apart from its aggregates:
-- a dump may have aggregates and no ownership results yet.
--
-- Both tables hold blobs in the encoding of crates/storage/src/ownership_pack.rs: a version
-- byte, then zlib-compressed JSON. A put replaces a dump's rows in both tables in one
-- transaction.

-- Everything but the sites: object counts, sizes per class and per type, the top of the
-- dominator tree; and how many rows ownership_sites holds for the dump. A rowid table on
-- purpose: the blob can be tens of KiB.
CREATE TABLE dump_ownership (
    dump_id    TEXT    NOT NULL PRIMARY KEY,
    site_count INTEGER NOT NULL,
    summary    BLOB    NOT NULL
);

-- One row per site: its sizes and owners (a blob of up to a few KiB that holds the whole site
-- key). `position` is the site's place in the results (most retained bytes first);
-- `site_hash` is the first 8 bytes of SHA-256 over the site key's canonical encoding, so a
-- read of a few sites finds their rows through the index below without reading the others.
-- Two sites may share a hash: readers compare the stored site key.
CREATE TABLE ownership_sites (
    dump_id   TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    site_hash INTEGER NOT NULL,
    site      BLOB    NOT NULL,
    PRIMARY KEY (dump_id, position)
);

CREATE INDEX ownership_sites_by_hash ON ownership_sites (dump_id, site_hash);
