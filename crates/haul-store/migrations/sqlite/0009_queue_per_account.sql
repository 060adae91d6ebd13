-- Each account's queue in claim order, so a claim reads the head of every account's queue (a few rows) instead of
-- sorting every runnable row to share slots fairly between accounts: with 100,000 jobs queued that sort took
-- about 32 ms per claim, which capped a queue of small files at some 30 starts a second. Its (account, state)
-- prefix also serves what 0005's index did (a list filtered by state), so that index goes.
CREATE INDEX downloads_by_account_queue ON downloads (account, state, priority DESC, created_at, seq);
DROP INDEX downloads_by_account_state;
