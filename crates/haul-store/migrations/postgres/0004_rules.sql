-- Rules (categories), as SQLite's 0013: positions 1, 2, 3, ... per account, kept so by the store under a
-- transaction-scoped advisory lock per account.
CREATE TABLE rules (
    id           TEXT PRIMARY KEY,
    account      TEXT   NOT NULL,
    position     BIGINT NOT NULL,
    name         TEXT,
    host         TEXT,
    url_pattern  TEXT,
    extensions   TEXT,
    directory    TEXT,
    priority     BIGINT,
    created_at   BIGINT NOT NULL,
    CHECK (host IS NOT NULL OR url_pattern IS NOT NULL OR extensions IS NOT NULL),
    CHECK (directory IS NOT NULL OR priority IS NOT NULL)
);
CREATE INDEX rules_by_account ON rules (account, position);
