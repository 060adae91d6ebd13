-- haul's schema on PostgreSQL: the SQLite schema after its migrations 0001-0010, in one step, with BIGINT for
-- every integer (times are unix milliseconds) and BOOLEAN for flags. Several nodes share it; see the comments on
-- `download_counts` and `events` for what that changes.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,                     -- 32 lowercase hex
    name        TEXT NOT NULL UNIQUE,
    email       TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,                    -- a v4 UUID, shown by `haul key ls`
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,                       -- bearer | videodb | cloudflare-global
    secret_hash  TEXT NOT NULL UNIQUE,                -- hex sha256 of the secret
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE sessions (
    secret_hash  TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE downloads (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    account             TEXT    NOT NULL,
    url                 TEXT    NOT NULL,
    mirrors             TEXT    NOT NULL DEFAULT '[]',
    kind                TEXT    NOT NULL DEFAULT 'file',
    state               TEXT    NOT NULL
        CHECK (state IN ('queued', 'active', 'paused', 'completed', 'failed', 'cancelled')),
    priority            BIGINT  NOT NULL DEFAULT 0,
    filename            TEXT,
    directory           TEXT,
    path                TEXT,
    size                BIGINT,
    bytes_done          BIGINT  NOT NULL DEFAULT 0,
    speed               BIGINT  NOT NULL DEFAULT 0,
    eta_secs            BIGINT,
    connections         BIGINT  NOT NULL DEFAULT 0,
    error               TEXT,
    checksum            TEXT,
    headers             TEXT    NOT NULL DEFAULT '[]',
    connections_limit   BIGINT,
    speed_limit         BIGINT,
    created_at          BIGINT  NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    lease_owner         TEXT,
    lease_expires       BIGINT,
    title               TEXT,
    quality             TEXT    NOT NULL DEFAULT 'best',
    duration            DOUBLE PRECISION,
    width               BIGINT,
    height              BIGINT,
    format              TEXT,
    thumbnail           TEXT,
    meta                TEXT,
    creator             TEXT,
    thumbnail_at        DOUBLE PRECISION,
    require_signed_urls BOOLEAN NOT NULL DEFAULT FALSE,
    name_with_id        BOOLEAN NOT NULL DEFAULT FALSE,
    held_by             TEXT
);
CREATE INDEX downloads_by_account ON downloads (account, created_at DESC, seq DESC);
CREATE INDEX downloads_by_account_queue ON downloads (account, state, priority DESC, created_at, seq);
CREATE INDEX downloads_by_queue ON downloads (state, priority DESC, created_at, seq);
CREATE INDEX downloads_by_lease ON downloads (lease_owner, lease_expires) WHERE state = 'active';

CREATE TABLE renditions (
    download_id TEXT NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active', 'ready', 'failed')),
    percent     DOUBLE PRECISION NOT NULL DEFAULT 0,
    path        TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (download_id, name)
);

-- Downloads per account and state, kept by a trigger in the same transaction as the change (see SQLite's 0008).
-- Every change of state moves one from the old (account, state) row to the new, and locks both rows; the two
-- are always locked in the same order (by state name), so two transactions moving jobs in opposite directions
-- (a claim, queued to active; a restart, active to queued) cannot deadlock on them.
CREATE TABLE download_counts (
    account TEXT   NOT NULL,
    state   TEXT   NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (account, state)
);

CREATE FUNCTION downloads_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO download_counts AS c (account, state, n) VALUES (NEW.account, NEW.state, 1)
            ON CONFLICT (account, state) DO UPDATE SET n = c.n + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE download_counts SET n = n - 1 WHERE account = OLD.account AND state = OLD.state;
    ELSIF (OLD.account, OLD.state) < (NEW.account, NEW.state) THEN
        UPDATE download_counts SET n = n - 1 WHERE account = OLD.account AND state = OLD.state;
        INSERT INTO download_counts AS c (account, state, n) VALUES (NEW.account, NEW.state, 1)
            ON CONFLICT (account, state) DO UPDATE SET n = c.n + 1;
    ELSE
        INSERT INTO download_counts AS c (account, state, n) VALUES (NEW.account, NEW.state, 1)
            ON CONFLICT (account, state) DO UPDATE SET n = c.n + 1;
        UPDATE download_counts SET n = n - 1 WHERE account = OLD.account AND state = OLD.state;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER downloads_counted_insert_delete AFTER INSERT OR DELETE ON downloads
    FOR EACH ROW EXECUTE FUNCTION downloads_counted();
CREATE TRIGGER downloads_counted_update AFTER UPDATE OF account, state ON downloads
    FOR EACH ROW WHEN (OLD.account IS DISTINCT FROM NEW.account OR OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION downloads_counted();

CREATE TABLE nodes (
    id             TEXT PRIMARY KEY,
    advertise_url  TEXT,
    version        TEXT   NOT NULL,
    started_at     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Events for clients of every node. Writers number them under a transaction-scoped advisory lock, so numbers
-- become visible in order: a reader that has seen event n never later finds an event below n, which is what
-- Last-Event-ID replay relies on. `created_at` lets old events be pruned.
CREATE TABLE events (
    id          BIGINT PRIMARY KEY,
    kind        TEXT   NOT NULL,
    account     TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_by_age ON events (created_at);
CREATE SEQUENCE events_id;
