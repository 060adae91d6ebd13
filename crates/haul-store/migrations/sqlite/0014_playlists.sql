-- Playlists: a playlist's job (kind `playlist`) is the parent of one job per entry. A child is a normal media job
-- with `parent_id` and its place in the playlist (`playlist_index`, from 1); `playlist_item` is set only when the
-- child's URL is the playlist's own page (a page showing several videos: the child is its N-th entry). The parent
-- keeps the selection asked for (`playlist_items`, `1-5,8`).
ALTER TABLE downloads ADD COLUMN parent_id TEXT REFERENCES downloads (id) ON DELETE SET NULL;
ALTER TABLE downloads ADD COLUMN playlist_index INTEGER;
ALTER TABLE downloads ADD COLUMN playlist_item INTEGER;
ALTER TABLE downloads ADD COLUMN playlist_items TEXT;
-- Entries a playlist left out because the account's download archive holds them already.
ALTER TABLE downloads ADD COLUMN playlist_skipped INTEGER;
-- How a media download's file is named (`{title} [{id}].{ext}`), as the client wrote it; `{title}__{id}.{ext}`
-- when NULL. A playlist's entries take their playlist's.
ALTER TABLE downloads ADD COLUMN name_template TEXT;

CREATE INDEX downloads_by_parent ON downloads (parent_id, playlist_index) WHERE parent_id IS NOT NULL;

-- A playlist's state is its children's, kept by these triggers in the same transaction as every insert, delete
-- and change of state of a child, on every path (a client's action, a claim, a completion, a node's restart):
-- active while any child is, else queued, paused, failed, completed (a cancelled child among completed ones is
-- an entry the user skipped), cancelled. Its own change of state fires the counts and webhook triggers as any
-- job's does. (SQLite allows no WITH inside a trigger, so the expression is written out in each.)
CREATE TRIGGER downloads_playlist_insert AFTER INSERT ON downloads WHEN NEW.parent_id IS NOT NULL BEGIN
    UPDATE downloads SET state = (
        SELECT CASE WHEN SUM(c.state = 'active') > 0 THEN 'active' WHEN SUM(c.state = 'queued') > 0 THEN 'queued'
                    WHEN SUM(c.state = 'paused') > 0 THEN 'paused' WHEN SUM(c.state = 'failed') > 0 THEN 'failed'
                    WHEN SUM(c.state = 'completed') > 0 THEN 'completed' ELSE 'cancelled' END
        FROM downloads c WHERE c.parent_id = NEW.parent_id)
    WHERE id = NEW.parent_id AND kind = 'playlist';
    UPDATE downloads SET
        started_at = COALESCE(started_at, CASE WHEN state = 'active' THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END),
        finished_at = CASE WHEN state IN ('completed', 'failed', 'cancelled')
                           THEN COALESCE(finished_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) END
    WHERE id = NEW.parent_id AND kind = 'playlist';
END;

CREATE TRIGGER downloads_playlist_update AFTER UPDATE OF state ON downloads
    WHEN NEW.parent_id IS NOT NULL AND OLD.state IS NOT NEW.state BEGIN
    UPDATE downloads SET state = (
        SELECT CASE WHEN SUM(c.state = 'active') > 0 THEN 'active' WHEN SUM(c.state = 'queued') > 0 THEN 'queued'
                    WHEN SUM(c.state = 'paused') > 0 THEN 'paused' WHEN SUM(c.state = 'failed') > 0 THEN 'failed'
                    WHEN SUM(c.state = 'completed') > 0 THEN 'completed' ELSE 'cancelled' END
        FROM downloads c WHERE c.parent_id = NEW.parent_id)
    WHERE id = NEW.parent_id AND kind = 'playlist';
    UPDATE downloads SET
        started_at = COALESCE(started_at, CASE WHEN state = 'active' THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END),
        finished_at = CASE WHEN state IN ('completed', 'failed', 'cancelled')
                           THEN COALESCE(finished_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) END
    WHERE id = NEW.parent_id AND kind = 'playlist';
END;

CREATE TRIGGER downloads_playlist_delete AFTER DELETE ON downloads
    WHEN OLD.parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM downloads WHERE parent_id = OLD.parent_id) BEGIN
    UPDATE downloads SET state = (
        SELECT CASE WHEN SUM(c.state = 'active') > 0 THEN 'active' WHEN SUM(c.state = 'queued') > 0 THEN 'queued'
                    WHEN SUM(c.state = 'paused') > 0 THEN 'paused' WHEN SUM(c.state = 'failed') > 0 THEN 'failed'
                    WHEN SUM(c.state = 'completed') > 0 THEN 'completed' ELSE 'cancelled' END
        FROM downloads c WHERE c.parent_id = OLD.parent_id)
    WHERE id = OLD.parent_id AND kind = 'playlist';
    UPDATE downloads SET
        finished_at = CASE WHEN state IN ('completed', 'failed', 'cancelled')
                           THEN COALESCE(finished_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) END
    WHERE id = OLD.parent_id AND kind = 'playlist';
END;
