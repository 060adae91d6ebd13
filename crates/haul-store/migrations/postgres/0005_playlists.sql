-- Playlists (SQLite's 0014): a playlist's job (kind `playlist`) is the parent of one job per entry; see there for
-- the columns.
ALTER TABLE downloads ADD COLUMN parent_id TEXT REFERENCES downloads (id) ON DELETE SET NULL;
ALTER TABLE downloads ADD COLUMN playlist_index BIGINT;
ALTER TABLE downloads ADD COLUMN playlist_item BIGINT;
ALTER TABLE downloads ADD COLUMN playlist_items TEXT;
ALTER TABLE downloads ADD COLUMN playlist_skipped BIGINT;
ALTER TABLE downloads ADD COLUMN name_template TEXT;

CREATE INDEX downloads_by_parent ON downloads (parent_id, playlist_index) WHERE parent_id IS NOT NULL;

-- A playlist's state is its children's (the rule is in SQLite's 0014), kept in the transaction of every insert,
-- delete and change of state of a child. The parent's row is locked before its children are read, so two
-- children changing at once on two nodes are counted one after the other: the second reads the first's change
-- (READ COMMITTED takes a new snapshot per statement) and the parent never keeps a state neither saw.
CREATE FUNCTION downloads_playlist_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent TEXT;
    next_state TEXT;
    now_ms BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN parent := OLD.parent_id; ELSE parent := NEW.parent_id; END IF;
    IF parent IS NULL OR (TG_OP = 'UPDATE' AND OLD.state IS NOT DISTINCT FROM NEW.state) THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM downloads WHERE id = parent AND kind = 'playlist' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT CASE WHEN COUNT(*) FILTER (WHERE state = 'active') > 0 THEN 'active'
                WHEN COUNT(*) FILTER (WHERE state = 'queued') > 0 THEN 'queued'
                WHEN COUNT(*) FILTER (WHERE state = 'paused') > 0 THEN 'paused'
                WHEN COUNT(*) FILTER (WHERE state = 'failed') > 0 THEN 'failed'
                WHEN COUNT(*) FILTER (WHERE state = 'completed') > 0 THEN 'completed'
                ELSE 'cancelled' END
        INTO next_state
        FROM downloads WHERE parent_id = parent HAVING COUNT(*) > 0;
    IF next_state IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE downloads SET
        state = next_state,
        started_at = COALESCE(started_at, CASE WHEN next_state = 'active' THEN now_ms END),
        finished_at = CASE WHEN next_state IN ('completed', 'failed', 'cancelled') THEN COALESCE(finished_at, now_ms) END
    WHERE id = parent AND state IS DISTINCT FROM next_state;
    RETURN NULL;
END
$$;

CREATE TRIGGER downloads_playlist_insert_delete AFTER INSERT OR DELETE ON downloads
    FOR EACH ROW EXECUTE FUNCTION downloads_playlist_state();
CREATE TRIGGER downloads_playlist_update AFTER UPDATE OF state ON downloads
    FOR EACH ROW EXECUTE FUNCTION downloads_playlist_state();
