-- Downloads: one row per job, owned by one account. Times are unix milliseconds. Lists of strings are JSON
-- text (mirrors: ["url", ...], headers: [["name", "value"], ...]) because nothing queries inside them.
CREATE TABLE downloads (
    -- Insertion order (the rowid), the tie-breaker when two jobs share a created_at millisecond.
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    account           TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    mirrors           TEXT    NOT NULL DEFAULT '[]',
    kind              TEXT    NOT NULL DEFAULT 'file',
    state             TEXT    NOT NULL
        CHECK (state IN ('queued', 'active', 'paused', 'completed', 'failed', 'cancelled')),
    priority          INTEGER NOT NULL DEFAULT 0,
    filename          TEXT,
    directory         TEXT,
    path              TEXT,
    size              INTEGER,
    bytes_done        INTEGER NOT NULL DEFAULT 0,
    speed             INTEGER NOT NULL DEFAULT 0,
    eta_secs          INTEGER,
    connections       INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    checksum          TEXT,
    headers           TEXT    NOT NULL DEFAULT '[]',
    connections_limit INTEGER,
    speed_limit       INTEGER,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    lease_owner       TEXT,
    lease_expires     INTEGER
);

-- An account's list, newest first.
CREATE INDEX downloads_by_account ON downloads (account, created_at DESC, seq DESC);
-- The scheduler's queue: highest priority, then oldest.
CREATE INDEX downloads_by_queue ON downloads (state, priority DESC, created_at, seq);
