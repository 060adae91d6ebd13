-- Downloads per account and state, kept by triggers in the same transaction as every insert, delete and change
-- of state, so that the per-account cap checked on every add, the list's total and /v1/stats read a few rows
-- instead of counting the account's downloads: counting them from the (account, state) index took time in
-- proportion to the store (10 ms at 100,000 jobs), on every add.
CREATE TABLE download_counts (
    account TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (account, state)
) WITHOUT ROWID;

INSERT INTO download_counts (account, state, n) SELECT account, state, COUNT(*) FROM downloads GROUP BY account, state;

CREATE TRIGGER downloads_counted_insert AFTER INSERT ON downloads BEGIN
    INSERT INTO download_counts (account, state, n) VALUES (NEW.account, NEW.state, 1)
        ON CONFLICT (account, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER downloads_counted_delete AFTER DELETE ON downloads BEGIN
    UPDATE download_counts SET n = n - 1 WHERE account = OLD.account AND state = OLD.state;
END;

-- Progress writes do not name `state`, so they never fire this; a claim or a transition that names it does, and
-- moves one from the old (account, state) to the new.
CREATE TRIGGER downloads_counted_update AFTER UPDATE OF account, state ON downloads
    WHEN OLD.account IS NOT NEW.account OR OLD.state IS NOT NEW.state BEGIN
    UPDATE download_counts SET n = n - 1 WHERE account = OLD.account AND state = OLD.state;
    INSERT INTO download_counts (account, state, n) VALUES (NEW.account, NEW.state, 1)
        ON CONFLICT (account, state) DO UPDATE SET n = n + 1;
END;
