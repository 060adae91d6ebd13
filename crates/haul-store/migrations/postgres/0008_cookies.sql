-- Cookie jars, as SQLite's 0017.
CREATE TABLE cookies (
    account     TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    subdomains  BOOLEAN NOT NULL,
    path        TEXT    NOT NULL,
    secure      BOOLEAN NOT NULL,
    http_only   BOOLEAN NOT NULL,
    expires     BIGINT,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (account, domain, path, name)
);
