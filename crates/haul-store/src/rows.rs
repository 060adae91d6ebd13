//! Reading rows into domain types, shared by the backends: each backend's row type reads its cells through
//! [`Cells`], and everything above it (which column means what, what is corrupt) is written once here.
//!
//! Integers are stored as signed 64-bit in both backends (SQLite has nothing else, PostgreSQL's `BIGINT`), and
//! flags as SQLite integers or PostgreSQL booleans, which both drivers decode as `bool`.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use haul_core::job::{DownloadId, JobState};
use haul_core::labels::Labels;
use haul_core::media_choice::MediaChoice;
use sqlx::Row;

use crate::accounts::{Account, ApiKey};
use crate::{DeliveryRecord, DownloadRecord, NodeRecord, PlaylistTotals, Rendition, StoreError, WebhookRecord};

/// The cells of one row, by column name, in the types haul stores.
pub(crate) trait Cells {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, column: &str) -> Result<f64, StoreError>;
    fn opt_real(&self, column: &str) -> Result<Option<f64>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
}

macro_rules! cells_for {
    ($row:ty) => {
        impl Cells for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn real(&self, column: &str) -> Result<f64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_real(&self, column: &str) -> Result<Option<f64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

cells_for!(sqlx::sqlite::SqliteRow);
cells_for!(sqlx::postgres::PgRow);

/// A row of `ended_before`: whose download, and which.
pub(crate) fn ended_from_row(row: &impl Cells) -> Result<(haul_core::job::AccountId, DownloadId), StoreError> {
    Ok((parse_column(row.text("account")?, "account id")?, parse_column(row.text("id")?, "download id")?))
}

/// States as `ended_before` matches them: `,completed,failed,`.
pub(crate) fn state_list(states: &[JobState]) -> String {
    let names: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
    format!(",{},", names.join(","))
}

pub(crate) fn account_from_row(row: &impl Cells) -> Result<Account, StoreError> {
    Ok(Account {
        id: parse_column(row.text("id")?, "account id")?,
        name: row.text("name")?,
        email: row.opt_text("email")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn key_from_row(row: &impl Cells) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.text("id")?,
        account: parse_column(row.text("account_id")?, "key's account")?,
        kind: parse_column(row.text("kind")?, "key kind")?,
        prefix: row.text("prefix")?,
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub(crate) fn rendition_from_row(row: &impl Cells) -> Result<Rendition, StoreError> {
    Ok(Rendition {
        download: parse_column(row.text("download_id")?, "rendition's download")?,
        name: parse_column(row.text("name")?, "rendition name")?,
        state: parse_column(row.text("state")?, "rendition state")?,
        percent: row.real("percent")?,
        path: row.opt_text("path")?,
        error: row.opt_text("error")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn record_from_row(row: &impl Cells) -> Result<DownloadRecord, StoreError> {
    let id: DownloadId = parse_column(row.text("id")?, "download id")?;
    let corrupt =
        |what: &str, error: serde_json::Error| StoreError::caused(format!("download {id} has a corrupt {what}"), error);
    let labels = Labels {
        meta: match row.opt_text("meta")? {
            Some(text) => serde_json::from_str(&text).map_err(|error| corrupt("meta object", error))?,
            None => serde_json::Map::new(),
        },
        creator: row.opt_text("creator")?,
        thumbnail_at: row.opt_real("thumbnail_at")?,
        require_signed_urls: row.flag("require_signed_urls")?,
    };
    Ok(DownloadRecord {
        id,
        account: parse_column(row.text("account")?, "download's account")?,
        url: row.text("url")?,
        mirrors: serde_json::from_str(&row.text("mirrors")?).map_err(|error| corrupt("mirrors list", error))?,
        kind: parse_column(row.text("kind")?, "download kind")?,
        title: row.opt_text("title")?,
        quality: parse_column(row.text("quality")?, "quality")?,
        duration: row.opt_real("duration")?,
        width: optional_narrow(row.opt_int("width")?, "width")?,
        height: optional_narrow(row.opt_int("height")?, "height")?,
        format: row.opt_text("format")?,
        thumbnail: row.opt_text("thumbnail")?,
        state: parse_state(row.text("state")?, id)?,
        priority: narrow(row.int("priority")?, "priority")?,
        filename: row.opt_text("filename")?,
        directory: row.opt_text("directory")?,
        path: row.opt_text("path")?,
        size: optional_from_db(row.opt_int("size")?, "size")?,
        bytes_done: from_db(row.int("bytes_done")?, "bytes_done")?,
        speed: from_db(row.int("speed")?, "speed")?,
        eta_secs: optional_from_db(row.opt_int("eta_secs")?, "eta_secs")?,
        connections: narrow(row.int("connections")?, "connections")?,
        error: row.opt_text("error")?,
        checksum: row.opt_text("checksum")?,
        headers: serde_json::from_str(&row.text("headers")?).map_err(|error| corrupt("headers list", error))?,
        connections_limit: optional_narrow(row.opt_int("connections_limit")?, "connections_limit")?,
        speed_limit: optional_from_db(row.opt_int("speed_limit")?, "speed_limit")?,
        created_at: row.int("created_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        labels,
        name_with_id: row.flag("name_with_id")?,
        check_archive: row.flag("check_archive")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires: row.opt_int("lease_expires")?,
        held_by: row.opt_text("held_by")?,
        media: match row.opt_text("media_options")? {
            Some(text) => serde_json::from_str(&text).map_err(|error| corrupt("media options", error))?,
            None => MediaChoice::default(),
        },
        subtitles: match row.opt_text("subtitles")? {
            Some(text) => serde_json::from_str(&text).map_err(|error| corrupt("subtitles list", error))?,
            None => Vec::new(),
        },
        parent: row.opt_text("parent_id")?.map(|text| parse_column(text, "playlist id")).transpose()?,
        playlist_index: optional_narrow(row.opt_int("playlist_index")?, "playlist_index")?,
        playlist_item: optional_narrow(row.opt_int("playlist_item")?, "playlist_item")?,
        playlist_items: row.opt_text("playlist_items")?,
        playlist_skipped: optional_narrow(row.opt_int("playlist_skipped")?, "playlist_skipped")?,
        name_template: row.opt_text("name_template")?,
    })
}

pub(crate) fn playlist_totals_from_row(row: &impl Cells) -> Result<PlaylistTotals, StoreError> {
    let count = |name: &str| -> Result<u32, StoreError> { narrow(row.opt_int(name)?.unwrap_or(0), name) };
    Ok(PlaylistTotals {
        parent: parse_column(row.text("parent_id")?, "playlist id")?,
        entries: count("entries")?,
        completed: count("completed")?,
        failed: count("failed")?,
        cancelled: count("cancelled")?,
        bytes_done: from_db(row.opt_int("bytes_done")?.unwrap_or(0), "bytes_done")?,
        size: optional_from_db(row.opt_int("size")?, "size")?,
    })
}

pub(crate) fn node_from_row(row: &impl Cells) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        id: row.text("id")?,
        advertise_url: row.opt_text("advertise_url")?,
        version: row.text("version")?,
        started_at: row.int("started_at")?,
        last_seen: row.int("last_seen")?,
        active: from_db(row.int("active")?, "active")?,
    })
}

/// A webhook's events as stored: `,completed,failed,`, or `,*,` for every event (what the triggers test).
pub(crate) fn events_to_db(events: &[String]) -> String {
    if events.is_empty() { ",*,".to_owned() } else { format!(",{},", events.join(",")) }
}

fn events_from_db(text: &str) -> Vec<String> {
    text.split(',').filter(|name| !name.is_empty() && *name != "*").map(str::to_owned).collect()
}

pub(crate) fn webhook_from_row(row: &impl Cells) -> Result<WebhookRecord, StoreError> {
    Ok(WebhookRecord {
        id: row.text("id")?,
        account: parse_column(row.text("account")?, "webhook's account")?,
        url: row.text("url")?,
        events: events_from_db(&row.text("events")?),
        secret: row.text("secret")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn delivery_from_row(row: &impl Cells) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: row.text("id")?,
        webhook: row.text("webhook")?,
        account: parse_column(row.text("account")?, "delivery's account")?,
        download: parse_column(row.text("download")?, "delivery's download")?,
        event: row.text("event")?,
        payload: row.text("payload")?,
        occurred_at: row.int("occurred_at")?,
        state: parse_column(row.text("state")?, "delivery state")?,
        attempts: narrow(row.int("attempts")?, "attempts")?,
        next_attempt_at: row.int("next_attempt_at")?,
        last_status: optional_narrow(row.opt_int("last_status")?, "last_status")?,
        last_error: row.opt_text("last_error")?,
        delivered_at: row.opt_int("delivered_at")?,
    })
}

/// Which deliveries are due at `now` (a parameter, `?1` or `$1`), over `d`: pending, their time come, not
/// claimed by a live claim, and the oldest pending one of their (webhook, download), so one job's events go out
/// in order.
pub(crate) fn due_deliveries(now: &str) -> String {
    DUE_DELIVERIES.replace("NOW_PARAM", now)
}

const DUE_DELIVERIES: &str = "d.state = 'pending' AND d.next_attempt_at <= NOW_PARAM
    AND (d.claimed_until IS NULL OR d.claimed_until <= NOW_PARAM)
    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                    WHERE e.webhook = d.webhook AND e.download = d.download AND e.state = 'pending' AND e.seq < d.seq)";

pub(crate) fn due_from_row(row: &impl Cells) -> Result<crate::DueDelivery, StoreError> {
    Ok(crate::DueDelivery {
        delivery: delivery_from_row(row)?,
        url: row.text("webhook_url")?,
        secret: row.text("webhook_secret")?,
    })
}

pub(crate) fn webhook_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook {id}"))
}

/// The columns an attempt writes: state, next attempt, delivered at (see `Store::record_attempt`).
pub(crate) fn attempt_columns(attempt: &crate::DeliveryAttempt, now: i64) -> (&'static str, Option<i64>, Option<i64>) {
    match attempt.next {
        crate::AttemptOutcome::Delivered => ("delivered", None, Some(now)),
        crate::AttemptOutcome::RetryAt(at) => ("pending", Some(at), None),
        crate::AttemptOutcome::GiveUp => ("failed", None, None),
    }
}

/// A lease-checked write that found the download no longer `node`'s: it is `current` now.
pub(crate) fn lease_lost(id: DownloadId, node: &str, current: JobState) -> StoreError {
    StoreError::Conflict { current, message: format!("download {id} is {current} and no longer leased to {node}") }
}

pub(crate) fn not_found(id: DownloadId) -> StoreError {
    StoreError::NotFound(format!("download {id}"))
}

pub(crate) fn parse_state(text: String, id: DownloadId) -> Result<JobState, StoreError> {
    text.parse().map_err(|error| StoreError::caused(format!("download {id} has a corrupt state"), error))
}

/// A stored name or id read back into its type; a value that does not parse is corrupt data, not a caller's
/// mistake.
pub(crate) fn parse_column<T>(text: String, what: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|error| StoreError::caused(format!("corrupt {what} in the database"), error))
}

/// `meta` as stored: NULL when empty.
/// A media choice as stored: NULL when every field is its default.
pub(crate) fn media_choice_to_db(choice: &MediaChoice) -> Result<Option<String>, StoreError> {
    if choice.is_default() { Ok(None) } else { to_json(choice).map(Some) }
}

pub(crate) fn meta_to_db(labels: &Labels) -> Result<Option<String>, StoreError> {
    if labels.meta.is_empty() { Ok(None) } else { to_json(&labels.meta).map(Some) }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::caused("cannot encode a list as JSON", error))
}

/// Stored integers are signed 64-bit; no byte count or rate comes near 2^63, so saturating loses nothing real.
pub(crate) fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(value: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::other(format!("negative {column} in the database: {value}")))
}

pub(crate) fn optional_from_db(value: Option<i64>, column: &str) -> Result<Option<u64>, StoreError> {
    value.map(|value| from_db(value, column)).transpose()
}

/// A stored integer into a narrower type (a count, a priority); out of its range is corrupt data.
fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::other(format!("{column} out of range in the database: {value}")))
}

fn optional_narrow<T: TryFrom<i64>>(value: Option<i64>, column: &str) -> Result<Option<T>, StoreError> {
    value.map(|value| narrow(value, column)).transpose()
}

pub(crate) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Wall-clock time, because leases are compared across processes and, with PostgreSQL, across machines (whose
/// clocks must agree to well within a lease, as NTP keeps them).
pub(crate) fn now_millis() -> i64 {
    haul_core::clock::unix_millis(SystemTime::now())
}

/// A rule's extensions as stored: `iso,tar.gz`, or NULL for none (extensions never hold a comma).
pub(crate) fn extensions_to_db(extensions: &[String]) -> Option<String> {
    (!extensions.is_empty()).then(|| extensions.join(","))
}

pub(crate) fn rule_from_row(row: &impl Cells) -> Result<crate::RuleRecord, StoreError> {
    let extensions = row.opt_text("extensions")?.unwrap_or_default();
    Ok(crate::RuleRecord {
        id: row.text("id")?,
        account: parse_column(row.text("account")?, "rule's account")?,
        position: narrow(row.int("position")?, "position")?,
        name: row.opt_text("name")?,
        host: row.opt_text("host")?,
        url_pattern: row.opt_text("url_pattern")?,
        extensions: extensions.split(',').filter(|extension| !extension.is_empty()).map(str::to_owned).collect(),
        directory: row.opt_text("directory")?,
        priority: optional_narrow(row.opt_int("priority")?, "priority")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn rule_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("rule {id}"))
}

/// Where a rule asked for at `wanted` goes among `count` others (or, moving, `count` in all): 1 to the end.
pub(crate) fn rule_position(wanted: Option<u32>, last: i64) -> i64 {
    wanted.map_or(last, |wanted| i64::from(wanted).clamp(1, last.max(1)))
}

pub(crate) fn archive_from_row(row: &impl Cells) -> Result<crate::ArchiveRecord, StoreError> {
    Ok(crate::ArchiveRecord {
        id: row.text("id")?,
        account: parse_column(row.text("account")?, "archive entry's account")?,
        extractor: row.text("extractor")?,
        video_id: row.text("video_id")?,
        url: row.text("url")?,
        title: row.opt_text("title")?,
        download: row.opt_text("download")?.map(|id| parse_column(id, "archive entry's download")).transpose()?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn archive_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("archive entry {id}"))
}

pub(crate) fn cookie_from_row(row: &impl Cells) -> Result<crate::CookieRecord, StoreError> {
    Ok(crate::CookieRecord {
        domain: row.text("domain")?,
        subdomains: row.flag("subdomains")?,
        path: row.text("path")?,
        secure: row.flag("secure")?,
        http_only: row.flag("http_only")?,
        expires: optional_from_db(row.opt_int("expires")?, "expires")?,
        name: row.text("name")?,
        value: row.text("value")?,
    })
}
