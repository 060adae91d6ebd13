-- Webhooks and their outbox (see SQLite's 0012): deliveries are written by a trigger on `downloads`, in the
-- transaction of the change of state, on every node and every path that changes one.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    account     TEXT   NOT NULL,
    url         TEXT   NOT NULL,
    events      TEXT   NOT NULL,                     -- ',completed,failed,' or ',*,'
    secret      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account, created_at);

CREATE TABLE webhook_deliveries (
    -- A change of state locks its download's row, so a job's later change takes its number after the earlier
    -- one: numbers follow each job's order.
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT   NOT NULL UNIQUE,
    webhook          TEXT   NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    account          TEXT   NOT NULL,
    download         TEXT   NOT NULL,
    event            TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    occurred_at      BIGINT NOT NULL,
    state            TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    claimed_by       TEXT,
    claimed_until    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (webhook, download, seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, seq);

CREATE FUNCTION downloads_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    job downloads;
    happened TEXT;
    now_ms BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        job := OLD;
        happened := 'removed';
    ELSE
        job := NEW;
        IF TG_OP = 'INSERT' THEN
            happened := 'added';
        ELSIF OLD.state = 'queued' AND NEW.state = 'active' THEN
            happened := 'started';
        ELSIF NEW.state = 'paused' THEN
            happened := 'paused';
        ELSIF OLD.state = 'paused' AND NEW.state = 'queued' THEN
            happened := 'resumed';
        ELSIF OLD.state IN ('failed', 'cancelled') AND NEW.state = 'queued' THEN
            happened := 'retried';
        ELSIF NEW.state IN ('completed', 'failed', 'cancelled') THEN
            happened := NEW.state;
        ELSE
            -- An active job requeued when its node restarts is no event.
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO webhook_deliveries (id, webhook, account, download, event, payload, occurred_at, next_attempt_at)
    SELECT gen_random_uuid()::text, w.id, job.account, job.id, happened,
           jsonb_build_object('id', job.id, 'url', job.url, 'kind', job.kind, 'state', job.state,
                              'title', job.title, 'filename', job.filename, 'path', job.path, 'size', job.size,
                              'bytes_done', job.bytes_done, 'error', job.error, 'created_at', job.created_at,
                              'started_at', job.started_at, 'finished_at', job.finished_at,
                              'node', COALESCE(job.lease_owner, job.held_by))::text,
           now_ms, now_ms
    FROM webhooks w
    WHERE w.account = job.account AND (w.events = ',*,' OR strpos(w.events, ',' || happened || ',') > 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER downloads_webhook_insert_delete AFTER INSERT OR DELETE ON downloads
    FOR EACH ROW EXECUTE FUNCTION downloads_webhook();
CREATE TRIGGER downloads_webhook_update AFTER UPDATE OF state ON downloads
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION downloads_webhook();
