//! Housekeeping: downloads that ended longer ago than the operator keeps them (`haul serve --forget-after 30d`)
//! are forgotten, as `DELETE /v1/downloads/{id}` would, with their files too when asked (`--forget-files`).

use std::time::{Duration, SystemTime};

use haul_core::job::JobState;

use super::Engine;

/// What a server forgets, and when.
#[derive(Clone, Debug)]
pub struct Retention {
    /// How long after it ended a download is kept.
    pub after: Duration,
    /// The end states forgotten (`completed` by default; `failed` and `cancelled` by choice).
    pub states: Vec<JobState>,
    /// Remove the finished files too (their partial files, renditions and thumbnails in any case).
    pub delete_files: bool,
    /// How often to look.
    pub every: Duration,
}

/// Downloads forgotten per store read.
const BATCH: u32 = 500;

impl Engine {
    /// Every `retention.every` until shutdown: forgets what ended before `now - after`.
    pub(super) async fn keep_house(&self, retention: Retention) -> Result<(), std::convert::Infallible> {
        let mut ticker = tokio::time::interval(retention.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.shutdown.cancelled() => return Ok(()),
            }
            let forgotten = self.forget_ended(&retention).await;
            if forgotten > 0 {
                tracing::info!(
                    forgotten,
                    after = %haul_core::units::format_duration(retention.after),
                    files = retention.delete_files,
                    "forgot downloads that ended longer ago than the server keeps them"
                );
            }
        }
    }

    /// One pass; how many were forgotten.
    async fn forget_ended(&self, retention: &Retention) -> u64 {
        let before = haul_core::clock::unix_millis(
            SystemTime::now().checked_sub(retention.after).unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let mut forgotten = 0;
        loop {
            let ended = match self.inner.store.ended_before(&retention.states, before, BATCH).await {
                Ok(ended) => ended,
                Err(error) => {
                    tracing::warn!(%error, "cannot read which downloads to forget; trying again later");
                    return forgotten;
                }
            };
            let last_batch = ended.len() < BATCH as usize;
            for (account, id) in ended {
                // Another node may have forgotten it first, or a client removed it: either way it is gone.
                match self.remove(&account, id, retention.delete_files).await {
                    Ok(_) => forgotten += 1,
                    Err(super::ServiceError::NotFound(_)) => {}
                    Err(error) => {
                        tracing::warn!(%id, %error, "cannot forget a download; trying again later");
                        return forgotten;
                    }
                }
                if self.inner.shutdown.is_cancelled() {
                    return forgotten;
                }
            }
            if last_batch {
                return forgotten;
            }
        }
    }
}
