//! Media fixtures for haul's yt-dlp / ffmpeg integration tests: a loopback web site ([`MediaSite`])
//! whose pages `yt-dlp`'s generic extractor reads offline, serving short clips generated with the
//! real `ffmpeg` when the site starts.
//!
//! Pages (full URLs from the methods of the same name):
//! - [`MediaSite::muxed`]: `og:title`, `og:image` ([`THUMBNAIL`]) and a `<video>` with two muxed
//!   sources, `720p` ([`CLIP_720`]) and `360p` ([`CLIP_360`]): yt-dlp sees formats `720p` and
//!   `360p`, protocol `http`, heights 720 and 360.
//! - [`MediaSite::dash`]: an on-demand DASH manifest ([`MPD`]) with separate streams: formats
//!   `v720` ([`VIDEO_720`]), `v360` ([`VIDEO_360`]) without audio and `a1` ([`AUDIO`]) without
//!   video, all protocol `http` with direct URLs.
//! - [`MediaSite::no_thumbnail`]: like `muxed` without `og:image`.
//! - [`MediaSite::hls`]: an HLS master playlist ([`HLS_MASTER`], one 640x360 variant): one format
//!   with protocol `m3u8_native`, height 360.
//! - [`MediaSite::plain_html`]: a page without media (yt-dlp: "Unsupported URL").
//! - [`MediaSite::feed`]: an RSS feed whose items link to pages: yt-dlp reads it as a playlist whose entries
//!   (`--flat-playlist`) are `url_transparent` links with the items' titles.
//! - [`MediaSite::multi`]: a page with two `<video>` elements (`CLIP_720`, then `CLIP_360`): a playlist whose
//!   two entries are videos read in place (ids `{page}-1`, `{page}-2`).
//! - [`MediaSite::chapters`]: no `<video>`, only a JSON-LD `VideoObject` (what yt-dlp reads then): one format
//!   (`mp4`, [`CLIP_360`] as `contentUrl`), `uploader` [`UPLOADER`], `upload_date` `20261130`, the thumbnail,
//!   and two chapters, "Intro" (0-1 s) and "Main" (1-2 s); the title has no " (1)".
//!
//! With [`MediaOptions::extras`] (encoded at start, so off by default):
//! - [`MediaSite::codecs`]: a DASH manifest ([`CODECS_MPD`]) with video-only `h264-720` ([`VIDEO_720`]),
//!   `h264-360` ([`VIDEO_360`]), `vp9-360` (VP9 in WebM, [`VIDEO_VP9`]) and `av1-360` (AV1 in MP4,
//!   [`VIDEO_AV1`]), audio-only `a1` ([`AUDIO`], AAC) and `a-opus` (Opus in WebM, [`AUDIO_OPUS`]), each with
//!   its codec, so yt-dlp reports `vcodec`/`acodec`; and two `<track kind="subtitles">`, `en` ([`SUBS_EN`]) and
//!   `de` ([`SUBS_DE`]), which yt-dlp lists as `subtitles`.
//! - [`MediaSite::hostile_subs`]: the muxed sources with subtitle tracks whose languages are `../../x` and
//!   `..\\..\\a` DEL TAB `b` (both served [`SUBS_EN`]): yt-dlp passes both on as they are.
//!
//! yt-dlp (2026.10.26) appends " (1)" to a page's title and fetches a page twice. Every file is served with `Content-Length`,
//! `Accept-Ranges: bytes`, single-range `Range` (206, 416), `ETag`, `Last-Modified` and `If-Range`;
//! [`MediaOptions::rate`] paces each response body so a download can be observed mid-way, and
//! [`MediaSite::stats`] counts requests per path. Clips are ~2 s (testsrc + 440 Hz sine) and
//! small (about 120 kB at 720p), generated in well under a second.
//!
//! [`ffprobe`], [`codec_types`] and [`tools_available`] help tests inspect results and explain a
//! missing tool.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pacing::{FAST_CHUNK, Pacer, paced_chunk_len};
use crate::range::{RangeOutcome, if_range_matches, parse_range};

/// Muxed H.264 + AAC, 1280x720 (the `720p` source of the muxed pages).
pub const CLIP_720: &str = "clip720.mp4";
/// Muxed H.264 + AAC, 640x360 (the `360p` source of the muxed pages).
pub const CLIP_360: &str = "clip360.mp4";
/// Video-only 1280x720 (DASH `v720`).
pub const VIDEO_720: &str = "v720.mp4";
/// Video-only 640x360 (DASH `v360`).
pub const VIDEO_360: &str = "v360.mp4";
/// Audio-only AAC (DASH `a1`).
pub const AUDIO: &str = "a.m4a";
/// A 320x180 red JPEG (the pages' `og:image`).
pub const THUMBNAIL: &str = "thumb.jpg";
/// The DASH manifest.
pub const MPD: &str = "manifest.mpd";
/// The HLS master playlist (one 640x360 variant, [`HLS_MEDIA`]).
pub const HLS_MASTER: &str = "hls/master.m3u8";
/// The HLS media playlist (1 s MPEG-TS segments `hls/index0.ts`, ...).
pub const HLS_MEDIA: &str = "hls/index.m3u8";

/// Video-only VP9 in WebM, 640x360 (the codecs page's `vp9-360`; with [`MediaOptions::extras`]).
pub const VIDEO_VP9: &str = "v360-vp9.webm";
/// Video-only AV1 in MP4, 640x360 (the codecs page's `av1-360`; with [`MediaOptions::extras`]).
pub const VIDEO_AV1: &str = "v360-av1.mp4";
/// Audio-only Opus in WebM (the codecs page's `a-opus`; with [`MediaOptions::extras`]).
pub const AUDIO_OPUS: &str = "a-opus.webm";
/// The codecs page's DASH manifest.
pub const CODECS_MPD: &str = "codecs.mpd";
/// English WebVTT subtitles, two cues: "Hello" (0-1 s) and "World" (1-2 s).
pub const SUBS_EN: &str = "subs/en.vtt";
/// German WebVTT subtitles, one cue: "Hallo" (0-1 s).
pub const SUBS_DE: &str = "subs/de.vtt";
/// The uploader the chapters page names (JSON-LD `author`).
pub const UPLOADER: &str = "Ada Lovelace";

/// `Last-Modified` of every file (2020-01-01T00:00:00Z).
const LAST_MODIFIED_SECS: u64 = 1_577_836_800;

/// Knobs of a [`MediaSite`].
#[derive(Clone, Debug)]
pub struct MediaOptions {
    /// Pace every file response body at this many bytes/s (each response on its own, so `n`
    /// ranged connections fetch at `n * rate`). Pages are never paced. Changeable later with
    /// [`MediaSite::set_rate`].
    pub rate: Option<u64>,
    /// Duration of the generated clips, in whole seconds (at least 1).
    pub clip_seconds: u32,
    /// A `name=value` every page and file request must carry in its `Cookie` header, as a site behind a login
    /// does; others are answered 403.
    pub cookie: Option<String>,
    /// Also encode the VP9, AV1 and Opus streams and write the subtitle files of the codecs and hostile-subs
    /// pages (about a second of CPU more at start).
    pub extras: bool,
    /// Signed stream URLs that expire: the muxed pages' clip URLs carry a `token` that is new at every request for
    /// the page, and once this many body bytes were sent for one token, a response still sending stops there (the
    /// connection is cut) and every later request with it is answered 403, as a CDN's signed URL that has run out
    /// mid-download. Requests without a token are served as always.
    pub expire_after: Option<u64>,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self { rate: None, clip_seconds: 2, cookie: None, extras: false, expire_after: None }
    }
}

/// What the site did for one request path (`/clip720.mp4`, `/watch/muxed-1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// All requests, HEAD and failed ones included.
    pub requests: u64,
    pub head_requests: u64,
    /// Requests answered 206.
    pub range_requests: u64,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
}

struct Shared {
    files: HashMap<String, Bytes>,
    /// Bytes/s, 0 for unlimited.
    rate: AtomicU64,
    stats: Mutex<HashMap<String, PathStats>>,
    /// Title of each registered page, by key (`muxed-1`: the page kind, `-`, a counter).
    pages: Mutex<HashMap<String, String>>,
    /// RSS feeds by key (`feed-1.rss`): their documents.
    feeds: Mutex<HashMap<String, String>>,
    shutdown: CancellationToken,
    base_url: String,
    cookie: Option<String>,
    expire_after: Option<u64>,
    /// The last token handed out in a page (see [`MediaOptions::expire_after`]).
    last_token: AtomicU64,
    /// Body bytes sent for each token.
    token_bytes: Mutex<HashMap<String, u64>>,
    /// Requests answered 403 because their token had expired.
    expired: AtomicU64,
    /// Tokens up to this one are expired whatever they sent ([`MediaSite::expire_tokens`]).
    expired_through: AtomicU64,
}

impl Shared {
    fn count(&self, path: &str, f: impl FnOnce(&mut PathStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(stats.entry(path.to_owned()).or_default());
    }
}

/// A running media site on `127.0.0.1:0`. Dropping it (or [`MediaSite::shutdown`]) stops the
/// server and deletes the generated files.
pub struct MediaSite {
    base_url: String,
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for MediaSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSite").field("base_url", &self.base_url).field("dir", &self.dir.path()).finish()
    }
}

impl MediaSite {
    /// Generates 2 s clips and starts an unthrottled site.
    pub async fn start() -> anyhow::Result<MediaSite> {
        Self::start_with(MediaOptions::default()).await
    }

    /// Generates the clips with ffmpeg, then starts the site. Must run within a tokio runtime.
    pub async fn start_with(options: MediaOptions) -> anyhow::Result<MediaSite> {
        if options.clip_seconds == 0 {
            bail!("clip_seconds must be at least 1");
        }
        let dir = tempfile::Builder::new().prefix("haul-media-").tempdir().context("creating the media directory")?;
        generate(dir.path(), options.clip_seconds).await?;
        if options.extras {
            generate_extras(dir.path(), options.clip_seconds).await?;
        }
        let files = load_files(dir.path()).await?;

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("binding the media site")?;
        let addr: SocketAddr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            files,
            rate: AtomicU64::new(options.rate.unwrap_or(0)),
            stats: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            feeds: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
            base_url: base_url.clone(),
            cookie: options.cookie.clone(),
            expire_after: options.expire_after,
            last_token: AtomicU64::new(0),
            token_bytes: Mutex::new(HashMap::new()),
            expired: AtomicU64::new(0),
            expired_through: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/watch/{key}", get(page))
            .route("/plain.html", get(plain))
            .route("/feed/{key}", get(feed))
            .fallback(file)
            .with_state(Arc::clone(&shared));
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        let task = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!("media site failed: {e}");
            }
        });
        Ok(MediaSite { base_url, dir, shared, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Page with `og:title`, `og:image` and two muxed sources (`720p`, `360p`).
    ///
    /// Each call of this and the other page methods registers a new page,
    /// `/watch/{kind}-{n}` (`muxed-1`, `dash-2`, ...), whose yt-dlp `id` is `{kind}-{n}-1`.
    pub fn muxed(&self, title: &str) -> String {
        self.page_url("muxed", title)
    }

    /// Page with a DASH manifest: video `v720`, `v360` and audio `a1` as separate streams.
    pub fn dash(&self, title: &str) -> String {
        self.page_url("dash", title)
    }

    /// Like [`MediaSite::muxed`] without `og:image`: yt-dlp reports no thumbnail.
    pub fn no_thumbnail(&self, title: &str) -> String {
        self.page_url("no-thumbnail", title)
    }

    /// Page with an HLS master playlist: one `m3u8_native` format, height 360.
    pub fn hls(&self, title: &str) -> String {
        self.page_url("hls", title)
    }

    /// An RSS feed titled `title` whose items link to `entries` (title, page URL), in order: a playlist for
    /// yt-dlp. Each call registers a new feed, `/feed/feed-{n}.rss`.
    pub fn feed(&self, title: &str, entries: &[(&str, &str)]) -> String {
        let items: String = entries
            .iter()
            .map(|(title, url)| format!("<item><title>{}</title><link>{}</link></item>\n", escape(title), escape(url)))
            .collect();
        let document = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>\n<title>{}</title>\n\
             <link>{}/</link>\n{items}</channel></rss>\n",
            escape(title),
            self.base_url
        );
        let mut feeds = self.shared.feeds.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("feed-{}.rss", feeds.len() + 1);
        feeds.insert(key.clone(), document);
        format!("{}/feed/{key}", self.base_url)
    }

    /// A page with two videos, `CLIP_720` then `CLIP_360`, each its own `<video>`: a playlist of two entries
    /// read in place.
    pub fn multi(&self, title: &str) -> String {
        self.page_url("multi", title)
    }

    /// Page with only a JSON-LD `VideoObject`: one mp4 format, an uploader, a date, a thumbnail and two chapters.
    pub fn chapters(&self, title: &str) -> String {
        self.page_url("chapters", title)
    }

    /// Page with a DASH manifest of H.264, VP9 and AV1 video and AAC and Opus audio, and `en` and `de` WebVTT
    /// subtitle tracks. Needs [`MediaOptions::extras`].
    pub fn codecs(&self, title: &str) -> String {
        self.page_url("codecs", title)
    }

    /// Muxed sources with subtitle tracks in languages that are paths and escape sequences. Needs
    /// [`MediaOptions::extras`].
    pub fn hostile_subs(&self, title: &str) -> String {
        self.page_url("hostile-subs", title)
    }

    /// `/plain.html`, a page without media, which yt-dlp refuses ("Unsupported URL").
    pub fn plain_html(&self) -> String {
        format!("{}/plain.html", self.base_url)
    }

    /// Direct URL of a served file, e.g. `clip_url(CLIP_720)` or `clip_url(HLS_MEDIA)`.
    pub fn clip_url(&self, name: &str) -> String {
        format!("{}/{}", self.base_url, name.trim_start_matches('/'))
    }

    /// Local path of a generated file (e.g. to compare a download with it byte for byte).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name.trim_start_matches('/'))
    }

    /// The contents of a served file, `None` for an unknown name.
    pub fn bytes(&self, name: &str) -> Option<Bytes> {
        self.shared.files.get(name.trim_start_matches('/')).cloned()
    }

    /// Changes the per-response rate from the next chunk on (`None`: unlimited), also for bodies
    /// being sent.
    pub fn set_rate(&self, rate: Option<u64>) {
        self.shared.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// What was served for `path`: a URL from this site, a URL path (`/clip720.mp4`) or a file
    /// name ([`CLIP_720`]); zeros if it was never requested.
    pub fn stats(&self, path: &str) -> PathStats {
        let path = path.strip_prefix(self.base_url.as_str()).unwrap_or(path);
        let key = format!("/{}", path.trim_start_matches('/'));
        let stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.get(&key).copied().unwrap_or_default()
    }

    /// `stats(path).requests`.
    pub fn requests(&self, path: &str) -> u64 {
        self.stats(path).requests
    }

    /// Stats of every requested path.
    pub fn all_stats(&self) -> HashMap<String, PathStats> {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests answered 403 because their token had expired ([`MediaOptions::expire_after`]).
    pub fn expired_answers(&self) -> u64 {
        self.shared.expired.load(Ordering::Relaxed)
    }

    /// Expires every token handed out so far, as a CDN whose signed URLs ran out while a client was away (only
    /// with [`MediaOptions::expire_after`]).
    pub fn expire_tokens(&self) {
        self.shared.expired_through.store(self.shared.last_token.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// How many tokens pages have handed out so far: one per request for a page (HEAD included).
    pub fn tokens_issued(&self) -> u64 {
        self.shared.last_token.load(Ordering::Relaxed)
    }

    pub fn reset_stats(&self) {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Stops the server and waits (up to 5 s) for it.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }

    fn page_url(&self, kind: &str, title: &str) -> String {
        let mut pages = self.shared.pages.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{kind}-{}", pages.len() + 1);
        pages.insert(key.clone(), title.to_owned());
        format!("{}/watch/{key}", self.base_url)
    }
}

impl Drop for MediaSite {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Generation

async fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running ffmpeg (is it on PATH?)")?;
    if !out.status.success() {
        bail!("ffmpeg {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A muxed clip: testsrc at 25 fps with a keyframe every second (so HLS can cut 1 s segments)
/// and a 440 Hz sine.
async fn muxed_clip(out: &str, size: &str, seconds: &str) -> anyhow::Result<()> {
    let video = format!("testsrc=size={size}:rate=25");
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
        "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart", out,
    ];
    ffmpeg(&args).await
}

/// A stream copy of `input` keeping only the streams `map` selects (`0:v`, `0:a`).
async fn copy_streams(input: &str, map: &str, out: &str) -> anyhow::Result<()> {
    ffmpeg(&["-i", input, "-map", map, "-c", "copy", "-movflags", "+faststart", out]).await
}

async fn generate(dir: &Path, seconds: u32) -> anyhow::Result<()> {
    let p = |name: &str| dir.join(name);
    let s = |name: &str| p(name).into_os_string().into_string().map_err(|_| anyhow::anyhow!("non-UTF-8 temp path"));
    let (c720, c360, thumb) = (s(CLIP_720)?, s(CLIP_360)?, s(THUMBNAIL)?);
    let secs = seconds.to_string();
    let thumb_args = ["-f", "lavfi", "-i", "color=red:size=320x180", "-frames:v", "1", &thumb];
    tokio::try_join!(muxed_clip(&c720, "1280x720", &secs), muxed_clip(&c360, "640x360", &secs), ffmpeg(&thumb_args),)?;

    // The separate streams and the HLS rendition are stream copies of the muxed clips.
    tokio::fs::create_dir_all(p("hls")).await?;
    let (v720, v360, audio, hls) = (s(VIDEO_720)?, s(VIDEO_360)?, s(AUDIO)?, s(HLS_MEDIA)?);
    #[rustfmt::skip]
    let hls_args = [
        "-i", &c360, "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
        "-master_pl_name", "master.m3u8", &hls,
    ];
    tokio::try_join!(
        copy_streams(&c720, "0:v", &v720),
        copy_streams(&c360, "0:v", &v360),
        copy_streams(&c720, "0:a", &audio),
        ffmpeg(&hls_args),
    )?;

    let size = |name: &str| std::fs::metadata(p(name)).map(|m| m.len()).with_context(|| format!("{name} missing"));
    let bandwidth = |name: &str| size(name).map(|n| n * 8 / u64::from(seconds));
    let mpd = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" minBufferTime="PT1S" mediaPresentationDuration="PT{seconds}S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="v720" codecs="avc1.64001f" width="1280" height="720" frameRate="25" bandwidth="{b720}">
        <BaseURL>{VIDEO_720}</BaseURL>
      </Representation>
      <Representation id="v360" codecs="avc1.64001e" width="640" height="360" frameRate="25" bandwidth="{b360}">
        <BaseURL>{VIDEO_360}</BaseURL>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en">
      <Representation id="a1" codecs="mp4a.40.2" audioSamplingRate="44100" bandwidth="{ba}">
        <BaseURL>{AUDIO}</BaseURL>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#,
        b720 = bandwidth(VIDEO_720)?,
        b360 = bandwidth(VIDEO_360)?,
        ba = bandwidth(AUDIO)?,
    );
    tokio::fs::write(p(MPD), mpd).await?;
    Ok(())
}

/// The codecs page's streams (VP9 and Opus in WebM, AV1 in MP4, encoded from the same test pattern and tone),
/// its manifest and the subtitle files.
async fn generate_extras(dir: &Path, seconds: u32) -> anyhow::Result<()> {
    let p = |name: &str| dir.join(name);
    let s = |name: &str| p(name).into_os_string().into_string().map_err(|_| anyhow::anyhow!("non-UTF-8 temp path"));
    let secs = seconds.to_string();
    let (vp9, av1, opus) = (s(VIDEO_VP9)?, s(VIDEO_AV1)?, s(AUDIO_OPUS)?);
    #[rustfmt::skip]
    let vp9_args = [
        "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", &secs, "-c:v", "libvpx-vp9", "-deadline",
        "realtime", "-cpu-used", "8", "-b:v", "200k", "-g", "25", "-an", "-f", "webm", &vp9,
    ];
    #[rustfmt::skip]
    let av1_args = [
        "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", &secs, "-c:v", "libsvtav1", "-preset", "12",
        "-g", "25", "-an", "-movflags", "+faststart", &av1,
    ];
    #[rustfmt::skip]
    let opus_args = [
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &secs, "-c:a", "libopus", "-b:a", "48k",
        "-vn", "-f", "webm", &opus,
    ];
    tokio::try_join!(ffmpeg(&vp9_args), ffmpeg(&av1_args), ffmpeg(&opus_args))?;
    tokio::fs::create_dir_all(p("subs")).await?;
    tokio::fs::write(
        p(SUBS_EN),
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello\n\n00:00:01.000 --> 00:00:02.000\nWorld\n",
    )
    .await?;
    tokio::fs::write(p(SUBS_DE), "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHallo\n").await?;

    let size = |name: &str| std::fs::metadata(p(name)).map(|m| m.len()).with_context(|| format!("{name} missing"));
    let bandwidth = |name: &str| size(name).map(|n| n * 8 / u64::from(seconds));
    let mpd = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" minBufferTime="PT1S" mediaPresentationDuration="PT{seconds}S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <Representation id="h264-720" codecs="avc1.64001f" width="1280" height="720" frameRate="25" bandwidth="{b720}"><BaseURL>{VIDEO_720}</BaseURL></Representation>
      <Representation id="h264-360" codecs="avc1.64001e" width="640" height="360" frameRate="25" bandwidth="{b360}"><BaseURL>{VIDEO_360}</BaseURL></Representation>
      <Representation id="av1-360" codecs="av01.0.04M.08" width="640" height="360" frameRate="25" bandwidth="{bav1}"><BaseURL>{VIDEO_AV1}</BaseURL></Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="video" mimeType="video/webm">
      <Representation id="vp9-360" codecs="vp9" width="640" height="360" frameRate="25" bandwidth="{bvp9}"><BaseURL>{VIDEO_VP9}</BaseURL></Representation>
    </AdaptationSet>
    <AdaptationSet id="2" contentType="audio" mimeType="audio/mp4" lang="en">
      <Representation id="a1" codecs="mp4a.40.2" audioSamplingRate="44100" bandwidth="{ba}"><BaseURL>{AUDIO}</BaseURL></Representation>
    </AdaptationSet>
    <AdaptationSet id="3" contentType="audio" mimeType="audio/webm" lang="en">
      <Representation id="a-opus" codecs="opus" audioSamplingRate="48000" bandwidth="{bopus}"><BaseURL>{AUDIO_OPUS}</BaseURL></Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#,
        b720 = bandwidth(VIDEO_720)?,
        b360 = bandwidth(VIDEO_360)?,
        bav1 = bandwidth(VIDEO_AV1)?,
        bvp9 = bandwidth(VIDEO_VP9)?,
        ba = bandwidth(AUDIO)?,
        bopus = bandwidth(AUDIO_OPUS)?,
    );
    tokio::fs::write(p(CODECS_MPD), mpd).await?;
    Ok(())
}

/// Every generated file by its `/`-separated relative path.
async fn load_files(dir: &Path) -> anyhow::Result<HashMap<String, Bytes>> {
    let mut files = HashMap::new();
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&path).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().into_string().map_err(|n| anyhow::anyhow!("non-UTF-8 name {n:?}"))?;
            let rel = format!("{prefix}{name}");
            if entry.file_type().await?.is_dir() {
                pending.push((entry.path(), format!("{rel}/")));
            } else {
                files.insert(rel, Bytes::from(tokio::fs::read(entry.path()).await?));
            }
        }
    }
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Pages

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(title: &str, og_image: Option<&str>, body: &str) -> String {
    let title = escape(title);
    let image =
        og_image.map(|url| format!("\n<meta property=\"og:image\" content=\"{}\">", escape(url))).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html><head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <meta property=\"og:title\" content=\"{title}\">{image}\n</head>\n<body>\n{body}\n</body></html>\n"
    )
}

fn muxed_video(base: &str, token: Option<u64>) -> String {
    let query = token.map(|token| format!("?token={token}")).unwrap_or_default();
    format!(
        "<video controls>\n<source src=\"{base}/{CLIP_720}{query}\" type=\"video/mp4\" res=\"720\" label=\"720p\">\n\
         <source src=\"{base}/{CLIP_360}{query}\" type=\"video/mp4\" res=\"360\" label=\"360p\">\n</video>"
    )
}

async fn page(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let base = &shared.base_url;
    let title = shared.pages.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let (Some(title), Some((kind, _))) = (title, key.rsplit_once('-')) else {
        shared.count(uri.path(), |s| s.requests += 1);
        return StatusCode::NOT_FOUND.into_response();
    };
    let title = title.as_str();
    let thumb = format!("{base}/{THUMBNAIL}");
    // A new signed URL at every reading of a page, when they expire.
    let token = shared.expire_after.map(|_| shared.last_token.fetch_add(1, Ordering::Relaxed) + 1);
    let text = match kind {
        "muxed" => html(title, Some(&thumb), &muxed_video(base, token)),
        "no-thumbnail" => html(title, None, &muxed_video(base, token)),
        "multi" => {
            let videos = format!(
                "<video controls src=\"{base}/{CLIP_720}\"></video>\n<video controls src=\"{base}/{CLIP_360}\"></video>"
            );
            html(title, Some(&thumb), &videos)
        }
        "dash" => {
            let video =
                format!("<video controls>\n<source src=\"{base}/{MPD}\" type=\"application/dash+xml\">\n</video>");
            html(title, Some(&thumb), &video)
        }
        "hls" => {
            let video = format!(
                "<video controls>\n<source src=\"{base}/{HLS_MASTER}\" type=\"application/x-mpegURL\">\n</video>"
            );
            html(title, Some(&thumb), &video)
        }
        "chapters" => {
            let info = serde_json::json!({
                "@context": "https://schema.org",
                "@type": "VideoObject",
                "name": title,
                "uploadDate": "2026-11-30",
                "author": {"@type": "Person", "name": UPLOADER},
                "thumbnailUrl": thumb,
                "contentUrl": format!("{base}/{CLIP_360}"),
                "hasPart": [
                    {"@type": "Clip", "name": "Intro", "startOffset": 0, "endOffset": 1},
                    {"@type": "Clip", "name": "Main", "startOffset": 1, "endOffset": 2},
                ],
            });
            // `</` cannot end the script early.
            let json = info.to_string().replace("</", "<\\/");
            let head = format!("<script type=\"application/ld+json\">{json}</script>");
            format!(
                "<!DOCTYPE html>\n<html><head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n{head}\n</head>\n\
                 <body>\n<p>A talk.</p>\n</body></html>\n",
                escape(title)
            )
        }
        "codecs" => {
            let video = format!(
                "<video controls>\n<source src=\"{base}/{CODECS_MPD}\" type=\"application/dash+xml\">\n\
                 <track kind=\"subtitles\" srclang=\"en\" label=\"English\" src=\"{base}/{SUBS_EN}\">\n\
                 <track kind=\"subtitles\" srclang=\"de\" label=\"Deutsch\" src=\"{base}/{SUBS_DE}\">\n</video>"
            );
            html(title, Some(&thumb), &video)
        }
        "hostile-subs" => {
            let video = format!(
                "<video controls>\n<source src=\"{base}/{CLIP_360}\" type=\"video/mp4\" res=\"360\" label=\"360p\">\n\
                 <track kind=\"subtitles\" srclang=\"../../x\" src=\"{base}/{SUBS_EN}\">\n\
                 <track kind=\"subtitles\" srclang=\"..\\\\..\\\\a&#127;&#9;b\" src=\"{base}/{SUBS_EN}\">\n</video>"
            );
            html(title, Some(&thumb), &video)
        }
        _ => unreachable!("page kinds are the MediaSite methods'"),
    };
    respond(&shared, &method, &headers, uri.path(), Bytes::from(text), "text/html; charset=utf-8", false)
}

async fn feed(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let document = shared.feeds.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let Some(document) = document else {
        shared.count(uri.path(), |s| s.requests += 1);
        return StatusCode::NOT_FOUND.into_response();
    };
    respond(&shared, &method, &headers, uri.path(), Bytes::from(document), "application/rss+xml", false)
}

async fn plain(State(shared): State<Arc<Shared>>, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let text = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>A plain page</title></head>\n\
                <body><h1>A plain page</h1><p>No media here.</p></body></html>\n";
    respond(
        &shared,
        &method,
        &headers,
        uri.path(),
        Bytes::from_static(text.as_bytes()),
        "text/html; charset=utf-8",
        false,
    )
}

// ---------------------------------------------------------------------------------------------
// Files

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "mp4" => "video/mp4",
        "m4a" => "audio/mp4",
        "webm" => "video/webm",
        "vtt" => "text/vtt",
        "jpg" => "image/jpeg",
        "mpd" => "application/dash+xml",
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        _ => "application/octet-stream",
    }
}

async fn file(State(shared): State<Arc<Shared>>, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path();
    let name = path.trim_start_matches('/');
    let token = uri.query().and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("token=")));
    if let (Some(limit), Some(token)) = (shared.expire_after, token) {
        let sent = shared.token_bytes.lock().unwrap_or_else(|e| e.into_inner()).get(token).copied().unwrap_or(0);
        let revoked = token.parse::<u64>().is_ok_and(|n| n <= shared.expired_through.load(Ordering::Relaxed));
        if sent >= limit || revoked {
            shared.count(path, |s| s.requests += 1);
            shared.expired.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::FORBIDDEN, "the signed URL has expired").into_response();
        }
    }
    match shared.files.get(name) {
        Some(bytes) => {
            let response = respond(&shared, &method, &headers, path, bytes.clone(), content_type(name), true);
            match token {
                Some(token) if shared.expire_after.is_some() => counted(response, &shared, token),
                _ => response,
            }
        }
        None => {
            shared.count(path, |s| s.requests += 1);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// `response` with its body's bytes counted against `token` as they are sent, cut once the token has run out.
fn counted(response: Response, shared: &Arc<Shared>, token: &str) -> Response {
    use futures_util::StreamExt as _;
    let (parts, body) = response.into_parts();
    let (shared, token) = (Arc::clone(shared), token.to_owned());
    let limit = shared.expire_after.unwrap_or(u64::MAX);
    let stream = body.into_data_stream().scan(false, move |cut, chunk| {
        if *cut {
            return std::future::ready(None);
        }
        let item = match chunk {
            Ok(chunk) => {
                let mut sent = shared.token_bytes.lock().unwrap_or_else(|e| e.into_inner());
                let total = sent.entry(token.clone()).or_default();
                if *total >= limit {
                    *cut = true;
                    Err(std::io::Error::other("media site: the signed URL expired"))
                } else {
                    *total += chunk.len() as u64;
                    Ok(chunk)
                }
            }
            Err(error) => Err(std::io::Error::other(error)),
        };
        std::future::ready(Some(item))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("generated header values are visible ASCII")
}

/// Answers GET/HEAD for `bytes` with validators and single-range support.
fn respond(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    bytes: Bytes,
    content_type: &'static str,
    paced: bool,
) -> Response {
    let is_head = method == Method::HEAD;
    shared.count(path, |s| {
        s.requests += 1;
        s.head_requests += u64::from(is_head);
    });
    if let Some(wanted) = &shared.cookie {
        let sent = headers.get_all(axum::http::header::COOKIE).iter().filter_map(|value| value.to_str().ok());
        if !sent.flat_map(|value| value.split(';')).any(|pair| pair.trim() == wanted) {
            return (StatusCode::FORBIDDEN, "sign in first").into_response();
        }
    }
    if method != Method::GET && !is_head {
        return (StatusCode::METHOD_NOT_ALLOWED, [(ALLOW, HeaderValue::from_static("GET, HEAD"))]).into_response();
    }
    let size = bytes.len() as u64;
    let etag = {
        use sha2::Digest as _;
        format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&bytes))[..16])
    };
    let last_modified = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_SECS);

    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, header_value(etag.clone()));
    h.insert(LAST_MODIFIED, header_value(httpdate::fmt_http_date(last_modified)));

    let range = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok =
        headers.get(IF_RANGE).is_none_or(|v| v.to_str().is_ok_and(|v| if_range_matches(v, &etag, last_modified)));
    let outcome = match range {
        Some(range) if if_range_ok => parse_range(range, size),
        _ => RangeOutcome::Full,
    };
    let (status, start, end) = match outcome {
        RangeOutcome::Full => (StatusCode::OK, 0, size),
        RangeOutcome::Partial { start, end } => {
            h.insert(CONTENT_RANGE, header_value(format!("bytes {start}-{}/{size}", end - 1)));
            shared.count(path, |s| s.range_requests += 1);
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeOutcome::Unsatisfiable => {
            h.insert(CONTENT_RANGE, header_value(format!("bytes */{size}")));
            h.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    if is_head {
        return (status, h, Body::empty()).into_response();
    }
    let body = BodyState {
        bytes: bytes.slice(start as usize..end as usize),
        pos: 0,
        paced,
        pacer: None,
        shared: Arc::clone(shared),
        path: path.to_owned(),
    };
    let stream = futures_util::stream::unfold(body, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    });
    (status, h, Body::from_stream(stream)).into_response()
}

struct BodyState {
    bytes: Bytes,
    pos: usize,
    paced: bool,
    /// The pacer and the rate it was made for (a rate change starts a new one).
    pacer: Option<(u64, Pacer)>,
    shared: Arc<Shared>,
    path: String,
}

impl BodyState {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let rate = if self.paced { self.shared.rate.load(Ordering::Relaxed) } else { 0 };
        let chunk = if rate == 0 {
            self.pacer = None;
            FAST_CHUNK
        } else {
            if self.pacer.as_ref().is_none_or(|(r, _)| *r != rate) {
                self.pacer = Some((rate, Pacer::new(rate)));
            }
            paced_chunk_len(rate)
        };
        if let Some((_, pacer)) = &mut self.pacer {
            let due = pacer.due();
            if due > Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = self.shared.shutdown.cancelled() => {
                        self.pos = self.bytes.len();
                        return Some(Err(std::io::Error::other("media site: shutting down")));
                    }
                }
            }
        }
        let n = chunk.min(self.bytes.len() - self.pos);
        let out = self.bytes.slice(self.pos..self.pos + n);
        self.pos += n;
        if let Some((_, pacer)) = &mut self.pacer {
            pacer.record(n);
        }
        self.shared.count(&self.path, |s| s.bytes_sent += n as u64);
        Some(Ok(out))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests

/// `ffprobe -v error -print_format json -show_streams -show_format PATH`, parsed. Panics with
/// ffprobe's message when it fails (a test helper).
pub fn ffprobe(path: impl AsRef<Path>) -> serde_json::Value {
    let path = path.as_ref();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ffprobe on {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "ffprobe {} failed ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ffprobe {}: bad JSON: {e}", path.display()))
}

/// The `codec_type` of each stream in order, e.g. `["video", "audio"]`.
pub fn codec_types(path: impl AsRef<Path>) -> Vec<String> {
    let probe = ffprobe(path);
    let streams = probe["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    streams.iter().filter_map(|s| s["codec_type"].as_str().map(str::to_owned)).collect()
}

/// Which of `ffmpeg`, `ffprobe` and `yt-dlp` cannot be run from PATH (checked once per process).
pub fn missing_tools() -> &'static [&'static str] {
    static MISSING: OnceLock<Vec<&'static str>> = OnceLock::new();
    MISSING.get_or_init(|| {
        [("ffmpeg", "-version"), ("ffprobe", "-version"), ("yt-dlp", "--version")]
            .into_iter()
            .filter(|(tool, flag)| {
                let status = std::process::Command::new(tool)
                    .arg(flag)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                !status.is_ok_and(|s| s.success())
            })
            .map(|(tool, _)| tool)
            .collect()
    })
}

/// Whether `ffmpeg`, `ffprobe` and `yt-dlp` are all on PATH.
pub fn tools_available() -> bool {
    missing_tools().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape(r#"a/../"b" <c> & 'd' 🎬"#), "a/../&quot;b&quot; &lt;c&gt; &amp; &#39;d&#39; 🎬");
    }
}
