-- Several nodes: which node holds a finished file (its downloads directory, when directories are node-local),
-- the nodes themselves with their heartbeats, and values every node must share (the default account, the key
-- that signs download links).
ALTER TABLE downloads ADD COLUMN held_by TEXT;

CREATE TABLE nodes (
    id             TEXT PRIMARY KEY NOT NULL,
    advertise_url  TEXT,                              -- where other nodes reach its API, for files it holds
    version        TEXT NOT NULL,
    started_at     INTEGER NOT NULL,                  -- unix milliseconds
    last_seen      INTEGER NOT NULL
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

-- Active rows by lease: a node counts its own live leases on every claim.
CREATE INDEX downloads_by_lease ON downloads (lease_owner, lease_expires) WHERE state = 'active';
