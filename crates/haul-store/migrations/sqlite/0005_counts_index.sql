-- Per-state counts of one account (the list's total, the per-account cap checked on every add, /v1/stats)
-- read from this index alone instead of scanning the account's rows.
CREATE INDEX downloads_by_account_state ON downloads (account, state);
