//! The rows the store keeps and the inputs it takes: plain data shared by every backend.
//!
//! These live here rather than in haul-core because they are the persistence interface (they carry the
//! scheduler's lease columns and the store's query inputs), while core keeps the rules with edge cases worth
//! testing on their own: ids and the state machine in `haul_core::job`.

use haul_core::job::{AccountId, DownloadId, JobKind, JobState};
use haul_core::labels::Labels;
use haul_core::media::{Quality, RenditionName, RenditionState};
use haul_core::media_choice::{MediaChoice, SubtitleFile};
use serde::Serialize;

/// One download as stored. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DownloadRecord {
    pub id: DownloadId,
    pub account: AccountId,
    pub url: String,
    /// Other URLs serving the same bytes, tried when `url` fails.
    pub mirrors: Vec<String>,
    /// What fetches it; `auto` until the first run decides.
    pub kind: JobKind,
    /// A display name given by the client (VideoDB `name`, Cloudflare `meta.name`) or, for media, the title.
    pub title: Option<String>,
    /// The quality asked for; plain files are fetched as they are.
    pub quality: Quality,
    /// Media only, once known: seconds, the video's size, the chosen formats (`v720+a1`), and the thumbnail's
    /// file name under `thumbnails/`.
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: Option<String>,
    pub thumbnail: Option<String>,
    pub state: JobState,
    /// Higher runs first; ties go to the oldest.
    pub priority: i32,
    pub filename: Option<String>,
    /// Directory relative to the downloads root, as the user asked for it.
    pub directory: Option<String>,
    /// Where the file is (or will be) once the engine has chosen a safe name.
    pub path: Option<String>,
    pub size: Option<u64>,
    pub bytes_done: u64,
    /// Bytes per second; zero unless active.
    pub speed: u64,
    pub eta_secs: Option<u64>,
    /// Connections open now; zero unless active.
    pub connections: u32,
    /// Why the last transition happened, when it was a failure.
    pub error: Option<String>,
    /// Expected digest as the user wrote it (`sha256=HEX`); parsed by `haul_core::checksum`.
    pub checksum: Option<String>,
    /// Extra request headers as (name, value), in the user's order.
    pub headers: Vec<(String, String)>,
    pub connections_limit: Option<u32>,
    /// Bytes per second for this download alone.
    pub speed_limit: Option<u64>,
    pub created_at: i64,
    /// When the download first became active; kept across pause, resume and retry.
    pub started_at: Option<i64>,
    /// When it last reached completed, failed or cancelled; cleared when it leaves them.
    pub finished_at: Option<i64>,
    /// What the client attached for its own bookkeeping.
    pub labels: Labels,
    /// Named `{name}__{id}.{ext}` (the yt-dlp web app's layout) rather than as the server offers it.
    pub name_with_id: bool,
    /// Looks in the account's archive before fetching: a video or file already downloaded is not fetched again.
    pub check_archive: bool,
    /// The node running it, while active.
    pub lease_owner: Option<String>,
    /// Until when `lease_owner` holds it; after that another claim may take it over.
    pub lease_expires: Option<i64>,
    /// The node whose downloads directory holds the finished file: the lease owner when it completed. With
    /// node-local directories, another node serves the file by asking this one.
    pub held_by: Option<String>,
    /// The playlist this download is an entry of.
    pub parent: Option<DownloadId>,
    /// Its position in that playlist, from 1.
    pub playlist_index: Option<u32>,
    /// Set when `url` is the playlist's own page: this download is that page's entry at this position.
    pub playlist_item: Option<u32>,
    /// A playlist's selection of entries as asked (`1-5,8`); all when `None`.
    pub playlist_items: Option<String>,
    /// Entries a playlist left out because the account's archive holds them.
    pub playlist_skipped: Option<u32>,
    /// How a media file is named (`{title} [{id}].{ext}`), as the client wrote it; `{title}__{id}.{ext}` when
    /// `None`.
    pub name_template: Option<String>,
    /// Media: what it chooses beyond its quality (formats, subtitles, embedding).
    pub media: MediaChoice,
    /// Media: the subtitle files it saved beside its file.
    pub subtitles: Vec<SubtitleFile>,
}

/// What a new download starts from. Validation (URL scheme, header names, checksum syntax) is the caller's job;
/// the store keeps what it is given.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDownload {
    pub account: AccountId,
    pub url: String,
    pub mirrors: Vec<String>,
    pub filename: Option<String>,
    pub directory: Option<String>,
    pub title: Option<String>,
    pub quality: Quality,
    pub kind: JobKind,
    pub checksum: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connections_limit: Option<u32>,
    pub speed_limit: Option<u64>,
    pub priority: i32,
    /// Start in `paused` instead of `queued`, so nothing is fetched until the user resumes it.
    pub start_paused: bool,
    pub labels: Labels,
    /// Name the file `{name}__{id}.{ext}` rather than as the server offers it.
    pub name_with_id: bool,
    /// An entry of this playlist, at `playlist_index` (see [`DownloadRecord::playlist_item`]).
    pub parent: Option<DownloadId>,
    pub playlist_index: Option<u32>,
    pub playlist_item: Option<u32>,
    /// Which entries to take, should the URL be a playlist (`1-5,8`).
    pub playlist_items: Option<String>,
    /// How a media file is named (checked by the engine before it is stored).
    pub name_template: Option<String>,
    /// Media: what it chooses beyond its quality.
    pub media: MediaChoice,
    /// Look in the account's archive before fetching (an add without `force`).
    pub check_archive: bool,
}

impl NewDownload {
    /// A download of `url` for `account` with every option at its default.
    pub fn new(account: AccountId, url: impl Into<String>) -> Self {
        Self {
            account,
            url: url.into(),
            mirrors: Vec::new(),
            filename: None,
            directory: None,
            title: None,
            quality: Quality::Best,
            kind: JobKind::File,
            checksum: None,
            headers: Vec::new(),
            connections_limit: None,
            speed_limit: None,
            priority: 0,
            start_paused: false,
            labels: Labels::default(),
            name_with_id: false,
            parent: None,
            playlist_index: None,
            playlist_item: None,
            playlist_items: None,
            name_template: None,
            media: MediaChoice::default(),
            check_archive: false,
        }
    }
}

/// A file made from a download on request (Cloudflare Stream's `default` and `audio` downloads). The `default`
/// rendition is the download's own file, so its progress is the download's; derived ones carry their own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rendition {
    pub download: DownloadId,
    pub name: RenditionName,
    pub state: RenditionState,
    /// 0-100.
    pub percent: f64,
    /// Relative to the downloads directory, once made.
    pub path: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

/// A rendition's progress, written by whoever makes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenditionUpdate {
    pub state: Option<RenditionState>,
    pub percent: Option<f64>,
    pub path: Option<String>,
    pub error: Option<String>,
}

/// Which of an account's downloads to list, newest first unless `oldest_first`. Every condition given must
/// hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only downloads in one of these states; all states when empty.
    pub states: Vec<JobState>,
    /// Only these downloads; any when empty.
    pub ids: Vec<DownloadId>,
    /// Only downloads whose title, file name or URL contains this text (ASCII case ignored).
    pub search: Option<String>,
    /// Only downloads with exactly this title.
    pub title: Option<String>,
    /// Only downloads with this creator label.
    pub creator: Option<String>,
    /// Only downloads created at or after / before this time (unix milliseconds).
    pub created_from: Option<i64>,
    pub created_before: Option<i64>,
    /// Only the entries of this playlist.
    pub parent: Option<DownloadId>,
    pub oldest_first: bool,
    /// At most this many; all when `None`.
    pub limit: Option<u32>,
    pub offset: u32,
}

/// What the engine reports about a running download.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub bytes_done: u64,
    /// `None` keeps the known size (a stream of unknown length does not erase it).
    pub size: Option<u64>,
    pub speed: u64,
    pub eta_secs: Option<u64>,
    pub connections: u32,
    /// `None` keeps what is stored: the name and path are only known after the probe.
    pub filename: Option<String>,
    pub path: Option<String>,
}

/// What a media download learned about its video; `None` keeps what is stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaUpdate {
    pub kind: Option<JobKind>,
    pub title: Option<String>,
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: Option<String>,
    pub thumbnail: Option<String>,
    /// The subtitle files saved (replacing the list) when `Some`.
    pub subtitles: Option<Vec<SubtitleFile>>,
}

/// A user's edit of a download; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DownloadPatch {
    /// Only while paused or failed: a running fetch would mix two origins' bytes.
    pub url: Option<String>,
    pub priority: Option<i32>,
    /// A new display name.
    pub title: Option<String>,
    /// Replaces every label at once.
    pub labels: Option<Labels>,
    /// A new speed limit (`Some(None)` lifts it), taken up by a running download within a second.
    pub speed_limit: Option<Option<u64>>,
}

/// How many downloads are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub queued: u64,
    pub active: u64,
    pub paused: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl StateCounts {
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Active => self.active,
            JobState::Paused => self.paused,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
        }
    }

    pub fn total(&self) -> u64 {
        JobState::ALL.into_iter().map(|state| self.get(state)).sum()
    }

    pub(crate) fn slot(&mut self, state: JobState) -> &mut u64 {
        match state {
            JobState::Queued => &mut self.queued,
            JobState::Active => &mut self.active,
            JobState::Paused => &mut self.paused,
            JobState::Completed => &mut self.completed,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        }
    }
}

/// What a node says about itself on every heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeBeat {
    pub node: String,
    /// Where other nodes reach its API (`--advertise-url`), to fetch the files it holds.
    pub advertise_url: Option<String>,
    pub version: String,
}

/// A node as the store knows it. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    pub advertise_url: Option<String>,
    pub version: String,
    pub started_at: i64,
    pub last_seen: i64,
    /// Downloads it holds a live lease on.
    pub active: u64,
}

/// An event as stored for every node to read (see `Store::wait_events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub kind: String,
    pub account: String,
    /// The event's body, as its writer encoded it.
    pub payload: String,
}

/// What [`Store::create_once`](crate::Store::create_once) did.
#[derive(Clone, Debug, PartialEq)]
pub enum CreatedOnce {
    /// A new download, now bound to the key.
    Created(DownloadRecord),
    /// The download the key was first used for, with the same request.
    Replayed(DownloadRecord),
    /// The key was used, at `created_at` (unix milliseconds), for another request.
    KeyReused { created_at: i64 },
}

/// An account's webhook: where deliveries go, which events it wants, and the secret that signs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRecord {
    /// A UUID.
    pub id: String,
    pub account: AccountId,
    pub url: String,
    /// The event names it wants; empty for every event.
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: i64,
}

/// A webhook to store: [`Store::create_webhook`](crate::Store::create_webhook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    pub account: AccountId,
    pub url: String,
    /// Event names; empty for every event.
    pub events: Vec<String>,
    pub secret: String,
}

haul_core::named_enum! {
    /// Where a delivery is.
    pub enum DeliveryState as "delivery state" {
        /// Not yet answered with a 2xx; tried again at `next_attempt_at`.
        Pending = "pending",
        Delivered = "delivered",
        /// Given up on, after retrying for as long as the engine tries.
        Failed = "failed",
    }
}

/// One event to one webhook, as stored (written by the store's triggers when a download changes state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// A UUID, the same on every attempt: receivers dedupe on it.
    pub id: String,
    pub webhook: String,
    pub account: AccountId,
    pub download: DownloadId,
    /// The engine's event name (`added`, `started`, `completed`, ...).
    pub event: String,
    /// The download as it was when the event happened, JSON.
    pub payload: String,
    pub occurred_at: i64,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// The HTTP status of the last attempt, when one came back.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// A delivery a node claimed to send, with what sending it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: DeliveryRecord,
    pub url: String,
    pub secret: String,
}

/// What one attempt at a delivery came to: [`Store::record_attempt`](crate::Store::record_attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The status the receiver answered, if it answered.
    pub status: Option<u16>,
    /// Why it failed (a non-2xx answer, a network error, a refused destination); `None` when delivered.
    pub error: Option<String>,
    /// What happens next.
    pub next: AttemptOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Tried again at this time (unix milliseconds).
    RetryAt(i64),
    GiveUp,
}

/// An account's rule (a category): which new downloads it applies to, and the directory and priority it gives
/// them. The first of the account's rules, by `position`, that a download matches is the one that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRecord {
    /// A UUID.
    pub id: String,
    pub account: AccountId,
    /// 1 for the account's first rule, then 2, 3, ... with no gaps.
    pub position: u32,
    pub name: Option<String>,
    /// Conditions, normalised by `haul_core::rules::RuleConditions::parse`.
    pub host: Option<String>,
    pub url_pattern: Option<String>,
    pub extensions: Vec<String>,
    /// Effects: a directory under the downloads root, a priority.
    pub directory: Option<String>,
    pub priority: Option<i32>,
    pub created_at: i64,
}

/// A rule to store: [`Store::create_rule`](crate::Store::create_rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRule {
    pub account: AccountId,
    /// Where it goes among the account's rules (1 is first; the ones from there move down one); the end when
    /// `None` or past the end.
    pub position: Option<u32>,
    pub name: Option<String>,
    pub host: Option<String>,
    pub url_pattern: Option<String>,
    pub extensions: Vec<String>,
    pub directory: Option<String>,
    pub priority: Option<i32>,
}

/// A change to a rule: [`Store::update_rule`](crate::Store::update_rule). `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulePatch {
    /// A new name; `Some(None)` removes it.
    pub name: Option<Option<String>>,
    /// Move it there (1 is first; past the end is the end); the rules in between shift by one.
    pub position: Option<u32>,
}

/// A playlist's children taken together, read when the playlist is shown: how many there are in each state and
/// their bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistTotals {
    pub parent: DownloadId,
    pub entries: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub bytes_done: u64,
    /// The sum of the children's sizes, once every child's is known.
    pub size: Option<u64>,
}

/// What an account has downloaded, kept so that adding it again is skipped ([`Store::archive_entry`]). A video is
/// `(extractor, video_id)` as yt-dlp names them; a plain file is extractor `http` and a digest of its URL,
/// validator and length.
///
/// [`Store::archive_entry`]: crate::Store::archive_entry
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// A UUID.
    pub id: String,
    pub account: AccountId,
    pub extractor: String,
    pub video_id: String,
    /// The URL it was added with (a page, or the file).
    pub url: String,
    pub title: Option<String>,
    /// The download that fetched it; it may have been removed since.
    pub download: Option<DownloadId>,
    pub created_at: i64,
}

/// An entry to record: [`Store::record_archive`](crate::Store::record_archive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewArchiveEntry {
    pub account: AccountId,
    pub extractor: String,
    pub video_id: String,
    pub url: String,
    pub title: Option<String>,
    pub download: Option<DownloadId>,
}

/// One cookie of an account's jar, as a Netscape cookies.txt line holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieRecord {
    /// Without a leading dot, lowercase.
    pub domain: String,
    /// Sent to subdomains of `domain` too.
    pub subdomains: bool,
    pub path: String,
    /// Only over https.
    pub secure: bool,
    /// Written `#HttpOnly_` in cookies.txt; kept so the file yt-dlp gets says so too.
    pub http_only: bool,
    /// Unix seconds; `None` for a session cookie.
    pub expires: Option<u64>,
    pub name: String,
    pub value: String,
}

// By hand: a cookie's value is a login, and a `{:?}` in a log line must not carry it.
impl std::fmt::Debug for CookieRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieRecord")
            .field("domain", &self.domain)
            .field("subdomains", &self.subdomains)
            .field("path", &self.path)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("expires", &self.expires)
            .field("name", &self.name)
            .field("value", &"***")
            .finish()
    }
}
