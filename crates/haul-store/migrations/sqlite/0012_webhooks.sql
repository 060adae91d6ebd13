-- Webhooks: an account's endpoints, and the outbox of deliveries to them.
--
-- Deliveries are written by triggers on `downloads`, so every change of state (an add, a claim, a pause, a
-- completion, a requeue of a dead node's jobs, a removal) writes its deliveries in the same transaction as the
-- change itself, on every path that makes it: a delivery is never lost to a crash between the two, and never
-- written for a change that rolled back. The engine's delivery task sends them from here.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY NOT NULL,
    account     TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    -- The event names it wants, as ',completed,failed,' (so one instr() tests a name), or ',*,' for all.
    events      TEXT    NOT NULL,
    -- Signs each delivery (HMAC-SHA256); kept as it is, since a receiver needs it back to verify.
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL                      -- unix milliseconds
);
CREATE INDEX webhooks_by_account ON webhooks (account, created_at);

CREATE TABLE webhook_deliveries (
    -- The order the triggers wrote them in: one job's deliveries to one webhook go out in this order.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,             -- stable across retries: receivers dedupe on it
    webhook          TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    account          TEXT    NOT NULL,
    download         TEXT    NOT NULL,                    -- no foreign key: `removed` outlives the row
    event            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,                    -- the download as it was, JSON
    occurred_at      INTEGER NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER,
    -- A node sending it holds it until then, so two nodes never send one delivery at the same time.
    claimed_by       TEXT,
    claimed_until    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (webhook, download, seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, seq);

-- Delivery ids are v4 UUIDs made from SQLite's randomness, evaluated per row, the shape of PostgreSQL's
-- gen_random_uuid().

CREATE TRIGGER downloads_webhook_insert AFTER INSERT ON downloads
    WHEN EXISTS (SELECT 1 FROM webhooks WHERE account = NEW.account) BEGIN
    INSERT INTO webhook_deliveries (id, webhook, account, download, event, payload, occurred_at, next_attempt_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
           || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
           || lower(hex(randomblob(6))), w.id, NEW.account, NEW.id, 'added',
           json_object('id', NEW.id, 'url', NEW.url, 'kind', NEW.kind, 'state', NEW.state, 'title', NEW.title,
                       'filename', NEW.filename, 'path', NEW.path, 'size', NEW.size, 'bytes_done', NEW.bytes_done,
                       'error', NEW.error, 'created_at', NEW.created_at, 'started_at', NEW.started_at,
                       'finished_at', NEW.finished_at, 'node', COALESCE(NEW.lease_owner, NEW.held_by)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM webhooks w
    WHERE w.account = NEW.account AND (w.events = ',*,' OR instr(w.events, ',added,') > 0);
END;

-- The event a change of state is, as the engine names it (`EventKind`); a change that is none (an active job
-- requeued when its node restarts) writes nothing.
CREATE TRIGGER downloads_webhook_update AFTER UPDATE OF state ON downloads
    WHEN OLD.state IS NOT NEW.state AND EXISTS (SELECT 1 FROM webhooks WHERE account = NEW.account) BEGIN
    INSERT INTO webhook_deliveries (id, webhook, account, download, event, payload, occurred_at, next_attempt_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
           || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
           || lower(hex(randomblob(6))), w.id, NEW.account, NEW.id, change.event,
           json_object('id', NEW.id, 'url', NEW.url, 'kind', NEW.kind, 'state', NEW.state, 'title', NEW.title,
                       'filename', NEW.filename, 'path', NEW.path, 'size', NEW.size, 'bytes_done', NEW.bytes_done,
                       'error', NEW.error, 'created_at', NEW.created_at, 'started_at', NEW.started_at,
                       'finished_at', NEW.finished_at, 'node', COALESCE(NEW.lease_owner, NEW.held_by)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM webhooks w, (SELECT CASE
            WHEN OLD.state = 'queued' AND NEW.state = 'active' THEN 'started'
            WHEN NEW.state = 'paused' THEN 'paused'
            WHEN OLD.state = 'paused' AND NEW.state = 'queued' THEN 'resumed'
            WHEN OLD.state IN ('failed', 'cancelled') AND NEW.state = 'queued' THEN 'retried'
            WHEN NEW.state IN ('completed', 'failed', 'cancelled') THEN NEW.state
        END AS event) change
    WHERE change.event IS NOT NULL AND w.account = NEW.account
      AND (w.events = ',*,' OR instr(w.events, ',' || change.event || ',') > 0);
END;

CREATE TRIGGER downloads_webhook_delete AFTER DELETE ON downloads
    WHEN EXISTS (SELECT 1 FROM webhooks WHERE account = OLD.account) BEGIN
    INSERT INTO webhook_deliveries (id, webhook, account, download, event, payload, occurred_at, next_attempt_at)
    SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
           || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
           || lower(hex(randomblob(6))), w.id, OLD.account, OLD.id, 'removed',
           json_object('id', OLD.id, 'url', OLD.url, 'kind', OLD.kind, 'state', OLD.state, 'title', OLD.title,
                       'filename', OLD.filename, 'path', OLD.path, 'size', OLD.size, 'bytes_done', OLD.bytes_done,
                       'error', OLD.error, 'created_at', OLD.created_at, 'started_at', OLD.started_at,
                       'finished_at', OLD.finished_at, 'node', COALESCE(OLD.lease_owner, OLD.held_by)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM webhooks w
    WHERE w.account = OLD.account AND (w.events = ',*,' OR instr(w.events, ',removed,') > 0);
END;
