//! The service's own request and view types: what the API hands in and gets back.
//!
//! **API boundary**: callers of [`Engine`](super::Engine) see these and never the store's rows, so a new column
//! or a new backend changes `haul-store` and the conversions at the bottom of this file, not the handlers.

use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobKind, JobState};
pub use haul_core::labels::Labels;
use haul_core::media::{Quality, RenditionName, RenditionState};
pub use haul_core::media_choice::{MediaChoice, SubtitleFile};
use haul_store::{ApiKey, DownloadPatch, DownloadRecord, ListFilter, Rendition};

/// A new download as a client asks for it; validated by [`Engine::add`](super::Engine::add).
#[derive(Clone, Debug, Default)]
pub struct AddRequest {
    pub url: String,
    pub mirrors: Vec<String>,
    pub filename: Option<String>,
    /// A directory under the downloads root.
    pub directory: Option<String>,
    pub checksum: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connections: Option<u32>,
    pub speed_limit: Option<u64>,
    pub priority: i32,
    pub start_paused: bool,
    /// A display name (VideoDB `name`, Cloudflare `meta.name`); the file name is chosen separately.
    pub title: Option<String>,
    /// `None` is [`Quality::Best`].
    pub quality: Option<Quality>,
    /// `None` is [`JobKind::Auto`].
    pub kind: Option<JobKind>,
    pub labels: Labels,
    /// Name the file `{name}__{id}.{ext}` (the yt-dlp web app's layout) rather than as the server offers it.
    pub name_with_id: bool,
    /// Which entries to take, should the URL be a playlist (`1-5,8`); all of them (up to the server's cap) when
    /// `None`.
    pub playlist_items: Option<String>,
    /// How a media file is named (`{title} [{id}].{ext}`, see `haul_core::media::NameTemplate`); a playlist's
    /// entries take their playlist's.
    pub name_template: Option<String>,
    /// Media: formats, subtitles and embedding beyond the quality; checked by [`Engine::add`](super::Engine::add)
    /// (a format selector by yt-dlp itself).
    pub media: MediaChoice,
    /// Skip it when the account's archive holds it (checked at add and again once a page is read): the native
    /// API's default, which its `force` turns off. The compatible APIs leave it off, as the systems they stand
    /// in for make a new job for every add.
    pub check_archive: bool,
}

/// A download as clients see it: the stored job with live progress laid over it while it runs.
/// Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DownloadView {
    pub id: DownloadId,
    pub account: AccountId,
    pub url: String,
    /// Other URLs serving the same bytes, tried when `url` fails.
    pub mirrors: Vec<String>,
    /// What fetches it; `auto` until the first run decides.
    pub kind: JobKind,
    /// A display name given by the client or, for media, the page's title.
    pub title: Option<String>,
    pub quality: Quality,
    /// Media only, once known: seconds, the video's size, the chosen formats (`v720+a1`), and the thumbnail's
    /// file name.
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: Option<String>,
    pub thumbnail: Option<String>,
    pub state: JobState,
    /// Higher runs first; ties go to the oldest.
    pub priority: i32,
    pub filename: Option<String>,
    /// Relative to the downloads root, as the client asked for it.
    pub directory: Option<String>,
    /// Where the file is (or will be), relative to the downloads root, once a safe name is chosen.
    pub path: Option<String>,
    pub size: Option<u64>,
    pub bytes_done: u64,
    /// Bytes per second; zero unless active.
    pub speed: u64,
    pub eta_secs: Option<u64>,
    /// Connections open now; zero unless active.
    pub connections: u32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub checksum: Option<String>,
    /// Extra request headers as (name, value), in the client's order.
    pub headers: Vec<(String, String)>,
    pub connections_limit: Option<u32>,
    pub speed_limit: Option<u64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// What the client attached for its own bookkeeping.
    pub labels: Labels,
    pub name_with_id: bool,
    /// The node running it while active; once completed, the node whose downloads directory holds the file.
    pub node: Option<String>,
    /// Media: what it chose beyond its quality.
    #[serde(default)]
    pub media: MediaChoice,
    /// Media: the subtitle files saved beside the file (paths relative to the downloads root).
    #[serde(default)]
    pub subtitles: Vec<SubtitleFile>,
    /// The playlist this download is an entry of, and its position there (from 1).
    pub parent: Option<DownloadId>,
    pub playlist_index: Option<u32>,
    /// A playlist's entries taken together (kind `playlist`, once read); its `size` and `bytes_done` are
    /// theirs too.
    pub playlist: Option<PlaylistView>,
    /// How a media file is named, as the client wrote it.
    pub name_template: Option<String>,
}

/// A playlist's entries taken together.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaylistView {
    /// The entries that became downloads.
    pub entries: u32,
    pub completed: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// The selection asked for (`1-5,8`); every entry when `None`.
    pub items: Option<String>,
    /// Entries left out because the account's download archive holds them.
    pub skipped: u32,
}

/// Which of an account's downloads to list, newest first unless `oldest_first`. Every condition given must
/// hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
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

/// A client's edit of a download; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchRequest {
    /// Only while paused or failed: a running fetch would mix two origins' bytes.
    pub url: Option<String>,
    pub priority: Option<i32>,
    /// A new display name.
    pub title: Option<String>,
    /// Replaces every label at once; start from the download's own to change one.
    pub labels: Option<Labels>,
    /// A new speed limit in bytes per second (`Some(None)` lifts it); a running download takes it up at once.
    pub speed_limit: Option<Option<u64>>,
}

/// A file made from a download on request (see [`RenditionName`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionView {
    pub download: DownloadId,
    pub name: RenditionName,
    pub state: RenditionState,
    /// 0-100.
    pub percent: f64,
    pub error: Option<String>,
    pub created_at: i64,
}

/// An unfinished download's resume record, as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferView {
    pub size: Option<u64>,
    /// The validators a resumed fetch must still match (the file changed on the server otherwise).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Byte ranges on disk, `[start, end)`, in order.
    pub done: Vec<(u64, u64)>,
}

/// Totals for one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsView {
    pub active: u64,
    pub queued: u64,
    pub paused: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
    /// Bytes per second over all of the account's running downloads, on every node.
    pub speed: u64,
    /// The node that answered, and its store's backend (`sqlite`, `postgres`).
    pub node: String,
    pub backend: &'static str,
}

/// What an add with an idempotency key did (`Engine::add_once`).
#[derive(Clone, Debug, PartialEq)]
pub enum AddedOnce {
    Created(DownloadView),
    /// The key's first download, for the same request again.
    Replayed(DownloadView),
    /// The key was used (at unix milliseconds `created_at`) for another request.
    KeyReused {
        created_at: i64,
    },
}

/// A node sharing this server's store. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub advertise_url: Option<String>,
    pub version: String,
    pub started_at: i64,
    pub last_seen: i64,
    /// Downloads it holds a live lease on.
    pub active: u64,
    /// Whether it is the node answering.
    pub this: bool,
}

/// An API key as its account sees it; the secret is never kept, only its first characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    pub id: String,
    pub kind: KeyKind,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        let ApiKey { id, account: _, kind, prefix, created_at, revoked_at } = key;
        Self { id, kind, prefix, created_at, revoked_at }
    }
}

impl From<DownloadRecord> for DownloadView {
    fn from(record: DownloadRecord) -> Self {
        // Spelled out so that a new column is a compile error here, where someone decides whether clients see it;
        // the lease columns are the scheduler's and stay behind.
        let DownloadRecord {
            id,
            account,
            url,
            mirrors,
            kind,
            title,
            quality,
            duration,
            width,
            height,
            format,
            thumbnail,
            state,
            priority,
            filename,
            directory,
            path,
            size,
            bytes_done,
            speed,
            eta_secs,
            connections,
            error,
            checksum,
            headers,
            connections_limit,
            speed_limit,
            created_at,
            started_at,
            finished_at,
            labels,
            name_with_id,
            check_archive: _,
            lease_owner,
            lease_expires: _,
            held_by,
            parent,
            playlist_index,
            playlist_item: _,
            playlist_items,
            playlist_skipped,
            name_template,
            media,
            subtitles,
        } = record;
        let node = if state == JobState::Active { lease_owner } else { held_by };
        Self {
            id,
            account,
            url,
            mirrors,
            kind,
            title,
            quality,
            duration,
            width,
            height,
            format,
            thumbnail,
            state,
            priority,
            filename,
            directory,
            path,
            size,
            bytes_done,
            speed,
            eta_secs,
            connections,
            error,
            checksum,
            headers,
            connections_limit,
            speed_limit,
            created_at,
            started_at,
            finished_at,
            labels,
            name_with_id,
            node,
            parent,
            playlist_index,
            // Filled in from the children by whoever reads the playlist (`Engine::with_playlists`).
            playlist: (kind == JobKind::Playlist).then(|| PlaylistView {
                items: playlist_items,
                skipped: playlist_skipped.unwrap_or(0),
                ..PlaylistView::default()
            }),
            name_template,
            media,
            subtitles,
        }
    }
}

impl From<Rendition> for RenditionView {
    fn from(rendition: Rendition) -> Self {
        let Rendition { download, name, state, percent, path: _, error, created_at } = rendition;
        Self { download, name, state, percent, error, created_at }
    }
}

impl From<ListQuery> for ListFilter {
    fn from(query: ListQuery) -> Self {
        let ListQuery {
            states,
            ids,
            search,
            title,
            creator,
            created_from,
            created_before,
            parent,
            oldest_first,
            limit,
            offset,
        } = query;
        Self { states, ids, search, title, creator, created_from, created_before, parent, oldest_first, limit, offset }
    }
}

impl From<PatchRequest> for DownloadPatch {
    fn from(patch: PatchRequest) -> Self {
        let PatchRequest { url, priority, title, labels, speed_limit } = patch;
        Self { url, priority, title, labels, speed_limit }
    }
}
