-- Cookie jars: each account's cookies (a Netscape cookies.txt, imported), sent by haul's own requests to the
-- hosts, paths and schemes each cookie names, and handed to yt-dlp as a file of that account's cookies only. The
-- file holding the database is its owner's alone (0600), as it holds job headers already.
CREATE TABLE cookies (
    account     TEXT    NOT NULL,
    domain      TEXT    NOT NULL,                     -- without a leading dot
    subdomains  INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    secure      INTEGER NOT NULL,
    http_only   INTEGER NOT NULL,
    expires     INTEGER,                              -- unix seconds; NULL for a session cookie
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,                     -- unix milliseconds
    PRIMARY KEY (account, domain, path, name)
);
