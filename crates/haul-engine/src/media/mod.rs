//! Media downloads: a page yt-dlp understands becomes one playable file (or an m4a for `audio`) and a
//! thumbnail.
//!
//! The pipeline: **extract** (`yt-dlp -J`) → **select** formats for the quality (`haul_core::media::select`) →
//! **thumbnail** (the page's, fetched now; else a frame once the file is there) → **fetch**: every chosen
//! format that is a plain HTTP(S) file goes through haul's own multi-connection engine with the headers yt-dlp
//! says it needs; anything else (HLS, DASH fragments) through yt-dlp's downloader → **finish** with ffmpeg
//! (merge video and audio into mp4, or take the audio out as m4a) → **move** to `{title}__{id}.{ext}`.
//!
//! Everything in between lives in the job's work directory `downloads/.haul-{id}/`: the engine's part files
//! and resume records, yt-dlp's fragments. A pause keeps it, so the next run continues where this one stopped;
//! a cancel or a removal deletes it.

mod cache;
mod ffmpeg;
mod process;
mod proxy;
mod tools;
mod ytdlp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use haul_core::job::DownloadId;
use haul_core::media::{
    AudioFormat, Format, MediaInfo, NameFields, NameTemplate, Quality, Selection, SubtitleTrack, THUMBNAIL_EXTENSIONS,
    media_file_name, select_preferring,
};
use haul_core::media_choice::{FileTags, FormatSelector, MediaChoice, ffmetadata, subtitle_file_name};
use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use tools::{MediaTools, NotExecutable};

use crate::download::{self, DownloadOptions, Target};
use crate::error::EngineError;
use crate::http::HttpClient;
use crate::http::{SendError, header_map, parse_header};
use crate::progress::{MediaFacts, Phase, Progress};

/// How often the progress of a format being fetched is folded into the job's.
const MIRROR_EVERY: Duration = Duration::from_millis(250);

/// The work directory of a media job, inside the downloads directory so the final move is a rename.
pub(crate) fn work_dir(downloads_dir: &Path, id: DownloadId) -> PathBuf {
    downloads_dir.join(format!(".haul-{id}"))
}

/// One media job, as the service hands it over.
pub(crate) struct MediaJob<'a> {
    pub(crate) id: DownloadId,
    pub(crate) url: &'a str,
    pub(crate) quality: Quality,
    pub(crate) headers: &'a [(String, String)],
    /// The cookies.txt yt-dlp reads the page with (`haul get --cookies`).
    pub(crate) cookies: Option<&'a Path>,
    /// A title the client gave, which wins over the page's.
    pub(crate) title: Option<&'a str>,
    /// Where the finished file goes (the downloads directory, or the directory the client asked for in it).
    pub(crate) target_dir: PathBuf,
    pub(crate) downloads_dir: &'a Path,
    /// Where the thumbnail goes; `None` makes none (`haul get`).
    pub(crate) thumbnails_dir: Option<&'a Path>,
    /// The speed limits every stream of the job takes from together.
    pub(crate) limits: crate::limiter::Limits,
    pub(crate) connections: Option<usize>,
    /// Name the file `{title}.{ext}` instead of `{title}__{id}.{ext}` (`haul get`, where one user saves into
    /// a directory of their own).
    pub(crate) plain_name: bool,
    /// Where the thumbnail frame is taken, as a fraction of the duration; the page's own picture when `None`.
    pub(crate) thumbnail_at: Option<f64>,
    /// How to name the file (`--name`), instead of after the title.
    pub(crate) name_template: Option<&'a NameTemplate>,
    /// For an entry of a playlist: the playlist's title and the entry's position (`{playlist}`,
    /// `{playlist_index}` in a name template).
    pub(crate) playlist: Option<(&'a str, u32)>,
    /// Formats, subtitles and embedding beyond the quality.
    pub(crate) choice: &'a MediaChoice,
}

/// A finished media job; what it learned about the video was reported through its `Progress`.
pub(crate) struct MediaDone {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
}

/// Whether `url` looks like a page for yt-dlp (an HTML document or a feed), from a HEAD or a short GET. A destination
/// the policy refuses is an error, so the job fails with why instead of being handed to yt-dlp.
pub(crate) async fn is_web_page(client: &HttpClient, url: &str, headers: &HeaderMap) -> Result<bool, EngineError> {
    let Ok(url) = Url::parse(url) else { return Ok(false) };
    let content_type = |response: &reqwest::Response| {
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.to_ascii_lowercase())
    };
    if names_a_file(&url) {
        return Ok(false);
    }
    // What no retry fixes (a refused address, a host that does not exist, a certificate not valid for it) is the
    // job's answer at once, not asked again by the download that would follow.
    let refused = |error: &SendError| error.fatal_at_first_contact(&url);
    let kind = match client.send(Method::HEAD, &url, headers, &HeaderMap::new()).await {
        Ok(response) if response.status().is_success() => content_type(&response),
        Err(error) if let Some(refused) = refused(&error) => return Err(refused),
        _ => {
            let mut range = HeaderMap::new();
            range.insert(reqwest::header::RANGE, reqwest::header::HeaderValue::from_static("bytes=0-0"));
            match client.send(Method::GET, &url, headers, &range).await {
                Ok(response) if response.status().is_success() => content_type(&response),
                Err(error) if let Some(refused) = refused(&error) => return Err(refused),
                _ => None,
            }
        }
    };
    // A feed (RSS, Atom) is a playlist yt-dlp reads: a podcast's or a channel's entries.
    const PAGES: [&str; 4] = ["text/html", "application/xhtml", "application/rss+xml", "application/atom+xml"];
    Ok(kind.is_some_and(|kind| PAGES.iter().any(|page| kind.starts_with(page))))
}

/// A URL whose last path segment has the extension of a file that is not a web page (`.iso`, `.zip`, `.mp4`,
/// `.bin`, ...): a file, without asking the host what it is. A page (`/watch?v=`, `/video/123`, `.html`, `.php`)
/// has no extension or one of a page.
fn names_a_file(url: &Url) -> bool {
    const PAGES: [&str; 11] = ["html", "htm", "xhtml", "shtml", "php", "asp", "aspx", "jsp", "cgi", "rss", "atom"];
    let Some(last) = url.path_segments().and_then(|mut segments| segments.next_back()) else { return false };
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && (1..=5).contains(&ext.len()) => {
            ext.chars().all(|c| c.is_ascii_alphanumeric())
                && ext.chars().any(|c| c.is_ascii_alphabetic())
                && !PAGES.iter().any(|page| ext.eq_ignore_ascii_case(page))
        }
        _ => false,
    }
}

/// One media download without a server (`haul get`).
#[derive(Clone, Debug)]
pub struct MediaRequest {
    pub url: String,
    /// `Some(true)`: it must be media; `Some(false)`: plain file, never asked here; `None`: decide (a web page
    /// yt-dlp can read is media).
    pub media: Option<bool>,
    pub quality: Quality,
    /// The user's headers, for yt-dlp and every stream.
    pub headers: Vec<(String, String)>,
    /// What the look at the page (is it a web page?) sends: the user's headers with the login and the cookies the
    /// page's host gets, as a plain download of the URL would send.
    pub page_headers: HeaderMap,
    /// A Netscape cookies.txt yt-dlp reads the page with (its formats then carry the cookies they need).
    pub cookies: Option<PathBuf>,
    /// Where the file goes, as `{title}.{ext}`; the work directory `.haul-{hash}` is made beside it.
    pub dir: PathBuf,
    pub rate_limit: Option<u64>,
    pub connections: Option<usize>,
    /// How to name the file (`--name '{title} [{id}].{ext}'`), instead of `{title}.{ext}`.
    pub name_template: Option<NameTemplate>,
    /// Which entries of a playlist to take (`--playlist-items`); every one when `None`.
    pub playlist_items: Option<haul_core::playlist::PlaylistItems>,
    /// An entry of a playlist: the N-th video of the page at `url` (set from [`haul_core::playlist::Entry::item`]), and the
    /// playlist's title and the entry's position, for a name template.
    pub playlist_item: Option<u32>,
    pub playlist: Option<(String, u32)>,
    /// A title that wins over the page's (a playlist entry's, as the playlist names it).
    pub title: Option<String>,
    /// Formats (`--prefer`, `--vcodec`, `--format`), subtitles and embedding.
    pub choice: MediaChoice,
}

/// What [`get_media`] made of a request.
#[derive(Debug)]
pub enum GotMedia {
    /// The video, saved.
    Saved(download::Downloaded),
    /// The page is a playlist: these are its entries to fetch, each as a request of its own (`url`, and
    /// `playlist_item` for a video read in place).
    Playlist { title: Option<String>, entries: Vec<haul_core::playlist::Entry>, total: usize },
}

/// A playlist's entries `haul get` takes at most, unless `--playlist-items` chooses.
pub const GET_PLAYLIST_CAP: usize = 10_000;

/// Downloads `request` as media; `Ok(None)` when it turns out to be a plain file (the caller fetches it with
/// [`download`](crate::download)), [`GotMedia::Playlist`] when it is a playlist (the caller fetches each entry).
/// Stopping it keeps the work directory, so the same request resumes.
pub async fn get_media(
    client: &HttpClient,
    tools: &MediaTools,
    request: &MediaRequest,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<Option<GotMedia>, EngineError> {
    let audio = request.quality == Quality::Audio;
    let access = ytdlp::Access { headers: &request.headers, cookies: request.cookies.as_deref() };
    let info = match request.media {
        Some(true) => ytdlp::extract(tools, &request.url, access, None, cancel).await?,
        Some(false) if audio => direct_info(&request.url),
        Some(false) => return Ok(None),
        // A page behind a login is a page too: the look at it sends what yt-dlp will.
        None => match read_if_page(
            client,
            tools,
            &request.url,
            &request.page_headers,
            access.headers,
            access.cookies,
            cancel,
        )
        .await?
        {
            Some(info) => info,
            None if audio => direct_info(&request.url),
            None => return Ok(None),
        },
    };
    let info = match request.playlist_item {
        Some(item) => haul_core::playlist::entry_of(info, Some(item)).map_err(EngineError::Media)?,
        None if info.is_playlist() => {
            let planned =
                haul_core::playlist::plan(&info, &request.url, request.playlist_items.as_ref(), GET_PLAYLIST_CAP);
            return Ok(Some(GotMedia::Playlist { title: info.title, entries: planned.entries, total: planned.total }));
        }
        None => info,
    };
    // The same request maps to the same work directory, so a second run continues the first.
    let digest = {
        use sha2::Digest as _;
        let item = request.playlist_item.map(|item| format!("\n{item}")).unwrap_or_default();
        let choice = serde_json::to_string(&request.choice).unwrap_or_default();
        sha2::Sha256::digest(format!("{}\n{}\n{choice}{item}", request.url, request.quality).as_bytes())
    };
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = DownloadId::from_uuid(uuid::Uuid::from_bytes(bytes));
    let job = MediaJob {
        id,
        url: &request.url,
        quality: request.quality,
        headers: &request.headers,
        cookies: request.cookies.as_deref(),
        title: request.title.as_deref(),
        target_dir: request.dir.clone(),
        downloads_dir: &request.dir,
        thumbnails_dir: None,
        limits: crate::limiter::Limits::rate(request.rate_limit),
        connections: request.connections,
        plain_name: true,
        name_template: request.name_template.as_ref(),
        thumbnail_at: None,
        playlist: request.playlist.as_ref().map(|(title, index)| (title.as_str(), *index)),
        choice: &request.choice,
    };
    let done = run_job(client, tools, job, info, Describe::No, progress, cancel).await?;
    let saved = download::Downloaded {
        path: done.path,
        size: done.size,
        resumed_bytes: 0,
        already_complete: false,
        validators: Default::default(),
    };
    Ok(Some(GotMedia::Saved(saved)))
}

/// How long the look at a URL (is it a web page?) may take before yt-dlp is started beside it: a host that
/// answers sooner (loopback, a LAN) is not worth a yt-dlp start that may be thrown away.
const EARLY_START_AFTER: Duration = Duration::from_millis(20);

/// What a URL of kind `auto` is: `Some` reading when it is a web page yt-dlp can make a video of, `None` when it
/// is to be fetched as a file. The look at the URL ([`is_web_page`]) and yt-dlp's start-up overlap: when the
/// look takes longer than [`EARLY_START_AFTER`], yt-dlp starts loading beside it, and gets the URL once the
/// look says it is a page (killed otherwise, having asked nothing of any host; after two such in a row, until a
/// page is seen again, there are no early starts).
pub(crate) async fn read_if_page(
    client: &HttpClient,
    tools: &MediaTools,
    url: &str,
    page_headers: &HeaderMap,
    headers: &[(String, String)],
    cookies: Option<&Path>,
    cancel: &CancellationToken,
) -> Result<Option<MediaInfo>, EngineError> {
    let access = ytdlp::Access { headers, cookies };
    if tools.yt_dlp().is_err() {
        return Ok(None);
    }
    let look = is_web_page(client, url, page_headers);
    tokio::pin!(look);
    let (page, early) = tokio::select! {
        page = &mut look => (page?, None),
        _ = tokio::time::sleep(EARLY_START_AFTER) => {
            let early = ytdlp::Early::start(tools, url, access).await;
            (look.await?, early)
        }
    };
    if !page {
        if let Some(early) = early {
            early.discard();
        }
        return Ok(None);
    }
    ytdlp::Early::page_seen();
    read_or_none(ytdlp::extract(tools, url, access, early, cancel).await)
}

/// A reading that makes a video, or `None` (yt-dlp cannot read the page, or finds no video on it); a cancel or a
/// refused destination is the job's answer.
fn read_or_none(read: Result<MediaInfo, EngineError>) -> Result<Option<MediaInfo>, EngineError> {
    match read {
        Ok(info) if !info.formats.is_empty() || info.kind.as_deref() == Some("playlist") => Ok(Some(info)),
        Ok(_) => Ok(None),
        Err(error @ (EngineError::Cancelled | EngineError::Refused(_))) => Err(error),
        Err(error) => {
            tracing::debug!(%error, "yt-dlp cannot read the page; fetching it as a file");
            Ok(None)
        }
    }
}

/// Reads the page with yt-dlp, which must succeed: the job was asked to be media. Also what a page offers, as
/// `haul formats` shows it (re-exported as `media_formats`).
pub async fn extract(
    tools: &MediaTools,
    url: &str,
    headers: &[(String, String)],
    cookies: Option<&Path>,
    cancel: &CancellationToken,
) -> Result<MediaInfo, EngineError> {
    ytdlp::extract(tools, url, ytdlp::Access { headers, cookies }, None, cancel).await
}

/// Whether yt-dlp parses the format selector `selector` (nothing is fetched): `InvalidRequest` with yt-dlp's own
/// message when it does not. `haul get --format` and an add with `format` ask this before anything starts.
pub async fn check_selector(tools: &MediaTools, selector: &FormatSelector) -> Result<(), EngineError> {
    ytdlp::check_selector(tools, selector).await
}

/// A direct file described as a one-format "page", for `audio` asked of a plain video file.
pub(crate) fn direct_info(url: &str) -> MediaInfo {
    let title = Url::parse(url)
        .ok()
        .and_then(|url| url.path_segments().and_then(|mut segments| segments.next_back().map(str::to_owned)))
        .map(|name| percent_encoding::percent_decode_str(&name).decode_utf8_lossy().into_owned())
        .map(|name| name.rsplit_once('.').map_or(name.clone(), |(stem, _)| stem.to_owned()))
        .filter(|stem| !stem.is_empty());
    MediaInfo {
        title,
        formats: vec![Format {
            format_id: DIRECT_FORMAT.into(),
            url: Some(url.to_owned()),
            protocol: Some(if url.starts_with("https:") { "https" } else { "http" }.into()),
            ..Format::default()
        }],
        ..MediaInfo::default()
    }
}

/// `path`, or the first of `name (1).ext`, `name (2).ext`, ... that is not there.
async fn free_name(path: &Path) -> PathBuf {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else { return path.to_owned() };
    let mut candidate = path.to_owned();
    for n in 1..10_000 {
        if tokio::fs::symlink_metadata(&candidate).await.is_err() {
            break;
        }
        candidate = path.with_file_name(haul_core::filename::numbered(name, n));
    }
    candidate
}

/// Whether anyone reads what the finished file holds: a server keeps the duration, size and a frame with the
/// job; `haul get` shows none of it, so it does not run ffprobe on a file it has no question about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Describe {
    Yes,
    No,
}

/// The whole pipeline for one job. What it learns about the video (title, formats, thumbnail, streams) is
/// reported through `progress` as soon as it is known, as the byte counts are.
pub(crate) async fn run(
    client: &HttpClient,
    tools: &MediaTools,
    job: MediaJob<'_>,
    info: MediaInfo,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<MediaDone, EngineError> {
    run_job(client, tools, job, info, Describe::Yes, progress, cancel).await
}

async fn run_job(
    client: &HttpClient,
    tools: &MediaTools,
    job: MediaJob<'_>,
    info: MediaInfo,
    describe: Describe,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<MediaDone, EngineError> {
    let result = fetch_and_finish(client, tools, &job, info, describe, progress, cancel).await;
    if let Err(error) = &result
        && !matches!(error, EngineError::Cancelled)
    {
        // The reading may hold what failed (a stream URL that expired or is refused): a retry reads the page again.
        let access = ytdlp::Access { headers: job.headers, cookies: job.cookies };
        if let Some(key) = ytdlp::key_of(tools, job.url, access).await {
            tools.pages.forget(key);
        }
    }
    result
}

async fn fetch_and_finish(
    client: &HttpClient,
    tools: &MediaTools,
    job: &MediaJob<'_>,
    info: MediaInfo,
    describe: Describe,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<MediaDone, EngineError> {
    if info.kind.as_deref() == Some("playlist") {
        return Err(EngineError::Media(
            "the page is a playlist; haul downloads one video per job: add each video's own page".into(),
        ));
    }
    let selection = match &job.choice.format {
        Some(selector) => selection_by(tools, &info, selector, cancel).await?,
        None => select_preferring(&info.formats, job.quality, job.choice.prefer, job.choice.vcodec)
            .map_err(|error| EngineError::Media(error.0))?,
    };
    let needs_ffmpeg = matches!(selection, Selection::Merge { .. } | Selection::ExtractAudio(_))
        || (job.quality == Quality::Audio && !is_m4a(selection.formats()[0]));
    if needs_ffmpeg {
        tools.ffmpeg().map_err(|message| EngineError::Media(format!("{} {message}", selection_purpose(&selection))))?;
    }
    let title = job.title.map(str::to_owned).or(info.title.clone()).unwrap_or_else(|| "media".to_owned());
    let ext = selection.final_ext_preferring(job.quality, job.choice.prefer);
    let name = if let Some(template) = job.name_template {
        let fields = NameFields {
            title: &title,
            id: info.id.as_deref(),
            uploader: info.uploader.as_deref(),
            upload_date: info.upload_date.as_deref(),
            height: selection.formats().into_iter().find(|format| format.has_video()).and_then(|format| format.height),
            ext: &ext,
            playlist: job.playlist.map(|(title, _)| title),
            playlist_index: job.playlist.map(|(_, index)| index),
        };
        template.render(&fields)
    } else if job.plain_name {
        haul_core::filename::sanitize(&format!("{}.{ext}", title.replace(['/', '\\'], "_")))
            .unwrap_or_else(|| format!("media.{ext}"))
    } else {
        media_file_name(&title, &job.id.to_string(), &ext)
    };
    let final_path = job.target_dir.join(name);
    let chosen_video = selection.formats().into_iter().find(|format| format.has_video());
    let mut facts = MediaFacts {
        title: info.title.clone(),
        duration: info.duration,
        width: chosen_video.and_then(|format| format.width),
        height: chosen_video.and_then(|format| format.height),
        format: Some(selection.format_spec()),
        thumbnail: None,
        subtitles: None,
    };
    progress.set_media(facts.clone());
    progress.set_destination(final_path.clone());

    if job.plain_name && tokio::fs::symlink_metadata(&final_path).await.is_ok() {
        return Err(EngineError::AlreadyExists(final_path));
    }
    let work = work_dir(job.downloads_dir, job.id);
    create_dir(&work).await?;
    create_dir(&job.target_dir).await?;
    // Both under the downloads directory, whatever symlinks someone with access to it made.
    for dir in [&work, &job.target_dir] {
        crate::confine::check_dir(job.downloads_dir, dir)?;
    }
    if let Some(dir) = job.thumbnails_dir {
        create_dir(dir).await?;
    }

    // The page's thumbnail beside the streams, so a client can show it while the video comes without the video
    // waiting for it (once: a resumed job has it).
    let existing = match job.thumbnails_dir {
        Some(dir) => existing_thumbnail(dir, job.id).await,
        None => None,
    };
    if existing.is_some() {
        facts.thumbnail = existing;
        progress.set_media(facts.clone());
    }
    let thumbnail_cancel = cancel.child_token();
    let thumbnail = async {
        // A client that said where the frame is (`thumbnail_at`) gets that frame, not the page's picture.
        let (None, Some(thumbnail), Some(dir), None) =
            (&facts.thumbnail, info.thumbnail.as_deref(), job.thumbnails_dir, job.thumbnail_at)
        else {
            return Ok(None);
        };
        match fetch_thumbnail(client, tools, thumbnail, job.headers, dir, job.id, &thumbnail_cancel).await {
            Ok(name) => {
                progress.set_media(MediaFacts { thumbnail: Some(name.clone()), ..facts.clone() });
                Ok(Some(name))
            }
            Err(EngineError::Cancelled) => Err(EngineError::Cancelled),
            Err(error) => {
                tracing::info!(%error, "cannot fetch the page's thumbnail; a frame will do");
                Ok(None)
            }
        }
    };
    let streams = async {
        progress.set_phase(Phase::Downloading);
        let started = std::time::Instant::now();
        let fetched = if selection.formats().iter().all(|format| format.is_direct()) {
            fetch_direct(client, tools, job, &selection, &work, progress, cancel).await
        } else {
            fetch_with_ytdlp(tools, job, &selection, &work, progress, cancel).await.map(|path| vec![path])
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "fetched the streams");
        if fetched.is_err() {
            thumbnail_cancel.cancel();
        }
        fetched
    };
    let (thumbnail, fetched) = tokio::join!(thumbnail, streams);
    let fetched = fetched?;
    if let Some(name) = thumbnail? {
        facts.thumbnail = Some(name);
    }

    progress.set_phase(Phase::Verifying);
    let output = finish(tools, job, &selection, &ext, &fetched, &work, cancel).await?;
    let subtitles = fetch_subtitles(client, job, &info, &work, cancel).await?;
    let output =
        embed_extras(client, tools, job, &info, &title, &ext, &facts, &subtitles, output, &work, cancel).await?;
    let size = tokio::fs::metadata(&output).await.map_err(|error| EngineError::io(&output, error))?.len();

    // What the file really holds, and a frame when the page had no thumbnail: done while the file is still in
    // the work directory, so that a stop in these steps leaves nothing under the final name. Not when yt-dlp
    // already said all of it and there is a thumbnail (or no one to show it).
    let has_video = job.quality != Quality::Audio && chosen_video.is_some();
    let frame_wanted = job.thumbnails_dir.is_some() && facts.thumbnail.is_none() && has_video;
    let facts_missing = facts.duration.is_none() || (has_video && (facts.width.is_none() || facts.height.is_none()));
    if describe == Describe::Yes
        && (frame_wanted || facts_missing)
        && let Ok(ffprobe) = tools.ffprobe()
    {
        let started = std::time::Instant::now();
        let probed = match ffmpeg::probe(ffprobe, &output, cancel).await {
            Ok(probed) => Some(probed),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(error) => {
                tracing::info!(%error, "cannot read the finished file's streams");
                None
            }
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "ffprobe read the finished file");
        if let Some(probed) = probed {
            facts.duration = probed.duration.or(facts.duration);
            facts.width = probed.width.or(facts.width);
            facts.height = probed.height.or(facts.height);
            if facts.thumbnail.is_none()
                && probed.has_video
                && let Ok(ffmpeg_path) = tools.ffmpeg()
                && let Some(dir) = job.thumbnails_dir
            {
                let name = format!("{}.jpg", job.id);
                let at = frame_time(probed.duration, job.thumbnail_at);
                match ffmpeg::frame(ffmpeg_path, &output, at, &dir.join(&name), cancel).await {
                    Ok(()) => facts.thumbnail = Some(name),
                    Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
                    Err(error) => tracing::info!(%error, "cannot grab a thumbnail frame"),
                }
            }
        }
    }
    // The last moment a stop can still win: after the rename the job is done.
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    // Subtitles beside the file, named after it, in place before the file is.
    let media_name = final_path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let mut saved = Vec::new();
    for (lang, path) in &subtitles {
        let ext = path.extension().map(|ext| ext.to_string_lossy().into_owned()).unwrap_or_default();
        let destination = job.target_dir.join(subtitle_file_name(&media_name, lang, &ext));
        if job.plain_name && tokio::fs::symlink_metadata(&destination).await.is_ok() {
            tracing::info!(path = %destination.display(), "a subtitle file of that name is there already; kept");
            continue;
        }
        tokio::fs::rename(path, &destination).await.map_err(|error| EngineError::io(&destination, error))?;
        saved.push((lang.clone(), destination));
    }
    if !saved.is_empty() {
        facts.subtitles = Some(saved);
    }
    progress.set_media(facts);
    // A server's name from a template may be another download's already: that one is kept, this one numbered
    // (`name (1).mp4`). (`{title}__{id}` names are unique; `haul get` refused a taken name above.)
    let final_path =
        if job.name_template.is_some() && !job.plain_name { free_name(&final_path).await } else { final_path };
    tokio::fs::rename(&output, &final_path).await.map_err(|error| EngineError::io(&final_path, error))?;
    if let Err(error) = tokio::fs::remove_dir_all(&work).await {
        tracing::warn!(%error, dir = %work.display(), "cannot remove the work directory");
    }
    progress.set_total(Some(size));
    progress.set_done(size);
    progress.set_phase(Phase::Done);
    Ok(MediaDone { path: final_path, size })
}

fn is_m4a(format: &Format) -> bool {
    matches!(format.ext.as_deref(), Some("m4a"))
}

fn selection_purpose(selection: &Selection) -> &'static str {
    match selection {
        Selection::Merge { .. } => "merging the video and audio streams:",
        _ => "making the audio file:",
    }
}

/// Each chosen format through haul's engine into `work/f{format_id}`, one after the other, continuing from
/// earlier runs; the job's progress counts all of them.
async fn fetch_direct(
    client: &HttpClient,
    tools: &MediaTools,
    job: &MediaJob<'_>,
    selection: &Selection,
    work: &Path,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<Vec<PathBuf>, EngineError> {
    let formats = selection.formats();
    let mut done_before = 0;
    let mut paths = Vec::new();
    for (index, format) in formats.iter().enumerate() {
        let path = work.join(format!("f{}", safe_id(&format.format_id)));
        let later: u64 = formats[index + 1..].iter().filter_map(|format| format.size()).sum();
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            // Finished by an earlier run.
            done_before += meta.len();
            paths.push(path);
            continue;
        }
        // The format as the latest reading of the page gives it: its URL may be signed and expire.
        let mut format = (*format).clone();
        let mut stale_rereads = 0;
        let done = loop {
            let url: Url = format.url.as_deref().unwrap_or_default().parse().map_err(|error| {
                EngineError::Media(format!("yt-dlp gave a bad URL for format {}: {error}", format.format_id))
            })?;
            let mut options = DownloadOptions::new(url, Target::File(path.clone()));
            options.root = Some(job.downloads_dir.to_owned());
            options.overwrite = true;
            options.limits = job.limits.clone();
            options.connections = job.connections;
            options.headers = format_headers(&format, job.headers)?;
            // The partial file is this format's whatever URL the latest reading gave it.
            options.record_key = Some(format!("{}#format={}", job.url, format.format_id));
            let part = Arc::new(Progress::default());
            let fetch = download::download(client.clone(), options, part.clone(), cancel.clone());
            tokio::pin!(fetch);
            let result = loop {
                tokio::select! {
                    result = &mut fetch => break result,
                    _ = tokio::time::sleep(MIRROR_EVERY) => mirror(progress, &part.snapshot(), done_before, later),
                }
            };
            match result {
                // A signed URL that ran out (mid-download, or while the job was paused with the page's reading
                // kept): the page read again gives a fresh one. The same format continues from the ranges on
                // disk (the engine keeps them when the size and validators are the same, and starts that format
                // over when they are not); one that reading after reading answers at once is not expiring.
                Err(EngineError::Remote { status: 403 | 410, .. })
                    if format.format_id != DIRECT_FORMAT && stale_rereads < MAX_STALE_REREADS =>
                {
                    stale_rereads = if part.snapshot().fetched_this_run() > 0 { 1 } else { stale_rereads + 1 };
                    tracing::info!(format = %format.format_id, "the stream's URL was refused; reading the page again");
                    let fresh = reread(tools, job, cancel).await?;
                    format = fresh
                        .formats
                        .into_iter()
                        .find(|fresh| fresh.format_id == format.format_id && fresh.is_direct())
                        .ok_or_else(|| {
                            EngineError::Media(format!(
                                "the URL of format {} was refused, and the page read again no longer offers that \
                                 format; retry the download",
                                format.format_id
                            ))
                        })?;
                }
                result => break result?,
            }
        };
        done_before += done.size;
        paths.push(done.path);
    }
    progress.set_done(done_before);
    progress.set_speed(0);
    progress.set_connections(0);
    Ok(paths)
}

/// The format id of [`direct_info`]'s one format: a file's own URL, which no reading of a page renews.
const DIRECT_FORMAT: &str = "direct";

/// Readings of the page in a row, for one format, after which a refused stream URL fails the job: one whose
/// fresh URL is refused before a byte comes is not expiring but refused. A reading after which bytes came
/// counts as the first again, so a link that expires every few minutes on a slow download is renewed each time.
const MAX_STALE_REREADS: u32 = 3;

/// The page read afresh (its kept reading forgotten first, since that holds the URLs that were refused).
async fn reread(tools: &MediaTools, job: &MediaJob<'_>, cancel: &CancellationToken) -> Result<MediaInfo, EngineError> {
    let access = ytdlp::Access { headers: job.headers, cookies: job.cookies };
    if let Some(key) = ytdlp::key_of(tools, job.url, access).await {
        tools.pages.forget(key);
    }
    ytdlp::extract(tools, job.url, access, None, cancel).await
}

/// The job's progress from the format being fetched and those before and after it.
fn mirror(progress: &Progress, part: &crate::progress::ProgressSnapshot, before: u64, later: u64) {
    progress.set_done(before + part.done);
    progress.set_total(part.total.map(|total| before + total + later));
    progress.set_speed(part.speed);
    progress.set_connections(part.connections);
}

/// Format ids come from the page; only letters, digits, `-` and `_` reach a file name.
fn safe_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The job's own headers (checked when the job was added).
fn job_headers(headers: &[(String, String)]) -> Result<HeaderMap, EngineError> {
    header_map(headers.iter().map(|(name, value)| (name.as_str(), value.as_str()))).map_err(EngineError::InvalidRequest)
}

/// What yt-dlp says a format needs (a header it names that is not a valid header is left out), with the job's
/// own headers replacing any of the same name.
fn format_headers(format: &Format, headers: &[(String, String)]) -> Result<HeaderMap, EngineError> {
    let mut map = HeaderMap::new();
    let cookie = format.cookie_header().map(|cookie| ("Cookie".to_owned(), cookie));
    for (name, value) in format.http_headers.iter().map(|(name, value)| (name.clone(), value.clone())).chain(cookie) {
        match parse_header(&name, &value) {
            Ok((name, value)) => {
                map.insert(name, value);
            }
            Err(error) => tracing::debug!(%error, "leaving out a header yt-dlp named"),
        }
    }
    // `extend` replaces every value of a name the job's headers have.
    map.extend(job_headers(headers)?);
    Ok(map)
}

async fn create_dir(dir: &Path) -> Result<(), EngineError> {
    tokio::fs::create_dir_all(dir).await.map_err(|error| EngineError::io(dir, error))
}

/// Where a thumbnail frame is taken, in seconds: at `at_fraction` of the duration when the client chose, else a
/// second in (half-way into a shorter video), past a black first frame. Kept a tenth of a second before the end,
/// where there is still a frame to decode.
fn frame_time(duration: Option<f64>, at_fraction: Option<f64>) -> f64 {
    let duration = duration.filter(|duration| duration.is_finite() && *duration > 0.0).unwrap_or(0.0);
    match at_fraction {
        Some(fraction) => (duration * fraction.clamp(0.0, 1.0)).min(duration - 0.1).max(0.0),
        None => (duration / 2.0).min(1.0),
    }
}

/// The thumbnail an earlier run of this job saved, by file name.
async fn existing_thumbnail(dir: &Path, id: DownloadId) -> Option<String> {
    for ext in THUMBNAIL_EXTENSIONS {
        let name = format!("{id}.{ext}");
        if tokio::fs::metadata(dir.join(&name)).await.is_ok_and(|meta| meta.is_file()) {
            return Some(name);
        }
    }
    None
}

/// The formats through yt-dlp's own downloader (HLS, DASH fragments), which also merges them.
async fn fetch_with_ytdlp(
    tools: &MediaTools,
    job: &MediaJob<'_>,
    selection: &Selection,
    work: &Path,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<PathBuf, EngineError> {
    progress.set_connections(1);
    let access = ytdlp::Access { headers: job.headers, cookies: job.cookies };
    let merge_ext = selection.final_ext_preferring(job.quality, job.choice.prefer);
    let result =
        ytdlp::download(tools, job.url, &selection.format_spec(), &merge_ext, access, work, cancel, |report| {
            progress.set_done(report.downloaded);
            progress.set_total(report.total);
            progress.set_speed(report.speed);
        })
        .await;
    progress.set_speed(0);
    progress.set_connections(0);
    result
}

/// The formats a raw yt-dlp selector picks, as yt-dlp says: one format, or a video and an audio to merge.
async fn selection_by(
    tools: &MediaTools,
    info: &MediaInfo,
    selector: &FormatSelector,
    cancel: &CancellationToken,
) -> Result<Selection, EngineError> {
    let ids = ytdlp::pick(tools, info, selector, cancel).await?;
    let find = |id: &str| {
        info.formats
            .iter()
            .find(|format| format.format_id == id)
            .cloned()
            .ok_or_else(|| EngineError::Media(format!("yt-dlp picked format {id:?}, which the page does not list")))
    };
    match ids.as_slice() {
        [one] => Ok(Selection::Single(find(one)?)),
        [first, second] => {
            let (first, second) = (find(first)?, find(second)?);
            let (video, audio) = if first.has_video() { (first, second) } else { (second, first) };
            Ok(Selection::Merge { video: Box::new(video), audio: Box::new(audio) })
        }
        _ => Err(EngineError::Media(format!(
            "format {:?} picks {} formats; haul merges one video and one audio stream (write e.g. bv*+ba)",
            selector.as_str(),
            ids.len()
        ))),
    }
}

/// The most a subtitle file may be.
const SUBTITLE_LIMIT: usize = 5 * 1024 * 1024;

/// The subtitle tracks a job asks for, by the page's language name: subtitles in a language asked for, then
/// (with automatic captions) captions in one the subtitles did not have. Of each language, a WebVTT file, else
/// an SRT one.
fn wanted_subtitles(info: &MediaInfo, choice: &MediaChoice) -> Vec<(String, SubtitleTrack)> {
    let pick = |tracks: &[SubtitleTrack]| {
        ["vtt", "srt"].iter().find_map(|wanted| {
            tracks
                .iter()
                .find(|track| {
                    track.ext.as_deref().is_some_and(|ext| ext.eq_ignore_ascii_case(wanted))
                        && track
                            .url
                            .as_deref()
                            .is_some_and(|url| url.starts_with("http://") || url.starts_with("https://"))
                })
                .cloned()
        })
    };
    let asked = |lang: &str| choice.subtitles.iter().any(|wanted| wanted.matches(lang));
    let mut chosen: Vec<(String, SubtitleTrack)> = Vec::new();
    let sources = [Some(&info.subtitles), choice.auto_subtitles.then_some(&info.automatic_captions)];
    for tracks in sources.into_iter().flatten() {
        for (lang, offered) in tracks {
            // `all` of a site with captions in every language stops somewhere.
            if chosen.len() >= haul_core::media_choice::MAX_SUBTITLE_LANGS {
                tracing::info!("more subtitle languages than {}; the rest left out", chosen.len());
                return chosen;
            }
            let safe = haul_core::media_choice::safe_lang(lang);
            if !asked(lang) || chosen.iter().any(|(taken, _)| *taken == safe) {
                continue;
            }
            if let Some(track) = pick(offered) {
                chosen.push((safe, track));
            }
        }
    }
    chosen
}

/// The subtitles a job asks for, fetched into `work` as `sub.{lang}.{ext}` (kept from an earlier run). A track
/// that cannot be fetched is left out with a log line: the video is what was asked for first.
async fn fetch_subtitles(
    client: &HttpClient,
    job: &MediaJob<'_>,
    info: &MediaInfo,
    work: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<(String, PathBuf)>, EngineError> {
    let mut saved = Vec::new();
    for (lang, track) in wanted_subtitles(info, job.choice) {
        let ext = if track.ext.as_deref().is_some_and(|ext| ext.eq_ignore_ascii_case("srt")) { "srt" } else { "vtt" };
        let path = work.join(format!("sub.{lang}.{ext}"));
        if tokio::fs::metadata(&path).await.is_ok() {
            saved.push((lang, path));
            continue;
        }
        let url = track.url.as_deref().unwrap_or_default();
        let mut headers = HeaderMap::new();
        for (name, value) in &track.http_headers {
            if let Ok((name, value)) = parse_header(name, value) {
                headers.insert(name, value);
            }
        }
        headers.extend(job_headers(job.headers)?);
        match fetch_small(client, url, &headers, SUBTITLE_LIMIT, cancel).await {
            Ok(bytes) => {
                let temp = work.join(format!(".sub.{lang}.{ext}.part"));
                tokio::fs::write(&temp, &bytes).await.map_err(|error| EngineError::io(&temp, error))?;
                tokio::fs::rename(&temp, &path).await.map_err(|error| EngineError::io(&path, error))?;
                saved.push((lang, path));
            }
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(error) => tracing::info!(%error, %lang, "cannot fetch a subtitle track; leaving it out"),
        }
    }
    Ok(saved)
}

/// A small file (a subtitle track) read whole, at most `limit` bytes.
async fn fetch_small(
    client: &HttpClient,
    url: &str,
    headers: &HeaderMap,
    limit: usize,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, EngineError> {
    let parsed: Url = url.parse().map_err(|error| EngineError::Media(format!("URL {url:?}: {error}")))?;
    let no_extra = HeaderMap::new();
    let response = tokio::select! {
        response = client.send(Method::GET, &parsed, headers, &no_extra) => response.map_err(|error| {
            error.fatal(&parsed).unwrap_or_else(|| EngineError::Media(error.describe()))
        })?,
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    if !response.status().is_success() {
        return Err(EngineError::Media(format!("the server answered {}", response.status())));
    }
    let mut response = response;
    let mut bytes = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk.map_err(|error| EngineError::Media(error.to_string()))?,
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > limit {
            return Err(EngineError::Media(format!("larger than {} MiB", limit / 1024 / 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The finished file with metadata (title, artist, date, chapters, cover art) and subtitles in it, when the
/// job asks for them, as `work/embedded`; `output` as it is otherwise, or when nothing could be added.
#[allow(clippy::too_many_arguments)]
async fn embed_extras(
    client: &HttpClient,
    tools: &MediaTools,
    job: &MediaJob<'_>,
    info: &MediaInfo,
    title: &str,
    ext: &str,
    facts: &MediaFacts,
    subtitles: &[(String, PathBuf)],
    output: PathBuf,
    work: &Path,
    cancel: &CancellationToken,
) -> Result<PathBuf, EngineError> {
    let subtitles = if job.choice.embed_subtitles { subtitles } else { &[] };
    // Metadata is a server's default: without ffmpeg the file stays as it is (subtitles were asked for).
    let tools_there = tools.ffmpeg().is_ok() && tools.ffprobe().is_ok();
    if job.choice.embed_metadata && !tools_there && subtitles.is_empty() {
        tracing::info!("no metadata put into the file: ffmpeg or ffprobe is missing");
        return Ok(output);
    }
    let metadata = job.choice.embed_metadata;
    if !metadata && subtitles.is_empty() {
        return Ok(output);
    }
    let ffmpeg_path = tools.ffmpeg().map_err(|why| EngineError::Media(format!("embedding metadata: {why}")))?;
    let ffprobe_path = tools.ffprobe().map_err(|why| EngineError::Media(format!("embedding metadata: {why}")))?;
    let metadata_file = work.join("metadata.txt");
    let mut cover = None;
    if metadata {
        let chapters = info.chapters.as_deref().unwrap_or_default();
        let tags = FileTags {
            title: Some(title),
            artist: info.uploader.as_deref(),
            upload_date: info.upload_date.as_deref(),
            comment: Some(job.url),
            chapters,
        };
        let text = ffmetadata(&tags, info.duration);
        tokio::fs::write(&metadata_file, text).await.map_err(|error| EngineError::io(&metadata_file, error))?;
        cover = cover_image(client, tools, job, info, facts, work, cancel).await?;
    }
    let embed =
        ffmpeg::Embed { metadata: metadata.then_some(metadata_file.as_path()), cover: cover.as_deref(), subtitles };
    let out = work.join("embedded");
    match ffmpeg::embed(ffmpeg_path, ffprobe_path, &output, ext, &embed, &out, cancel).await? {
        Some(skipped) => {
            for why in skipped {
                tracing::info!(%why, "left out of the file");
            }
            Ok(out)
        }
        None => {
            tracing::info!(%ext, "nothing to embed in this container");
            Ok(output)
        }
    }
}

/// The picture for cover art, as JPEG or PNG: the job's thumbnail (a server keeps it), else the page's, fetched
/// into `work` (`haul get`). `None` without one.
async fn cover_image(
    client: &HttpClient,
    tools: &MediaTools,
    job: &MediaJob<'_>,
    info: &MediaInfo,
    facts: &MediaFacts,
    work: &Path,
    cancel: &CancellationToken,
) -> Result<Option<PathBuf>, EngineError> {
    let kept = match (job.thumbnails_dir, &facts.thumbnail) {
        (Some(dir), Some(name)) => Some(dir.join(name)),
        _ => None,
    };
    let image = match (kept, info.thumbnail.as_deref()) {
        (Some(path), _) => path,
        (None, Some(url)) => match fetch_thumbnail(client, tools, url, job.headers, work, job.id, cancel).await {
            Ok(name) => work.join(name),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(error) => {
                tracing::info!(%error, "no cover art: cannot fetch the page's thumbnail");
                return Ok(None);
            }
        },
        (None, None) => return Ok(None),
    };
    if image.extension().is_some_and(|ext| ext == "jpg" || ext == "png") {
        return Ok(Some(image));
    }
    // WebP: MP4 and MP3 take JPEG or PNG.
    let jpeg = work.join("cover.jpg");
    match ffmpeg::to_jpeg(tools.ffmpeg().map_err(EngineError::Media)?, &image, &jpeg, cancel).await {
        Ok(()) => Ok(Some(jpeg)),
        Err(EngineError::Cancelled) => Err(EngineError::Cancelled),
        Err(error) => {
            tracing::info!(%error, "no cover art: cannot make the thumbnail a JPEG");
            Ok(None)
        }
    }
}

/// The fetched files made into the one the user asked for, in `work`.
async fn finish(
    tools: &MediaTools,
    job: &MediaJob<'_>,
    selection: &Selection,
    ext: &str,
    fetched: &[PathBuf],
    work: &Path,
    cancel: &CancellationToken,
) -> Result<PathBuf, EngineError> {
    let out = work.join("out");
    match (selection, fetched) {
        // yt-dlp's downloader merged them already.
        (Selection::Merge { video, audio }, [video_path, audio_path]) if video.is_direct() && audio.is_direct() => {
            let ffmpeg = tools.ffmpeg().map_err(EngineError::Media)?;
            ffmpeg::merge(ffmpeg, video_path, audio_path, ext, &out, cancel).await?;
            Ok(out)
        }
        (_, [single, ..]) if job.quality == Quality::Audio => {
            let probed = match tools.ffprobe() {
                Ok(ffprobe) => ffmpeg::probe(ffprobe, single, cancel).await?,
                Err(_) => ffmpeg::Probed { audio_codec: Some("aac".into()), ..Default::default() },
            };
            let codec = probed
                .audio_codec
                .ok_or_else(|| EngineError::Media("the downloaded media has no audio track".into()))?;
            if codec == "aac" && !probed.has_video && is_m4a(selection.formats()[0]) {
                return Ok(single.clone());
            }
            let ffmpeg = tools.ffmpeg().map_err(EngineError::Media)?;
            ffmpeg::to_m4a(ffmpeg, single, &codec, probed.duration, &out, cancel, |_| {}).await?;
            Ok(out)
        }
        (_, [single, ..]) => Ok(single.clone()),
        (_, []) => Err(EngineError::Media("nothing was downloaded".into())),
    }
}

/// The page's thumbnail as `thumbnails/{id}.{jpg|webp|png}` (other image types become JPEG with ffmpeg).
/// Returns the file name.
async fn fetch_thumbnail(
    client: &HttpClient,
    tools: &MediaTools,
    url: &str,
    headers: &[(String, String)],
    dir: &Path,
    id: DownloadId,
    cancel: &CancellationToken,
) -> Result<String, EngineError> {
    const LIMIT: usize = 20 * 1024 * 1024;
    let parsed: Url = url.parse().map_err(|error| EngineError::Media(format!("thumbnail URL {url:?}: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EngineError::Media(format!("thumbnail URL {url:?} is not http(s)")));
    }
    let (headers, no_extra) = (job_headers(headers)?, HeaderMap::new());
    let response = tokio::select! {
        response = client.send(Method::GET, &parsed, &headers, &no_extra) => response.map_err(|error| {
            error.fatal(&parsed).unwrap_or_else(|| EngineError::Media(format!("thumbnail: {}", error.describe())))
        })?,
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    if !response.status().is_success() {
        return Err(EngineError::Media(format!("thumbnail: the server answered {}", response.status())));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Read in chunks with a cap: a thumbnail URL comes from the page, which may point at anything.
    let mut response = response;
    let mut bytes = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk.map_err(|error| EngineError::Media(format!("thumbnail: {error}")))?,
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > LIMIT {
            return Err(EngineError::Media("thumbnail: larger than 20 MiB".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    let ext = image_ext(&bytes, &content_type);
    let temp = dir.join(format!(".{id}.thumbnail"));
    tokio::fs::write(&temp, &bytes).await.map_err(|error| EngineError::io(&temp, error))?;
    let name = match ext {
        Some(ext) => {
            let name = format!("{id}.{ext}");
            tokio::fs::rename(&temp, dir.join(&name)).await.map_err(|error| EngineError::io(dir.join(&name), error))?;
            name
        }
        None => {
            let ffmpeg = tools.ffmpeg().map_err(EngineError::Media);
            let name = format!("{id}.jpg");
            let converted = match ffmpeg {
                Ok(ffmpeg) => ffmpeg::to_jpeg(ffmpeg, &temp, &dir.join(&name), cancel).await,
                Err(error) => Err(error),
            };
            let _ = tokio::fs::remove_file(&temp).await;
            converted?;
            name
        }
    };
    Ok(name)
}

/// jpg, webp or png by the file's own signature (servers often say `application/octet-stream`), then by type.
fn image_ext(bytes: &[u8], content_type: &str) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpg")
    } else if bytes.starts_with(b"\x89PNG") {
        Some("png")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else {
        match content_type {
            "image/jpeg" => Some("jpg"),
            "image/png" => Some("png"),
            "image/webp" => Some("webp"),
            _ => None,
        }
    }
}

/// What a finished plain download is, when it is audio or video: its duration and size from ffprobe, and, for a
/// video, a frame as its thumbnail (`thumbnails/{id}.jpg`, taken at `at_fraction` of the duration). `None` for
/// any other file, or without ffprobe. Only a file whose first bytes are a media container's is probed.
pub(crate) async fn describe_file(
    tools: &MediaTools,
    file: &Path,
    thumbnails_dir: &Path,
    id: DownloadId,
    at_fraction: Option<f64>,
    cancel: &CancellationToken,
) -> Result<Option<MediaFacts>, EngineError> {
    let Ok(ffprobe) = tools.ffprobe() else { return Ok(None) };
    let mut head = [0u8; 200];
    let read = {
        use tokio::io::AsyncReadExt as _;
        let Ok(mut opened) = tokio::fs::File::open(file).await else { return Ok(None) };
        opened.read(&mut head).await.unwrap_or(0)
    };
    if !haul_core::media::looks_like_media(&head[..read]) {
        return Ok(None);
    }
    let probed = match ffmpeg::probe(ffprobe, file, cancel).await {
        Ok(probed) => probed,
        Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
        Err(error) => {
            tracing::info!(%error, "cannot read the file's streams");
            return Ok(None);
        }
    };
    let mut facts =
        MediaFacts { duration: probed.duration, width: probed.width, height: probed.height, ..MediaFacts::default() };
    if probed.has_video
        && let Ok(ffmpeg_path) = tools.ffmpeg()
    {
        create_dir(thumbnails_dir).await?;
        let name = format!("{id}.jpg");
        let at = frame_time(probed.duration, at_fraction);
        match ffmpeg::frame(ffmpeg_path, file, at, &thumbnails_dir.join(&name), cancel).await {
            Ok(()) => facts.thumbnail = Some(name),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(error) => tracing::info!(%error, "cannot grab a thumbnail frame"),
        }
    }
    Ok((probed.has_video || probed.audio_codec.is_some()).then_some(facts))
}

/// Makes an audio rendition of a finished download in `format`: `{stem}.audio.{ext}` beside it. `on_percent`
/// hears progress.
pub(crate) async fn make_audio(
    tools: &MediaTools,
    source: &Path,
    format: AudioFormat,
    cancel: &CancellationToken,
    on_percent: impl FnMut(f64),
) -> Result<PathBuf, EngineError> {
    let stem = source.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "media".into());
    let out = source.with_file_name(format!("{stem}.audio.{}", format.ext()));
    convert_audio(tools, source, format, &out, cancel, on_percent).await?;
    Ok(out)
}

/// Writes the sound of `source` to `out` in `format` (through `.{name}.part` beside it, so a stopped conversion
/// leaves no half file under the final name): `haul get --audio-format`, and the audio renditions.
pub async fn convert_audio(
    tools: &MediaTools,
    source: &Path,
    format: AudioFormat,
    out: &Path,
    cancel: &CancellationToken,
    on_percent: impl FnMut(f64),
) -> Result<(), EngineError> {
    let ffmpeg = tools.ffmpeg().map_err(EngineError::Media)?;
    let ffprobe = tools.ffprobe().map_err(EngineError::Media)?;
    let probed = ffmpeg::probe(ffprobe, source, cancel).await?;
    let codec = probed.audio_codec.ok_or_else(|| {
        EngineError::Media("the download has no audio track, so there is no audio to make a file of".into())
    })?;
    let name = out.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "audio".into());
    let temp = out.with_file_name(format!(".{name}.part"));
    let made = ffmpeg::to_audio(ffmpeg, source, &codec, format, probed.duration, &temp, cancel, on_percent).await;
    if let Err(error) = made {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(error);
    }
    tokio::fs::rename(&temp, out).await.map_err(|error| EngineError::io(out, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_extension_skips_asking_whether_it_is_a_page() {
        let file = |url: &str| names_a_file(&Url::parse(url).unwrap());
        for url in ["https://h/ubuntu.iso", "https://h/a/b.tar.gz", "http://h/clip.MP4?x=1", "http://h/v2.bin"] {
            assert!(file(url), "{url}");
        }
        for url in [
            "https://h/watch?v=abc",
            "https://h/video/123",
            "https://h/",
            "https://h/page.html",
            "https://h/index.PHP",
            "https://h/v1.2",
            "https://h/.hidden",
            "https://h/name.averylongext",
        ] {
            assert!(!file(url), "{url}");
        }
    }

    #[test]
    fn images_by_signature_then_type() {
        assert_eq!(image_ext(b"\xff\xd8\xff\xe0rest", "application/octet-stream"), Some("jpg"));
        assert_eq!(image_ext(b"\x89PNG\r\n", ""), Some("png"));
        assert_eq!(image_ext(b"RIFF\0\0\0\0WEBPVP8 ", ""), Some("webp"));
        assert_eq!(image_ext(b"GIF89a", "image/gif"), None);
        assert_eq!(image_ext(b"????", "image/png"), Some("png"));
    }

    #[test]
    fn subtitles_asked_for_come_from_subtitles_then_automatic_captions() {
        let track = |lang: &str, ext: &str| SubtitleTrack {
            url: Some(format!("http://h/{lang}.{ext}")),
            ext: Some(ext.into()),
            ..SubtitleTrack::default()
        };
        let info = MediaInfo {
            subtitles: [
                ("en".to_owned(), vec![track("en", "ttml"), track("en", "srt"), track("en", "vtt")]),
                ("../../de".to_owned(), vec![track("de", "vtt")]),
                ("ja".to_owned(), vec![track("ja", "ttml")]),
            ]
            .into(),
            automatic_captions: [
                ("en".to_owned(), vec![track("en-auto", "vtt")]),
                ("fr".to_owned(), vec![track("fr", "vtt")]),
            ]
            .into(),
            ..MediaInfo::default()
        };
        let pick = |langs: &str, auto: bool| {
            let choice = MediaChoice {
                subtitles: haul_core::media_choice::parse_langs(langs).unwrap(),
                auto_subtitles: auto,
                ..MediaChoice::default()
            };
            wanted_subtitles(&info, &choice)
                .into_iter()
                .map(|(lang, track)| (lang, track.url.unwrap()))
                .collect::<Vec<_>>()
        };
        let owned =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        // WebVTT first; a language only in automatic captions only with them; a track without vtt or srt left out.
        assert_eq!(pick("en,fr,ja", false), owned(&[("en", "http://h/en.vtt")]));
        assert_eq!(pick("en,fr", true), owned(&[("en", "http://h/en.vtt"), ("fr", "http://h/fr.vtt")]));
        // `all`: the page's names made safe (`../../de` is `de`), subtitles winning over captions of a language.
        assert_eq!(
            pick("all", true),
            owned(&[("de", "http://h/de.vtt"), ("en", "http://h/en.vtt"), ("fr", "http://h/fr.vtt")])
        );
        let many = MediaInfo {
            automatic_captions: (0..100).map(|n| (format!("l{n}"), vec![track("x", "vtt")])).collect(),
            ..MediaInfo::default()
        };
        let choice =
            MediaChoice { subtitles: vec!["all".parse().unwrap()], auto_subtitles: true, ..MediaChoice::default() };
        assert_eq!(wanted_subtitles(&many, &choice).len(), haul_core::media_choice::MAX_SUBTITLE_LANGS);
    }

    #[test]
    fn direct_files_are_one_format_pages() {
        let info = direct_info("http://h/videos/My%20clip.mp4?x=1");
        assert_eq!(info.title.as_deref(), Some("My clip"));
        assert_eq!(info.formats.len(), 1);
        assert!(info.formats[0].is_direct());
        assert_eq!(safe_id("v720+a/../1"), "v720_a____1");
    }
}
