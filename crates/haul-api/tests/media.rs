//! End-to-end tests of media downloads through the native API: a real server (engine, SQLite, router) beside a
//! [`MediaSite`] whose pages the real yt-dlp reads offline and whose clips the real ffmpeg generated, driven with
//! reqwest as a client would.
//!
//! Every test checks what ends up on disk and on the wire: file names and places, bytes compared with the
//! site's, streams and sizes read back with ffprobe, thumbnails, renditions, and for cancel / pause the work
//! directory `downloads/.haul-{id}/` and the yt-dlp processes (found in `/proc/*/cmdline`). Nothing is mocked.
//!
//! The tools (yt-dlp, ffmpeg, ffprobe) must be on PATH; a test fails naming the missing one otherwise. Each
//! test starts its own server and site (the site's rate is global), runs its jobs concurrently in that server,
//! and polls every [`POLL`] with a [`TIMEOUT`] that only a hung download reaches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::Harness;
use haul_core::media::media_file_name;
use haul_engine::MediaTools;
use haul_test_support::media::{AUDIO, CLIP_360, CLIP_720, HLS_MEDIA, THUMBNAIL, VIDEO_360, VIDEO_720};
use haul_test_support::{MediaOptions, MediaSite, OriginOptions, codec_types, ffprobe, missing_tools};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const TOKEN: &str = "media-test-token-0123456789";
/// How long any one wait may take; only a hung job reaches it.
const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(75);
/// A slow site's rate (bytes/s per response): a 2 s 720p video stream (~100 kB) takes about 5 s, a 1 s HLS
/// segment (~42 kB) about 2 s.
const SLOW: u64 = 20_000;

// ---------------------------------------------------------------------------------------------------------------
// Helpers
//
// The tests of fetching, merging and naming add with `"embed_metadata": false`, so the file is the site's bytes
// (the server's default puts title, artist, date, chapters and cover art in it; tested on its own below).

/// A server with the media tools found on PATH, and a media site.
async fn setup(options: MediaOptions) -> (Harness, MediaSite) {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media tests need {} on PATH", missing.join(", "));
    let (harness, site) = tokio::join!(Harness::start(TOKEN, OriginOptions::default()), MediaSite::start_with(options));
    (harness, site.expect("the media site starts"))
}

/// A site serving files at [`SLOW`] with clips of `clip_seconds`.
async fn slow_setup(clip_seconds: u32) -> (Harness, MediaSite) {
    setup(MediaOptions { rate: Some(SLOW), clip_seconds, ..MediaOptions::default() }).await
}

/// A harness around a server started with exactly `tools`.
async fn harness_with_tools(tools: MediaTools) -> Harness {
    Harness::start_with_tools(TOKEN, OriginOptions::default(), tools).await
}

impl Harness {
    /// `POST /v1/downloads`, expecting 201.
    async fn add(&self, body: Value) -> Value {
        let (status, job) = self.call(Method::POST, "/v1/downloads", Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "POST /v1/downloads {body}: {job}");
        job
    }

    /// `POST /v1/downloads`, returning the id.
    async fn add_id(&self, body: Value) -> String {
        id_of(&self.add(body).await)
    }

    async fn job(&self, id: &str) -> Value {
        let (status, job) = self.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// Polls the download until `done` holds, failing at once if the download fails.
    async fn wait_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert_ne!(job["state"], "failed", "download failed while waiting until {what}: {job:#}");
            assert!(Instant::now() < deadline, "download {id} never {what} within {TIMEOUT:?}: {job:#}");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn completed(&self, id: &str) -> Value {
        self.wait_until(id, "completed", |job| job["state"] == "completed").await
    }

    /// Waits until the download is active with at least `bytes` done.
    async fn active_with(&self, id: &str, bytes: u64) -> Value {
        let what = format!("was active with {bytes} bytes or more done");
        let job = self
            .wait_until(id, &what, |job| {
                job["state"] == "completed" || (job["state"] == "active" && job["bytes_done"].as_u64() >= Some(bytes))
            })
            .await;
        assert_eq!(job["state"], "active", "the download finished before it could be observed mid-way: {job:#}");
        job
    }

    /// `POST /v1/downloads/{id}/{action}`, expecting 200.
    async fn act(&self, id: &str, action: &str) -> Value {
        let (status, job) = self.call(Method::POST, &format!("/v1/downloads/{id}/{action}"), None).await;
        assert_eq!(status, StatusCode::OK, "{action}: {job}");
        job
    }

    /// The finished file of a completed download, on disk.
    fn file_of(&self, job: &Value) -> PathBuf {
        let path = job["path"].as_str().unwrap_or_else(|| panic!("no path: {job:#}"));
        self.downloads_dir.join(path)
    }

    /// A media job's work directory.
    fn work_dir(&self, id: &str) -> PathBuf {
        self.downloads_dir.join(format!(".haul-{id}"))
    }

    fn thumbnails_dir(&self) -> PathBuf {
        self.server.thumbnails_dir()
    }

    /// An authenticated GET of raw bytes.
    async fn get_bytes(&self, path: &str) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let response = self.request(Method::GET, path).send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    /// Polls the download's `audio` rendition until it is `state`, failing at once if it fails.
    async fn rendition_until(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let (status, rendition) =
                self.call(Method::GET, &format!("/v1/downloads/{id}/renditions/audio"), None).await;
            assert_eq!(status, StatusCode::OK, "{rendition}");
            if rendition["state"] == state {
                return rendition;
            }
            assert_ne!(rendition["state"], "failed", "rendition failed while waiting for {state}: {rendition:#}");
            assert!(Instant::now() < deadline, "rendition of {id} never {state}: {rendition:#}");
            tokio::time::sleep(POLL).await;
        }
    }
}

fn id_of(job: &Value) -> String {
    job["id"].as_str().unwrap_or_else(|| panic!("no id: {job:#}")).to_owned()
}

/// Asserts the one error shape and returns the message.
fn error_message(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_owned()
}

/// The names in `dir`, sorted; empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(read) => read.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The first stream of `kind` that ffprobe sees in `path`.
fn stream(path: &Path, kind: &str) -> Value {
    let probe = ffprobe(path);
    let streams = probe["streams"].as_array().cloned().unwrap_or_default();
    streams.into_iter().find(|s| s["codec_type"] == kind).unwrap_or_else(|| panic!("no {kind} in {probe:#}"))
}

/// ffprobe's duration of `path`, in seconds.
fn probed_duration(path: &Path) -> f64 {
    let probe = ffprobe(path);
    probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or_else(|| panic!("{probe:#}"))
}

fn assert_about(value: &Value, expected: f64, what: &str) {
    let got = value.as_f64().unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!((got - expected).abs() < 0.3, "{what} {got}, expected about {expected}");
}

/// Asserts a finished video: streams, height (by ffprobe) and duration.
fn assert_video(path: &Path, height: u64, seconds: f64) {
    assert_eq!(codec_types(path), ["video", "audio"], "{}", path.display());
    let video = stream(path, "video");
    assert_eq!(video["height"], height, "{}: {video:#}", path.display());
    let duration = probed_duration(path);
    assert!((duration - seconds).abs() < 0.3, "{}: duration {duration}, expected {seconds}", path.display());
}

/// Command lines of the running processes that mention any of `needles`.
fn processes_mentioning(needles: &[&str]) -> Vec<String> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        // Gone meanwhile, or a zombie (empty command line): not running.
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().any(|needle| cmdline.contains(needle)) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Waits until some process mentions `needle` (yt-dlp's downloader names the work directory) and returns them.
async fn wait_for_process(needle: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found = processes_mentioning(&[needle]);
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no process mentioning {needle} within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (at most 5 s) until no process mentions any of `needles`.
async fn assert_no_process(needles: &[&str], when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = processes_mentioning(needles);
        if found.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes still running {when}: {found:#?}");
        tokio::time::sleep(POLL).await;
    }
}

/// The ranges a resume record says are on disk, in bytes.
fn recorded_bytes(control: &Path) -> u64 {
    let text = std::fs::read_to_string(control).unwrap_or_else(|e| panic!("{}: {e}", control.display()));
    let record: Value = serde_json::from_str(&text).unwrap();
    let ranges = record["done"].as_array().unwrap_or_else(|| panic!("no ranges in {record}"));
    ranges.iter().map(|range| range[1].as_u64().unwrap() - range[0].as_u64().unwrap()).sum()
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_page_titles_make_one_safe_file_name_in_the_downloads_dir() {
    let (h, site) = setup(MediaOptions::default()).await;
    let titles = ["../../etc/passwd", r"a/b\c", r#"quote "this" <now> & 'that'"#, "emoji 🎬 ok", ".."];
    // (the title the job should report, the job's id)
    let mut expected = Vec::new();
    for title in titles {
        let job = h.add(json!({"embed_metadata": false, "url": site.muxed(title), "kind": "media"})).await;
        assert_eq!(job["kind"], "media", "{job:#}");
        // yt-dlp reports the page's title with " (1)" appended.
        expected.push((format!("{title} (1)"), id_of(&job)));
    }
    // A title the client gives wins over the page's, and is made just as safe.
    let client_title = "../mine/<own> \\ title";
    let job = h
        .add(json!({"embed_metadata": false, "url": site.muxed("Page title"), "kind": "media", "title": client_title}))
        .await;
    assert_eq!(job["title"], client_title);
    expected.push((client_title.to_owned(), id_of(&job)));
    let clip = site.bytes(CLIP_720).unwrap();
    let thumbnail = site.bytes(THUMBNAIL).unwrap();
    let mut names = Vec::new();
    for (title, id) in &expected {
        let job = h.completed(id).await;
        assert_eq!(job["kind"], "media", "{job:#}");
        let reported = job["title"].as_str().unwrap_or_else(|| panic!("no title: {job:#}"));
        assert_eq!(reported, title, "{job:#}");
        let name = media_file_name(reported, id, "mp4");
        assert!(name.ends_with(&format!("__{id}.mp4")), "{name}");
        assert!(!name.contains(['/', '\\', '"', '<', '>']) && !name.starts_with('.'), "{name}");
        assert_eq!(job["filename"], name.as_str(), "{job:#}");
        assert_eq!(job["path"], name.as_str(), "directly in the downloads directory: {job:#}");
        let path = h.downloads_dir.join(&name);
        assert_eq!(std::fs::read(&path).unwrap(), clip, "the 720p source, byte for byte: {}", path.display());

        assert_about(&job["duration"], 2.0, "duration");
        assert_eq!((job["width"].as_u64(), job["height"].as_u64()), (Some(1280), Some(720)), "{job:#}");
        assert_eq!(job["format"], "720p");
        assert_eq!(job["size"].as_u64(), Some(clip.len() as u64));
        assert_eq!(codec_types(&path), ["video", "audio"]);

        assert_eq!(job["has_thumbnail"], true, "{job:#}");
        let stored = h.thumbnails_dir().join(format!("{id}.jpg"));
        assert_eq!(std::fs::read(&stored).unwrap(), thumbnail, "the page's thumbnail: {}", stored.display());
        let (status, headers, bytes) = h.get_bytes(&format!("/v1/downloads/{id}/thumbnail")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(bytes, thumbnail);
        names.push(name);
    }
    names.sort();
    assert_eq!(entries(&h.downloads_dir), names, "no work directory or anything else is left");
    // Nothing was written anywhere else in the server's data directory.
    let data_dir = h.server.dir.path();
    for file in files_under(data_dir) {
        let parent = file.parent().unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let allowed = parent == h.downloads_dir
            || parent == h.thumbnails_dir()
            || (parent == data_dir && name.starts_with("haul.db"));
        assert!(allowed, "unexpected file {}", file.display());
    }
    assert!(site.stats(CLIP_720).requests > 0, "haul fetched the clip itself");
    assert_eq!(site.stats(CLIP_360).requests, 0, "only the chosen format is fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_picks_the_tallest_format_that_fits() {
    let (h, site) = setup(MediaOptions::default()).await;
    // (page, quality, format chosen, height, the site's file it must equal when a muxed source is taken whole)
    let cases = [
        (site.muxed("Muxed best"), "best", "720p", 720, Some(CLIP_720)),
        (site.muxed("Muxed 720p"), "720p", "720p", 720, Some(CLIP_720)),
        (site.muxed("Muxed 480p"), "480p", "360p", 360, Some(CLIP_360)),
        (site.muxed("Muxed 360p"), "360p", "360p", 360, Some(CLIP_360)),
        (site.dash("Dash best"), "best", "v720+a1", 720, None),
        (site.dash("Dash 360p"), "360p", "v360+a1", 360, None),
    ];
    let mut ids = Vec::new();
    for (url, quality, ..) in &cases {
        let job = h.add(json!({"embed_metadata": false, "url": url, "quality": quality})).await;
        assert_eq!(job["quality"], *quality);
        ids.push(id_of(&job));
    }
    for ((url, quality, format, height, source), id) in cases.iter().zip(&ids) {
        let job = h.completed(id).await;
        let what = format!("{url} at {quality}");
        assert_eq!(job["kind"], "media", "{what}: {job:#}");
        assert_eq!(job["format"], *format, "{what}: {job:#}");
        assert_eq!(job["height"].as_u64(), Some(*height), "{what}: {job:#}");
        assert_eq!(job["width"].as_u64(), Some(height * 16 / 9), "{what}: {job:#}");
        let path = h.file_of(&job);
        assert!(path.to_string_lossy().ends_with(&format!("__{id}.mp4")), "{what}: {}", path.display());
        assert_video(&path, *height, 2.0);
        if let Some(source) = source {
            assert_eq!(std::fs::read(&path).unwrap(), site.bytes(source).unwrap(), "{what}: {source} as it is");
        }
    }
    // The separate streams went through haul's own engine, in full.
    for name in [VIDEO_720, VIDEO_360, AUDIO] {
        let stats = site.stats(name);
        assert!(stats.requests > 0, "{name} was never fetched");
        assert!(stats.bytes_sent >= site.bytes(name).unwrap().len() as u64, "{name}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_quality_makes_an_m4a_with_only_the_sound() {
    let (h, site) = setup(MediaOptions::default()).await;
    let dash = h.add_id(json!({"embed_metadata": false, "url": site.dash("Dash audio"), "quality": "audio"})).await;
    let muxed = h.add_id(json!({"embed_metadata": false, "url": site.muxed("Muxed audio"), "quality": "audio"})).await;
    let direct = h.add_id(json!({"embed_metadata": false, "url": site.clip_url(CLIP_720), "quality": "audio"})).await;

    for (id, format) in [(&dash, "a1"), (&muxed, "360p"), (&direct, "direct")] {
        let job = h.completed(id).await;
        assert_eq!(job["kind"], "media", "{job:#}");
        assert_eq!(job["format"], format, "{job:#}");
        let path = h.file_of(&job);
        assert!(path.to_string_lossy().ends_with(&format!("__{id}.m4a")), "{}", path.display());
        assert_eq!(path.parent(), Some(h.downloads_dir.as_path()));
        assert_eq!(codec_types(&path), ["audio"], "{}", path.display());
        assert_eq!(stream(&path, "audio")["codec_name"], "aac");
        let probe = ffprobe(&path);
        assert!(probe["format"]["format_name"].as_str().unwrap().contains("m4a"), "{probe:#}");
        let duration = probed_duration(&path);
        assert!((duration - 2.0).abs() < 0.3, "{}: duration {duration}", path.display());
        assert_eq!(job["size"].as_u64(), Some(std::fs::metadata(&path).unwrap().len()));
    }
    // The DASH audio stream is already an m4a: taken as it is.
    let job = h.job(&dash).await;
    assert_eq!(std::fs::read(h.file_of(&job)).unwrap(), site.bytes(AUDIO).unwrap());
    assert_eq!(site.stats(VIDEO_720).requests + site.stats(VIDEO_360).requests, 0, "no video stream was fetched");
    // A direct file is named after its URL.
    let job = h.job(&direct).await;
    assert_eq!(job["filename"], media_file_name("clip720", &direct, "m4a"), "{job:#}");
    assert!(site.stats(CLIP_720).requests > 0 && site.stats(CLIP_360).requests > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_without_a_thumbnail_gets_a_frame_of_the_video() {
    let (h, site) = setup(MediaOptions::default()).await;
    let id = h.add_id(json!({"url": site.no_thumbnail("No thumbnail"), "kind": "media"})).await;
    let job = h.completed(&id).await;
    assert_eq!(job["has_thumbnail"], true, "{job:#}");
    let thumbnail = h.thumbnails_dir().join(format!("{id}.jpg"));
    let bytes = std::fs::read(&thumbnail).unwrap_or_else(|e| panic!("{}: {e}", thumbnail.display()));
    assert!(bytes.starts_with(&[0xff, 0xd8, 0xff]), "not a JPEG: {:02x?}", &bytes[..bytes.len().min(8)]);
    let image = stream(&thumbnail, "video");
    assert_eq!(image["codec_name"], "mjpeg", "{image:#}");
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(1280), Some(720)), "{image:#}");
    assert_eq!(entries(&h.thumbnails_dir()), [format!("{id}.jpg")], "no temporary file is left");

    let (status, headers, served) = h.get_bytes(&format!("/v1/downloads/{id}/thumbnail")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(served, bytes);
    assert_eq!(site.stats(THUMBNAIL).requests, 0, "the page names no image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_goes_through_yt_dlp_and_a_rendition_asked_meanwhile_waits_for_it() {
    let (h, site) = slow_setup(2).await;
    let url = site.hls("Live stream");
    let id = h.add_id(json!({"embed_metadata": false, "url": url})).await;
    let job = h.active_with(&id, 1).await;
    assert!(job["bytes_done"].as_u64() > Some(0), "{job:#}");

    // Asked for while the video is still coming: pending until it is there.
    let (status, rendition) = h.call(Method::POST, &format!("/v1/downloads/{id}/renditions/audio"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rendition}");
    assert_eq!(rendition["name"], "audio");
    assert_eq!(rendition["state"], "pending", "{rendition:#}");
    assert_eq!(rendition["file"], Value::Null);
    let (status, file) = h.call(Method::GET, &format!("/v1/downloads/{id}/renditions/audio/file"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{file}");
    let (_, rendition) = h.call(Method::GET, &format!("/v1/downloads/{id}/renditions/audio"), None).await;
    assert_eq!(rendition["state"], "pending", "{rendition:#}");
    assert_eq!(h.job(&id).await["state"], "active", "the download is slow enough to still be running");

    let job = h.completed(&id).await;
    assert_eq!(job["kind"], "media", "{job:#}");
    assert_eq!(job["format"].as_str().map(|format| format.is_empty()), Some(false), "{job:#}");
    let path = h.file_of(&job);
    assert_eq!(codec_types(&path), ["video", "audio"], "{}", path.display());
    assert_eq!(stream(&path, "video")["height"], 360);
    assert!(!h.work_dir(&id).exists(), "the work directory is gone");
    assert!(site.stats(HLS_MEDIA).requests > 0);
    assert!(site.stats("hls/index0.ts").bytes_sent > 0, "{:#?}", site.all_stats());

    let rendition = h.rendition_until(&id, "ready").await;
    assert_eq!(rendition["percent"].as_f64(), Some(100.0));
    let (status, _, bytes) = h.get_bytes(&format!("/v1/downloads/{id}/renditions/audio/file")).await;
    assert_eq!(status, StatusCode::OK);
    let temp = tempfile::tempdir().unwrap();
    let audio = temp.path().join("audio.m4a");
    std::fs::write(&audio, bytes).unwrap();
    assert_eq!(codec_types(&audio), ["audio"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_rendition_is_made_served_and_deleted() {
    let (h, site) = setup(MediaOptions::default()).await;
    let id = h.add_id(json!({"embed_metadata": false, "url": site.dash("Rendition source")})).await;
    let job = h.completed(&id).await;
    let video = h.file_of(&job);
    assert_video(&video, 720, 2.0);
    let rendition_path = {
        let stem = video.file_stem().unwrap().to_string_lossy();
        video.with_file_name(format!("{stem}.audio.m4a"))
    };
    let path = format!("/v1/downloads/{id}/renditions/audio");
    let (status, none) = h.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not asked for yet: {none}");

    let (status, rendition) = h.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rendition}");
    assert_eq!(rendition["name"], "audio");
    assert!(["pending", "active", "ready"].contains(&rendition["state"].as_str().unwrap()), "{rendition:#}");
    let rendition = h.rendition_until(&id, "ready").await;
    assert_eq!(rendition["percent"].as_f64(), Some(100.0), "{rendition:#}");
    assert_eq!(rendition["error"], Value::Null);
    assert_eq!(rendition["file"], format!("{path}/file"));
    let (status, again) = h.call(Method::POST, &path, None).await;
    assert_eq!((status, &again["state"]), (StatusCode::ACCEPTED, &json!("ready")), "asking again: {again}");

    let (status, _, bytes) = h.get_bytes(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::OK);
    let temp = tempfile::tempdir().unwrap();
    let served = temp.path().join("served.m4a");
    std::fs::write(&served, &bytes).unwrap();
    assert_eq!(codec_types(&served), ["audio"]);
    assert_eq!(stream(&served, "audio")["codec_name"], "aac");
    assert_eq!(std::fs::read(&rendition_path).unwrap(), bytes, "served from {}", rendition_path.display());

    // Deleting the rendition deletes its file, not the video.
    let (status, removed) = h.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(!rendition_path.exists(), "{} is still there", rendition_path.display());
    assert!(video.is_file());
    let (status, gone) = h.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    let (status, _, _) = h.get_bytes(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Made again, then everything goes with the download.
    let (status, rendition) = h.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rendition}");
    h.rendition_until(&id, "ready").await;
    assert!(rendition_path.is_file());
    let thumbnail = h.thumbnails_dir().join(format!("{id}.jpg"));
    assert!(thumbnail.is_file());
    let (status, removed) = h.call(Method::DELETE, &format!("/v1/downloads/{id}?delete_files=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    for gone in [&video, &rendition_path, &thumbnail] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }
    assert_eq!(entries(&h.downloads_dir), Vec::<String>::new());
    assert_eq!(entries(&h.thumbnails_dir()), Vec::<String>::new());
    let (status, _) = h.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The sound of a finished video in every format a rendition offers: each made by ffmpeg beside the video as
/// `{stem}.audio.{ext}`, in the codec its name says (ffprobe), served by the API; Cloudflare's dialect still sees
/// only its own `default` and `audio`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_renditions_are_made_in_mp3_opus_flac_and_wav() {
    let (h, site) = setup(MediaOptions::default()).await;
    let id = h.add_id(json!({"url": site.dash("Formats source")})).await;
    let video = h.file_of(&h.completed(&id).await);
    let stem = video.file_stem().unwrap().to_string_lossy().into_owned();
    let temp = tempfile::tempdir().unwrap();
    for (name, codec) in [("mp3", "mp3"), ("opus", "opus"), ("flac", "flac"), ("wav", "pcm_s16le")] {
        let path = format!("/v1/downloads/{id}/renditions/{name}");
        let (status, rendition) = h.call(Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}: {rendition}");
        let deadline = Instant::now() + TIMEOUT;
        let rendition = loop {
            let (status, rendition) = h.call(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{rendition}");
            assert_ne!(rendition["state"], "failed", "{name}: {rendition:#}");
            if rendition["state"] == "ready" {
                break rendition;
            }
            assert!(Instant::now() < deadline, "{name} never ready: {rendition:#}");
            tokio::time::sleep(POLL).await;
        };
        assert_eq!(rendition["file"], format!("{path}/file"));
        let made = video.with_file_name(format!("{stem}.audio.{name}"));
        assert!(made.is_file(), "{} is not there", made.display());
        assert_eq!(codec_types(&made), ["audio"], "{name}");
        assert_eq!(stream(&made, "audio")["codec_name"], codec, "{name}");
        let (status, _, bytes) = h.get_bytes(&format!("{path}/file")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let served = temp.path().join(format!("served.{name}"));
        std::fs::write(&served, &bytes).unwrap();
        assert_eq!(stream(&served, "audio")["codec_name"], codec, "{name} as served");
    }
    let (status, listed) = h.call(Method::GET, &format!("/v1/downloads/{id}/renditions"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, unknown) = h.call(Method::POST, &format!("/v1/downloads/{id}/renditions/aiff"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_media_jobs_and_their_processes_and_leaves_nothing() {
    // 4 s clips: yt-dlp's downloader runs for about 8 s, long enough to be caught at work.
    let (h, site) = slow_setup(4).await;
    let dash_url = site.dash("Cancelled dash");
    let hls_url = site.hls("Cancelled hls");
    let dash = h.add_id(json!({"url": dash_url})).await;
    let hls = h.add_id(json!({"url": hls_url})).await;

    // (a) haul's own engine fetching the separate streams.
    h.active_with(&dash, 1).await;
    assert!(h.work_dir(&dash).is_dir(), "the streams come into the work directory");
    let job = h.act(&dash, "cancel").await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_eq!(h.job(&dash).await["state"], "cancelled");
    assert!(!h.work_dir(&dash).exists(), "the work directory is deleted");

    // (b) yt-dlp's downloader, killed with its process group.
    let hls_work = h.work_dir(&hls);
    let hls_work = hls_work.to_str().unwrap();
    let running = wait_for_process(hls_work).await;
    assert!(running.iter().any(|cmdline| cmdline.contains(&hls_url)), "{running:#?}");
    let job = h.act(&hls, "cancel").await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_no_process(&[&hls_url, hls_work, &dash_url], "after the cancel").await;
    assert!(!Path::new(hls_work).exists(), "the work directory is deleted");

    assert_eq!(entries(&h.downloads_dir), Vec::<String>::new(), "no partial or final file");
    for id in [&dash, &hls] {
        let job = h.job(id).await;
        assert_eq!(job["state"], "cancelled", "{job:#}");
        let (status, _, _) = h.get_bytes(&format!("/v1/downloads/{id}/file")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Nothing comes back later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(entries(&h.downloads_dir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_continue_media_jobs_where_they_stopped() {
    // 4 s clips: the HLS download (four segments) is still running once its first segment is in.
    let (h, site) = slow_setup(4).await;
    let video_len = site.bytes(VIDEO_720).unwrap().len() as u64;
    let hls_url = site.hls("Paused hls");
    let dash = h.add_id(json!({"embed_metadata": false, "url": site.dash("Paused dash")})).await;
    let hls = h.add_id(json!({"embed_metadata": false, "url": hls_url})).await;

    // haul's engine: paused a third of the way into the video stream.
    h.active_with(&dash, video_len / 3).await;
    let job = h.act(&dash, "pause").await;
    assert_eq!(job["state"], "paused", "{job:#}");
    let work = h.work_dir(&dash);
    let control = work.join("fv720.part.haul");
    let kept = recorded_bytes(&control);
    assert!(kept >= video_len / 3 && kept < video_len, "{kept} of {video_len} bytes recorded in {}", control.display());
    assert!(work.join("fv720.part").is_file(), "{:?}", entries(&work));

    // yt-dlp's downloader: paused once its first segment is in.
    let hls_work = h.work_dir(&hls);
    let hls_work_text = hls_work.to_str().unwrap().to_owned();
    wait_for_process(&hls_work_text).await;
    let first_segment = site.bytes("hls/index0.ts").unwrap().len() as u64;
    h.active_with(&hls, first_segment + 1024).await;
    let job = h.act(&hls, "pause").await;
    assert_eq!(job["state"], "paused", "{job:#}");
    assert_no_process(&[&hls_url, &hls_work_text], "after the pause").await;
    let partial: u64 = files_under(&hls_work).iter().map(|file| std::fs::metadata(file).unwrap().len()).sum();
    assert!(partial > 0, "yt-dlp's partial data is kept: {:?}", entries(&hls_work));

    // Still paused a moment later: nothing runs. (Counted from here: the site may still have been writing its
    // last chunk into a socket haul had already closed when the pause returned.)
    let sent_before = site.stats(VIDEO_720).bytes_sent;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.job(&dash).await["state"], "paused");
    assert_eq!(site.stats(VIDEO_720).bytes_sent, sent_before, "nothing is fetched while paused");

    site.set_rate(None);
    for id in [&dash, &hls] {
        let job = h.act(id, "resume").await;
        assert!(job["state"] == "queued" || job["state"] == "active", "{job:#}");
    }
    let job = h.completed(&dash).await;
    let path = h.file_of(&job);
    assert_video(&path, 720, 4.0);
    assert!(!work.exists(), "the work directory is gone once done");
    let sent = site.stats(VIDEO_720).bytes_sent;
    assert!(sent < 2 * video_len, "{sent} bytes sent for a {video_len}-byte stream: fetched again from the start");
    let after_resume = sent - sent_before;
    assert!(
        after_resume <= video_len - kept + 16 * 1024,
        "{after_resume} bytes fetched after the resume, but only {} were missing",
        video_len - kept
    );

    let job = h.completed(&hls).await;
    let path = h.file_of(&job);
    assert_eq!(codec_types(&path), ["video", "audio"], "{}", path.display());
    assert_video(&path, 360, 4.0);
    assert!(!hls_work.exists(), "the work directory is gone once done");
    let first = site.stats("hls/index0.ts");
    assert_eq!(first.requests, 1, "yt-dlp continued after the segment it had: {first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_media_tools_media_is_refused_and_pages_are_plain_files() {
    let h = harness_with_tools(MediaTools::none()).await;
    let site = MediaSite::start().await.expect("the media site starts");
    let page = site.muxed("No tools here");

    let (status, body) = h.call(Method::POST, "/v1/downloads", Some(json!({"url": page, "kind": "media"}))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(error_message(&body, "not_implemented").contains("yt-dlp"), "{body}");
    let (status, body) = h.call(Method::POST, "/v1/downloads", Some(json!({"url": page, "quality": "audio"}))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(error_message(&body, "not_implemented").contains("ffmpeg"), "{body}");

    // `auto`: the page as it is.
    let page_job = h.add_id(json!({"url": page})).await;
    let clip_job = h.add_id(json!({"url": site.clip_url(CLIP_720)})).await;
    let job = h.completed(&page_job).await;
    assert_eq!(job["kind"], "file", "{job:#}");
    assert_eq!(job["format"], Value::Null);
    assert_eq!(job["has_thumbnail"], false);
    let html = std::fs::read(h.file_of(&job)).unwrap();
    assert!(String::from_utf8_lossy(&html).contains("No tools here"), "the HTML page");
    let (status, _, served) = h.get_bytes(&format!("/v1/downloads/{page_job}/file")).await;
    assert_eq!((status, served), (StatusCode::OK, html));

    let job = h.completed(&clip_job).await;
    assert_eq!(job["kind"], "file", "{job:#}");
    assert_eq!(std::fs::read(h.file_of(&job)).unwrap(), site.bytes(CLIP_720).unwrap());
    assert_eq!(job["filename"], CLIP_720);

    let (status, body) = h.call(Method::POST, &format!("/v1/downloads/{clip_job}/renditions/audio"), None).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(error_message(&body, "not_implemented").contains("ffmpeg"), "{body}");
    assert_eq!(site.stats(THUMBNAIL).requests, 0, "no media work was done");
    assert!(!h.thumbnails_dir().exists() || entries(&h.thumbnails_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_pages_and_kind_file_are_fetched_as_they_are() {
    let (h, site) = setup(MediaOptions::default()).await;
    let plain = h.add_id(json!({"url": site.plain_html()})).await;
    let page = site.muxed("Fetched as a file");
    let as_file = h.add_id(json!({"url": page, "kind": "file"})).await;

    let job = h.completed(&plain).await;
    assert_eq!(job["kind"], "file", "yt-dlp could not read it: {job:#}");
    assert_eq!(job["format"], Value::Null);
    let expected = reqwest::get(site.plain_html()).await.unwrap().bytes().await.unwrap();
    assert_eq!(std::fs::read(h.file_of(&job)).unwrap(), expected);

    let job = h.completed(&as_file).await;
    assert_eq!(job["kind"], "file", "{job:#}");
    assert_eq!((&job["format"], &job["has_thumbnail"]), (&Value::Null, &json!(false)), "{job:#}");
    assert_eq!(job["title"], Value::Null, "no page was read: {job:#}");
    // yt-dlp reads a page twice and would have fetched the thumbnail; haul's engine fetches it once.
    let page_stats = site.stats(&page);
    assert_eq!(page_stats.requests - page_stats.head_requests, 1, "{page_stats:?}");
    for name in [THUMBNAIL, CLIP_720, CLIP_360] {
        assert_eq!(site.stats(name).requests, 0, "{name} fetched");
    }
    assert!(!h.work_dir(&as_file).exists());
    assert!(entries(&h.thumbnails_dir()).is_empty());
    let expected = reqwest::get(&page).await.unwrap().bytes().await.unwrap();
    assert_eq!(std::fs::read(h.file_of(&job)).unwrap(), expected);
}

/// A cancel that lands in the last steps (while ffprobe reads the finished file or a frame is grabbed) must
/// still leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_the_thumbnail_frame_is_grabbed_leaves_no_file() {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media tests need {} on PATH", missing.join(", "));
    // ffmpeg as found, except that grabbing a frame first waits 5 s: the cancel lands in that step.
    let found = MediaTools::discover(None, None, std::env::var_os("PATH").as_deref()).expect("look up media tools");
    let real = found.ffmpeg.clone().expect("ffmpeg on PATH");
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("ffmpeg");
    let script = format!("#!/bin/sh\ncase \"$*\" in *-frames:v*) sleep 5 ;; esac\nexec '{}' \"$@\"\n", real.display());
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let h = harness_with_tools(MediaTools { ffmpeg: Some(wrapper), ..found }).await;
    let site = MediaSite::start().await.expect("the media site starts");

    let id = h.add_id(json!({"url": site.no_thumbnail("Cancelled at the end"), "kind": "media"})).await;
    let thumbnail = h.thumbnails_dir().join(format!("{id}.jpg"));
    wait_for_process(thumbnail.to_str().unwrap()).await;
    let job = h.act(&id, "cancel").await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_no_process(&[thumbnail.to_str().unwrap()], "after the cancel").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = h.job(&id).await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_eq!(entries(&h.downloads_dir), Vec::<String>::new(), "a cancelled job leaves no file: {job:#}");
}

// ---------------------------------------------------------------------------------------------------------------
// Playlists

impl Harness {
    /// The entries of a playlist, in playlist order.
    async fn entries_of(&self, parent: &str) -> Vec<Value> {
        let (status, list) = self.call(Method::GET, &format!("/v1/downloads?parent={parent}&order=oldest"), None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["downloads"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the job read its page as a playlist with `entries` entries, and returns it.
    async fn playlist(&self, id: &str, entries: u64) -> Value {
        self.wait_until(id, "became a playlist", |job| {
            job["kind"] == "playlist" && job["playlist"]["entries"].as_u64() == Some(entries)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_is_a_playlist_whose_entries_run_as_jobs_and_one_cancelled_leaves_the_others() {
    let (h, site) = slow_setup(2).await;
    let pages = [site.muxed("Page one"), site.dash("Page two"), site.no_thumbnail("Page three")];
    let feed = site.feed("My channel", &[("First", &pages[0]), ("Second", &pages[1]), ("Third", &pages[2])]);
    let parent = h.add_id(json!({"url": feed, "embed_metadata": false})).await;

    let playlist = h.playlist(&parent, 3).await;
    assert_eq!(playlist["title"], "My channel", "{playlist:#}");
    let listed = h.entries_of(&parent).await;
    let seen: Vec<(Value, Value, Value, Value)> = listed
        .iter()
        .map(|e| (e["playlist_index"].clone(), e["url"].clone(), e["title"].clone(), e["kind"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (json!(1), json!(pages[0]), json!("First"), json!("media")),
            (json!(2), json!(pages[1]), json!("Second"), json!("media")),
            (json!(3), json!(pages[2]), json!("Third"), json!("media")),
        ]
    );
    for entry in &listed {
        assert_eq!(entry["parent"], json!(parent), "{entry:#}");
    }

    // The second entry is cancelled (whether it is running yet or not); the others go on.
    let second = id_of(&listed[1]);
    let cancelled = h.act(&second, "cancel").await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    let first = h.completed(&id_of(&listed[0])).await;
    let third = h.completed(&id_of(&listed[2])).await;
    assert_video(&h.file_of(&first), 720, 2.0);
    assert_video(&h.file_of(&third), 720, 2.0);
    assert_eq!(h.job(&second).await["state"], "cancelled");

    // The playlist's state and bytes are its entries'.
    let done = h.wait_until(&parent, "completed", |job| job["state"] == "completed").await;
    assert_eq!(done["playlist"], json!({"entries": 3, "completed": 2, "failed": 0, "cancelled": 1}), "{done:#}");
    let sizes = first["size"].as_u64().unwrap() + third["size"].as_u64().unwrap();
    let cancelled_bytes = h.job(&second).await["bytes_done"].as_u64().unwrap();
    assert_eq!(done["bytes_done"].as_u64().unwrap(), sizes + cancelled_bytes, "{done:#}");
    assert!(done["finished_at"].is_i64(), "{done:#}");
    // The feed itself was read, never downloaded as a file.
    let names = entries_under(&h.downloads_dir);
    assert!(!names.iter().any(|name| name.contains("rss")), "{names:?}");
}

/// Every name under `dir`, recursively.
fn entries_under(dir: &Path) -> Vec<String> {
    files_under(dir).iter().map(|path| path.display().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlist_items_choose_entries_and_a_playlist_is_paused_cancelled_and_removed_as_a_whole() {
    let (h, site) = slow_setup(4).await;
    let pages = [site.muxed("One"), site.muxed("Two"), site.muxed("Three")];
    let feed = site.feed("Three videos", &[("One", &pages[0]), ("Two", &pages[1]), ("Three", &pages[2])]);

    // A selection that does not parse is refused before anything is added.
    let (status, body) =
        h.call(Method::POST, "/v1/downloads", Some(json!({"url": feed, "playlist_items": "3-1"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "bad_request");
    assert!(message.contains("`3-1` ends before it starts") && message.contains("1-5,8,12-"), "{message}");
    let (status, body) = h
        .call(Method::POST, "/v1/downloads", Some(json!({"url": feed, "playlist_items": "2", "kind": "playlist"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let parent = h.add_id(json!({"url": feed, "playlist_items": "1,3", "embed_metadata": false})).await;
    let playlist = h.playlist(&parent, 2).await;
    assert_eq!(playlist["playlist"]["items"], "1,3", "{playlist:#}");
    let listed = h.entries_of(&parent).await;
    let indexes: Vec<&Value> = listed.iter().map(|entry| &entry["playlist_index"]).collect();
    assert_eq!(indexes, [&json!(1), &json!(3)]);

    // Pause the playlist: every entry that had not ended is paused, and the playlist with them.
    h.active_with(&id_of(&listed[0]), 1).await;
    let paused = h.act(&parent, "pause").await;
    assert_eq!(paused["state"], "paused", "{paused:#}");
    for entry in h.entries_of(&parent).await {
        assert_eq!(entry["state"], "paused", "{entry:#}");
    }
    // Pausing it again applies to no entry: a conflict that says why.
    let (status, body) = h.call(Method::POST, &format!("/v1/downloads/{parent}/pause"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no entry of this playlist can be paused"), "{body}");

    // Resume, then cancel it as a whole.
    let resumed = h.act(&parent, "resume").await;
    assert!(["queued", "active"].contains(&resumed["state"].as_str().unwrap()), "{resumed:#}");
    let cancelled = h.act(&parent, "cancel").await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["playlist"]["cancelled"], 2, "{cancelled:#}");

    // Retry brings the entries back; remove takes the playlist and every entry with it.
    let retried = h.act(&parent, "retry").await;
    assert!(["queued", "active"].contains(&retried["state"].as_str().unwrap()), "{retried:#}");
    let (status, body) = h.call(Method::DELETE, &format!("/v1/downloads/{parent}?delete_files=true"), None).await;
    assert!(status.is_success(), "{status}: {body}");
    for id in std::iter::once(parent.clone()).chain(listed.iter().map(id_of)) {
        let (status, _) = h.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id} is gone");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(entries(&h.downloads_dir), Vec::<String>::new(), "no file of any entry is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_several_videos_is_a_playlist_whose_entries_are_read_in_place() {
    let (h, site) = setup(MediaOptions::default()).await;
    let page = site.multi("Two clips");
    let parent = h.add_id(json!({"url": page, "embed_metadata": false})).await;
    h.playlist(&parent, 2).await;
    // An entry whose URL a client could not add (another scheme) is left out of a feed's playlist.
    let feed = site.feed("Mixed", &[("Secret", "file:///etc/passwd"), ("Fine", &site.muxed("Fine"))]);
    let mixed = h.add_id(json!({"url": feed, "embed_metadata": false})).await;
    h.playlist(&mixed, 1).await;
    let kept = h.entries_of(&mixed).await;
    assert_eq!((kept.len(), &kept[0]["title"], &kept[0]["playlist_index"]), (1, &json!("Fine"), &json!(2)));
    let listed = h.entries_of(&parent).await;
    assert_eq!(listed.len(), 2);
    let mut heights = Vec::new();
    for entry in &listed {
        assert_eq!(entry["url"], json!(page), "an entry read in place is its page's: {entry:#}");
        let done = h.completed(&id_of(entry)).await;
        heights.push(stream(&h.file_of(&done), "video")["height"].as_u64().unwrap());
    }
    assert_eq!(heights, [720, 360], "the first entry is the 720p clip, the second the 360p one");
    let done = h.wait_until(&parent, "completed", |job| job["state"] == "completed").await;
    assert_eq!(done["playlist"]["completed"], 2, "{done:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_templates_name_a_servers_files_and_a_playlists_entries_and_never_clobber() {
    let (h, site) = setup(MediaOptions::default()).await;
    for (body, says) in [
        (json!({"url": site.muxed("x"), "name_template": "{title"}), "a '{' without its '}'"),
        (json!({"url": site.muxed("x"), "name_template": "../{title}"}), "one file name, not a path"),
        (json!({"url": site.muxed("x"), "name_template": "{nope}"}), "unknown field {nope}"),
        (json!({"url": site.muxed("x"), "kind": "file", "name_template": "{title}"}), "takes filename"),
    ] {
        let (status, answer) = h.call(Method::POST, "/v1/downloads", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(error_message(&answer, "bad_request").contains(says), "{body}: {answer}");
    }

    let pages = [site.muxed("Opening"), site.muxed("Closing: the end")];
    let feed = site.feed("Conference/2026", &[("Opening", &pages[0]), ("Closing: the end", &pages[1])]);
    let parent = h
        .add_id(json!({"url": feed, "name_template": "{playlist} {playlist_index} - {title}", "quality": "360p",
                       "embed_metadata": false}))
        .await;
    h.playlist(&parent, 2).await;
    let mut names = Vec::new();
    for entry in h.entries_of(&parent).await {
        assert_eq!(entry["name_template"], "{playlist} {playlist_index} - {title}", "{entry:#}");
        assert_eq!(entry["media_options"]["embed_metadata"], false, "the playlist's choices: {entry:#}");
        let done = h.completed(&id_of(&entry)).await;
        names.push(done["path"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, ["Conference_2026 01 - Opening.mp4", "Conference_2026 02 - Closing_ the end.mp4"]);

    // Two downloads whose template gives one name: the second is numbered, the first kept.
    let page = site.muxed("Same");
    let first = h
        .completed(
            &h.add_id(json!({"url": page, "name_template": "{title}", "quality": "360p", "embed_metadata": false}))
                .await,
        )
        .await;
    let second = h
        .completed(
            &h.add_id(json!({"url": page, "name_template": "{title}", "quality": "720p", "embed_metadata": false, "force": true}))
                .await,
        )
        .await;
    // (yt-dlp titles the site's pages "Same (1)".)
    let first_name = first["path"].as_str().unwrap();
    assert!(first_name.starts_with("Same") && first_name.ends_with(".mp4"), "{first:#}");
    let numbered = format!("{} (1).mp4", first_name.trim_end_matches(".mp4"));
    assert_eq!(second["path"].as_str(), Some(numbered.as_str()), "{second:#}");
    assert_eq!(stream(&h.file_of(&first), "video")["height"], 360);
    assert_eq!(stream(&h.file_of(&second), "video")["height"], 720);
}

// ---------------------------------------------------------------------------------------------------------------
// Format choice, subtitles and metadata

/// `(codec_type, codec_name)` of each stream but cover art, the height of the video, and ffprobe's container.
fn playable(path: &Path) -> (Vec<(String, String)>, Option<u64>, String) {
    let probe = ffprobe(path);
    let streams: Vec<&Value> =
        probe["streams"].as_array().unwrap().iter().filter(|s| s["disposition"]["attached_pic"] != 1).collect();
    let kinds = streams
        .iter()
        .map(|s| (s["codec_type"].as_str().unwrap().to_owned(), s["codec_name"].as_str().unwrap().to_owned()))
        .collect();
    let height = streams.iter().find(|s| s["codec_type"] == "video").and_then(|s| s["height"].as_u64());
    (kinds, height, probe["format"]["format_name"].as_str().unwrap().to_owned())
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// ffprobe with the chapters.
fn probe_chapters(path: &Path) -> Vec<String> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_chapters"])
        .arg(path)
        .output()
        .unwrap();
    let probe: Value = serde_json::from_slice(&output.stdout).unwrap();
    probe["chapters"].as_array().unwrap().iter().map(|c| c["tags"]["title"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_codec_and_selector_choose_the_streams_and_a_bad_selector_is_refused() {
    let (h, site) = setup(MediaOptions { extras: true, ..MediaOptions::default() }).await;
    // (request fields, format chosen, streams, height, container)
    let cases = [
        (json!({"prefer": "webm"}), "vp9-360+a-opus", &[("video", "vp9"), ("audio", "opus")][..], 360, "matroska,webm"),
        (json!({"vcodec": "av1"}), "av1-360+a1", &[("video", "av1"), ("audio", "aac")][..], 360, "mov,mp4"),
        (
            json!({"vcodec": "vp9", "quality": "720p"}),
            "vp9-360+a1",
            &[("video", "vp9"), ("audio", "aac")][..],
            360,
            "mov,mp4",
        ),
        (json!({"vcodec": "h264"}), "h264-720+a1", &[("video", "h264"), ("audio", "aac")][..], 720, "mov,mp4"),
        (
            json!({"format": "bv*[vcodec^=vp9]+a1"}),
            "vp9-360+a1",
            &[("video", "vp9"), ("audio", "aac")][..],
            360,
            "mov,mp4",
        ),
        (
            json!({"format": "bv*[height<=360][vcodec^=avc1]+ba[acodec=opus]"}),
            "h264-360+a-opus",
            &[("video", "h264"), ("audio", "opus")][..],
            360,
            "mov,mp4",
        ),
    ];
    let mut ids = Vec::new();
    for (fields, ..) in &cases {
        let mut body = fields.clone();
        body["url"] = json!(site.codecs("Codecs"));
        let job = h.add(body).await;
        for (key, value) in fields.as_object().unwrap() {
            if key != "quality" {
                assert_eq!(&job["media_options"][key], value, "{job:#}");
            }
        }
        ids.push(id_of(&job));
    }
    for ((fields, format, streams, height, container), id) in cases.iter().zip(&ids) {
        let job = h.completed(id).await;
        assert_eq!(job["format"], *format, "{fields}: {job:#}");
        let (kinds, got_height, got_container) = playable(&h.file_of(&job));
        assert_eq!((kinds, got_height), (owned(streams), Some(*height)), "{fields}");
        assert!(got_container.starts_with(container), "{fields}: {got_container}");
        let ext = if container.contains("webm") { "webm" } else { "mp4" };
        assert!(job["path"].as_str().unwrap().ends_with(&format!("__{id}.{ext}")), "{job:#}");
    }

    // Refused before anything is queued, in yt-dlp's words where the selector is yt-dlp's to judge.
    let before = h.call(Method::GET, "/v1/downloads", None).await.1;
    let page = site.codecs("Refused");
    for (fields, words) in [
        (json!({"format": "bv*[height<=720"}), "Invalid format specification"),
        (json!({"format": "best[height<=abc]"}), "Invalid filter specification 'height<=abc'"),
        (json!({"format": "137,140"}), "several downloads"),
        (json!({"format": "b", "quality": "720p"}), "leave out quality"),
        (json!({"prefer": "avi"}), "unknown container \"avi\"; expected one of mp4, webm"),
        (json!({"vcodec": "hevc"}), "expected one of av1, vp9, h264"),
        (json!({"subtitles": ["../../x"]}), "not a language code"),
        (json!({"subtitles": ["e\u{7}n"]}), "not a language code"),
    ] {
        let mut body = fields.clone();
        body["url"] = json!(page);
        let (status, answer) = h.call(Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields}: {answer}");
        let message = error_message(&answer, "bad_request");
        assert!(message.contains(words), "{fields}: {message}");
    }
    assert_eq!(h.call(Method::GET, "/v1/downloads", None).await.1["total"], before["total"]);
    assert_eq!(site.requests(&page), 0, "the page was never read");
    // A selector the page has nothing for fails the download with yt-dlp's message.
    let id = h.add_id(json!({"url": page, "format": "bv*[height>=2000]+ba"})).await;
    let deadline = Instant::now() + TIMEOUT;
    let failed = loop {
        let job = h.job(&id).await;
        if job["state"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline && job["state"] != "completed", "{job:#}");
        tokio::time::sleep(POLL).await;
    };
    assert!(failed["error"].as_str().unwrap().contains("Requested format is not available"), "{failed:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtitles_are_saved_listed_and_served_to_their_account_only() {
    use haul_test_support::media::{SUBS_DE, SUBS_EN};
    let (h, site) = setup(MediaOptions { extras: true, ..MediaOptions::default() }).await;
    let id =
        h.add_id(json!({"url": site.codecs("Subtitled"), "subtitles": ["en", "de"], "embed_subtitles": true})).await;
    let job = h.completed(&id).await;
    assert_eq!(job["media_options"]["subtitles"], json!(["en", "de"]), "{job:#}");
    let stem = job["filename"].as_str().unwrap().trim_end_matches(".mp4").to_owned();
    let files = job["subtitle_files"].as_array().unwrap_or_else(|| panic!("{job:#}"));
    let listed: Vec<(&str, &str, &str)> = files
        .iter()
        .map(|f| (f["lang"].as_str().unwrap(), f["name"].as_str().unwrap(), f["url"].as_str().unwrap()))
        .collect();
    let names = [format!("{stem}.de.vtt"), format!("{stem}.en.vtt")];
    let urls = [format!("/v1/downloads/{id}/subtitles/de"), format!("/v1/downloads/{id}/subtitles/en")];
    assert_eq!(
        listed,
        [("de", names[0].as_str(), urls[0].as_str()), ("en", names[1].as_str(), urls[1].as_str())],
        "{job:#}"
    );
    for ((lang, name, url), source) in listed.iter().zip([SUBS_DE, SUBS_EN]) {
        // Beside the video, and served.
        assert_eq!(std::fs::read(h.downloads_dir.join(name)).unwrap(), site.bytes(source).unwrap(), "{lang}");
        let (status, headers, bytes) = h.get_bytes(url).await;
        assert_eq!((status, bytes), (StatusCode::OK, site.bytes(source).unwrap().to_vec()), "{lang}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/vtt", "{lang}");
    }
    // And in the file: two subtitle streams tagged with their language.
    let probe = ffprobe(h.file_of(&job));
    let languages: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "subtitle")
        .map(|s| s["tags"]["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages, ["deu", "eng"], "{probe:#}");

    let (status, answer) = h.call(Method::GET, &format!("/v1/downloads/{id}/subtitles/fr"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // Another account sees nothing of it.
    h.server.add_account("eve", None, haul_core::account::KeyKind::Bearer, "eve-secret").await;
    let eve = h.client.get(format!("{}{}", h.base, urls[1])).bearer_auth("eve-secret").send().await.unwrap();
    assert_eq!(eve.status(), StatusCode::NOT_FOUND);
    let anonymous = h.client.get(format!("{}{}", h.base, urls[1])).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Removing the download with its files removes the subtitle files too.
    let (status, answer) = h.call(Method::DELETE, &format!("/v1/downloads/{id}?delete_files=true"), None).await;
    assert!(status.is_success(), "{status}: {answer}");
    for name in &names {
        assert!(!h.downloads_dir.join(name).exists(), "{name} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_embeds_title_artist_date_chapters_and_cover_art_by_default() {
    use haul_test_support::media::UPLOADER;
    let (h, site) = setup(MediaOptions { extras: true, ..MediaOptions::default() }).await;
    let tagged = h.add_id(json!({"url": site.chapters("A talk")})).await;
    let plain = h.add_id(json!({"url": site.chapters("Untouched"), "embed_metadata": false})).await;
    let webm = h.add_id(json!({"url": site.codecs("In WebM"), "prefer": "webm"})).await;
    let audio = h.add_id(json!({"url": site.chapters("Sound"), "quality": "audio"})).await;

    let job = h.completed(&tagged).await;
    assert_eq!(job["media_options"]["embed_metadata"], true, "{job:#}");
    let path = h.file_of(&job);
    let probe = ffprobe(&path);
    let tags = &probe["format"]["tags"];
    assert_eq!(
        (&tags["title"], &tags["artist"], &tags["date"]),
        (&json!("A talk"), &json!(UPLOADER), &json!("2026-11-30"))
    );

    assert_eq!(probe_chapters(&path), ["Intro", "Main"]);
    let cover: Vec<&Value> =
        probe["streams"].as_array().unwrap().iter().filter(|s| s["disposition"]["attached_pic"] == 1).collect();
    assert_eq!(cover.len(), 1, "{probe:#}");
    assert_eq!(
        (&cover[0]["codec_name"], &cover[0]["width"], &cover[0]["height"]),
        (&json!("mjpeg"), &json!(320), &json!(180))
    );
    assert_eq!(job["size"].as_u64(), Some(std::fs::metadata(&path).unwrap().len()));
    let (status, _, served) = h.get_bytes(&format!("/v1/downloads/{tagged}/file")).await;
    assert_eq!((status, served), (StatusCode::OK, std::fs::read(&path).unwrap()));

    // Asked not to: the site's bytes.
    let job = h.completed(&plain).await;
    assert_eq!(std::fs::read(h.file_of(&job)).unwrap(), site.bytes(CLIP_360).unwrap());

    // WebM takes the tags but no cover art (its muxer has no picture streams).
    let job = h.completed(&webm).await;
    let probe = ffprobe(h.file_of(&job));
    assert_eq!(probe["format"]["tags"]["title"], "In WebM (1)", "{probe:#}");
    assert!(probe["streams"].as_array().unwrap().iter().all(|s| s["disposition"]["attached_pic"] != 1), "{probe:#}");

    // The sound alone as m4a: tags and cover art too.
    let job = h.completed(&audio).await;
    let probe = ffprobe(h.file_of(&job));
    assert_eq!(probe["format"]["tags"]["artist"], UPLOADER, "{probe:#}");
    // (MP4's chapters are a text track: a `data` stream.)
    let kinds: Vec<(&str, i64)> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] != "data")
        .map(|s| (s["codec_type"].as_str().unwrap(), s["disposition"]["attached_pic"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("audio", 0), ("video", 1)], "{probe:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_added_again_skips_the_entries_its_archive_holds() {
    let (h, site) = setup(MediaOptions::default()).await;
    let pages = [site.muxed("Kept one"), site.muxed("Kept two"), site.muxed("New three")];
    let first_feed = site.feed("Show", &[("Kept one", &pages[0]), ("Kept two", &pages[1])]);
    let first = h.add_id(json!({"url": first_feed, "quality": "360p", "embed_metadata": false})).await;
    h.playlist(&first, 2).await;
    h.wait_until(&first, "completed", |job| job["state"] == "completed").await;

    // The same playlist again: nothing is left to fetch, and the playlist says so.
    let again = h.add_id(json!({"url": first_feed, "quality": "360p", "embed_metadata": false})).await;
    let failed = h.wait_until(&again, "failed", |job| job["state"] == "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("every entry of this playlist that was asked for (2)") && error.contains("force"),
        "{error}"
    );

    // The playlist grew by one: only the new entry is fetched, and the two are counted as skipped.
    let grown = site.feed("Show", &[("Kept one", &pages[0]), ("Kept two", &pages[1]), ("New three", &pages[2])]);
    let third = h.add_id(json!({"url": grown, "quality": "360p", "embed_metadata": false})).await;
    let playlist = h.playlist(&third, 1).await;
    assert_eq!(playlist["playlist"]["skipped"], 2, "{playlist:#}");
    let entries = h.entries_of(&third).await;
    assert_eq!(
        (entries.len(), &entries[0]["playlist_index"], &entries[0]["title"]),
        (1, &json!(3), &json!("New three"))
    );
    h.wait_until(&third, "completed", |job| job["state"] == "completed").await;

    // force fetches every entry again.
    let forced = h.add_id(json!({"url": grown, "quality": "360p", "embed_metadata": false, "force": true})).await;
    let playlist = h.playlist(&forced, 3).await;
    assert!(playlist["playlist"].get("skipped").is_none(), "{playlist:#}");
    h.wait_until(&forced, "completed", |job| job["state"] == "completed").await;
}
