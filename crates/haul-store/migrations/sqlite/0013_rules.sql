-- Rules (categories): an account's conditions on new downloads (host, URL glob, file types) and what they give a
-- download that matches (a directory, a priority). The engine applies the first match by position when a
-- download is added; the conditions are checked and normalised before they are stored.
CREATE TABLE rules (
    id           TEXT PRIMARY KEY NOT NULL,
    account      TEXT    NOT NULL,
    -- 1, 2, 3, ... per account with no gaps; kept so by the store under the write lock.
    position     INTEGER NOT NULL,
    name         TEXT,
    host         TEXT,
    url_pattern  TEXT,
    extensions   TEXT,                                -- 'iso,tar.gz'
    directory    TEXT,
    priority     INTEGER,
    created_at   INTEGER NOT NULL,                    -- unix milliseconds
    CHECK (host IS NOT NULL OR url_pattern IS NOT NULL OR extensions IS NOT NULL),
    CHECK (directory IS NOT NULL OR priority IS NOT NULL)
);
CREATE INDEX rules_by_account ON rules (account, position);
