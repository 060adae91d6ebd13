//! Compatibility dialects: other download managers' HTTP APIs, each a thin translation layer over the one
//! job model (`haul_engine::service::Engine`). A dialect owns no state: a job made through one API is visible
//! to the same account through all the others, the native `/v1` included.

pub(crate) mod cloudflare;
pub(crate) mod surge;
pub(crate) mod videodb;
pub(crate) mod ytdlp_app;

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use haul_engine::service::DownloadView;

/// The path a dialect is mounted at (`/api`, `/videodb`; empty at the root of its own listener), for the URLs
/// its answers point back into it with.
pub(crate) struct Mount(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Mount {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = match OriginalUri::from_request_parts(parts, state).await {
            Ok(OriginalUri(uri)) => uri,
            Err(never) => match never {},
        };
        Ok(Self(original.path().strip_suffix(&inner).unwrap_or("").to_owned()))
    }
}

/// A stored time (unix milliseconds) as RFC 3339 / ISO 8601 in UTC, to the second: `2026-11-29T10:00:00Z`.
pub(crate) fn rfc3339(millis: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// How far along a download is, 0-100 with one decimal; 100 once completed (an empty file included), 0 while
/// the size is unknown.
pub(crate) fn percent(view: &DownloadView) -> f64 {
    if view.state == haul_core::job::JobState::Completed {
        return 100.0;
    }
    match view.size {
        Some(size) if size > 0 => ((view.bytes_done as f64 * 1000.0 / size as f64).floor() / 10.0).min(100.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use haul_core::job::JobState;

    use super::*;

    /// The README's table of states in each API, row by row; a change to one mapping must change both.
    #[test]
    fn states_in_each_api() {
        use JobState::*;
        let table = [
            // haul, yt-dlp web app, Surge, VideoDB, Cloudflare Stream (video)
            (Queued, "pending", "queued", "processing", "queued"),
            (Active, "downloading", "downloading", "processing", "inprogress"),
            (Paused, "pending", "paused", "processing", "queued"),
            (Completed, "completed", "completed", "done", "ready"),
            (Failed, "error", "error", "error", "error"),
            (Cancelled, "cancelled", "error", "error", "error"),
        ];
        assert_eq!(table.map(|row| row.0), JobState::ALL, "every state, once");
        for (state, app, surge, videodb, stream) in table {
            let got = (
                ytdlp_app::app_status(state),
                surge::surge_status(state),
                videodb::videodb_status(state),
                cloudflare::stream_state(state),
            );
            assert_eq!(got, (app, surge, videodb, stream), "{state:?}");
        }
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_824_000_999), "2026-11-28T00:00:00Z");
    }
}
