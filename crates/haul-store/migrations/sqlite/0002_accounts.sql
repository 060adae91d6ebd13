-- Accounts own downloads; API keys belong to one account each. Only a hash of each key's secret is kept.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY NOT NULL,            -- 32 lowercase hex
    name        TEXT NOT NULL UNIQUE,
    email       TEXT,
    created_at  INTEGER NOT NULL                      -- unix milliseconds
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,           -- a v4 UUID, shown by `haul key ls`
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,                       -- bearer | videodb | cloudflare-global
    secret_hash  TEXT NOT NULL UNIQUE,                -- hex sha256 of the secret
    prefix       TEXT NOT NULL,                       -- the secret's first characters, to recognise it
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE INDEX api_keys_account ON api_keys (account_id);
