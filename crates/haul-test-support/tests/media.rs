// The media site against the real tools: ffprobe on the generated clips, `yt-dlp -J` on every
// page kind (asserting what haul relies on), and the HTTP behaviour of the file server.

use std::time::{Duration, Instant};

use haul_test_support::media::{
    AUDIO, CLIP_360, CLIP_720, HLS_MASTER, HLS_MEDIA, MPD, THUMBNAIL, VIDEO_360, VIDEO_720,
};
use haul_test_support::{MediaOptions, MediaSite, PathStats, codec_types, ffprobe, missing_tools};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use serde_json::Value;

const HOSTILE: &str = r#"Clip/../"quoted" <b>bold</b> & 'amp' 🎬 ..\end"#;

async fn site() -> MediaSite {
    site_with(MediaOptions::default()).await
}

async fn site_with(options: MediaOptions) -> MediaSite {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media fixture needs {} on PATH", missing.join(", "));
    MediaSite::start_with(options).await.expect("media site starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// `yt-dlp -J` as haul runs it: the JSON on success, stderr on failure.
async fn yt_dlp(url: &str) -> Result<Value, String> {
    let out = tokio::process::Command::new("yt-dlp")
        .args(["-J", "--no-warnings", "--ignore-config", "--no-cache-dir", "--proxy", "", url])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("running yt-dlp");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("yt-dlp prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn info(url: &str) -> Value {
    yt_dlp(url).await.unwrap_or_else(|e| panic!("yt-dlp -J {url} failed: {e}"))
}

fn assert_title(info: &Value, title: &str) {
    let got = info["title"].as_str().expect("title");
    assert!(got == title || got.starts_with(&format!("{title} (")), "title {got:?}, expected {title:?}");
}

fn format<'a>(info: &'a Value, id: &str) -> &'a Value {
    let formats = info["formats"].as_array().expect("formats");
    formats.iter().find(|f| f["format_id"] == id).unwrap_or_else(|| panic!("no format {id} in {formats:#?}"))
}

fn format_ids(info: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> =
        info["formats"].as_array().expect("formats").iter().filter_map(|f| f["format_id"].as_str()).collect();
    ids.sort_unstable();
    ids
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    let streams = probe["streams"].as_array().expect("streams");
    streams.iter().find(|s| s["codec_type"] == kind).unwrap_or_else(|| panic!("no {kind} stream in {probe:#}"))
}

fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"].as_str().expect("duration").parse().expect("numeric duration")
}

#[tokio::test]
async fn generated_clips_have_the_expected_streams() {
    let site = site().await;
    for (name, types, size) in [
        (CLIP_720, &["video", "audio"][..], Some((1280, 720))),
        (CLIP_360, &["video", "audio"], Some((640, 360))),
        (VIDEO_720, &["video"], Some((1280, 720))),
        (VIDEO_360, &["video"], Some((640, 360))),
        (AUDIO, &["audio"], None),
    ] {
        let path = site.path(name);
        assert_eq!(codec_types(&path), types, "{name}");
        let probe = ffprobe(&path);
        assert!((duration(&probe) - 2.0).abs() < 0.2, "{name} lasts {}", duration(&probe));
        if let Some((w, h)) = size {
            let video = stream(&probe, "video");
            assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(w), Some(h)), "{name}");
            assert_eq!(video["codec_name"], "h264");
        }
        if types.contains(&"audio") {
            assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
        }
        assert_eq!(site.bytes(name).expect("served").len() as u64, std::fs::metadata(&path).unwrap().len());
    }
    let thumb = ffprobe(site.path(THUMBNAIL));
    assert_eq!(stream(&thumb, "video")["width"], 320);
    assert_eq!(stream(&thumb, "video")["height"], 180);
    assert_eq!(codec_types(site.path(HLS_MEDIA)), ["video", "audio"]);
}

#[tokio::test]
async fn muxed_page_has_two_direct_muxed_formats() {
    let site = site().await;
    let url = site.muxed(HOSTILE);
    assert_eq!(url, format!("{}/watch/muxed-1", site.base_url()));
    let info = info(&url).await;
    assert_eq!(info["extractor"], "html5");
    assert_title(&info, HOSTILE);
    assert_eq!(info["thumbnail"], site.clip_url(THUMBNAIL));
    assert_eq!(format_ids(&info), ["360p", "720p"]);
    for (id, name, height) in [("720p", CLIP_720, 720), ("360p", CLIP_360, 360)] {
        let f = format(&info, id);
        assert_eq!(f["protocol"], "http", "{id}");
        assert_eq!(f["height"], height, "{id}");
        assert_eq!(f["url"], site.clip_url(name), "{id}");
        assert!(f["http_headers"].is_object(), "{id} has http_headers");
    }
    // yt-dlp read the page, not the clips.
    // (yt-dlp's generic extractor fetches the page twice.)
    assert!(site.requests(&url) >= 1);
    assert_eq!(info["id"], url.rsplit_once('/').unwrap().1.to_owned() + "-1");
    assert_eq!(site.requests(CLIP_720), 0);

    // Several titles coexist on one site.
    let other = info_title(&site.muxed("Second clip")).await;
    assert!(other.starts_with("Second clip"), "{other}");
}

async fn info_title(url: &str) -> String {
    info(url).await["title"].as_str().expect("title").to_owned()
}

#[tokio::test]
async fn dash_page_has_separate_video_and_audio_streams() {
    let site = site().await;
    let info = info(&site.dash(HOSTILE)).await;
    assert_title(&info, HOSTILE);
    assert_eq!(info["thumbnail"], site.clip_url(THUMBNAIL));
    assert_eq!(format_ids(&info), ["a1", "v360", "v720"]);
    for (id, name, height) in [("v720", VIDEO_720, 720), ("v360", VIDEO_360, 360)] {
        let f = format(&info, id);
        assert_eq!(f["protocol"], "http", "{id}");
        assert_eq!(f["height"], height, "{id}");
        assert!(f["vcodec"].as_str().unwrap().starts_with("avc1"), "{id}: {}", f["vcodec"]);
        assert_eq!(f["acodec"], "none", "{id}");
        assert_eq!(f["url"], site.clip_url(name), "{id}");
    }
    let audio = format(&info, "a1");
    assert_eq!(audio["protocol"], "http");
    assert_eq!(audio["vcodec"], "none");
    assert!(audio["acodec"].as_str().unwrap().starts_with("mp4a"), "{}", audio["acodec"]);
    assert_eq!(audio["url"], site.clip_url(AUDIO));
    assert_eq!(site.requests(MPD), 1);
}

#[tokio::test]
async fn no_thumbnail_page_has_formats_but_no_thumbnail() {
    let site = site().await;
    let info = info(&site.no_thumbnail(HOSTILE)).await;
    assert_title(&info, HOSTILE);
    assert!(info["thumbnail"].is_null(), "thumbnail {}", info["thumbnail"]);
    assert!(info["thumbnails"].as_array().is_none_or(Vec::is_empty), "thumbnails {}", info["thumbnails"]);
    assert_eq!(format_ids(&info), ["360p", "720p"]);
}

#[tokio::test]
async fn hls_page_has_an_m3u8_native_format() {
    let site = site().await;
    let info = info(&site.hls(HOSTILE)).await;
    assert_title(&info, HOSTILE);
    assert_eq!(info["thumbnail"], site.clip_url(THUMBNAIL));
    let formats = info["formats"].as_array().unwrap();
    assert_eq!(formats.len(), 1, "{formats:#?}");
    assert_eq!(formats[0]["protocol"], "m3u8_native");
    assert_eq!(formats[0]["height"], 360);
    assert_eq!(formats[0]["url"], site.clip_url(HLS_MEDIA));
    assert_eq!(site.requests(HLS_MASTER), 1);
}

#[tokio::test]
async fn plain_html_page_is_unsupported() {
    let site = site().await;
    let url = site.plain_html();
    let err = yt_dlp(&url).await.expect_err("yt-dlp must not extract a plain page");
    assert!(err.contains("Unsupported URL"), "{err}");
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(resp.text().await.unwrap().contains("No media here"));
}

#[tokio::test]
async fn files_support_single_ranges() {
    let site = site().await;
    let url = site.clip_url(CLIP_720);
    let full = site.bytes(CLIP_720).unwrap();
    let size = full.len();

    let head = client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_TYPE], "video/mp4");
    assert_eq!(head.headers()[ACCEPT_RANGES], "bytes");
    assert_eq!(head.headers()[CONTENT_LENGTH], size.to_string().as_str());
    let etag = head.headers()[ETAG].to_str().unwrap().to_owned();

    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), full);

    let resp = client().get(&url).header(RANGE, "bytes=1000-1999").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()[CONTENT_RANGE], format!("bytes 1000-1999/{size}").as_str());
    assert_eq!(resp.headers()[CONTENT_LENGTH], "1000");
    assert_eq!(resp.bytes().await.unwrap(), full.slice(1000..2000));

    let resp = client().get(&url).header(RANGE, "bytes=-100").header(IF_RANGE, &etag).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), full.slice(size - 100..));

    // A stale If-Range gets the whole file; a range past the end gets 416.
    let resp = client().get(&url).header(RANGE, "bytes=0-9").header(IF_RANGE, "\"stale\"").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), size);
    let resp = client().get(&url).header(RANGE, format!("bytes={size}-")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()[CONTENT_RANGE], format!("bytes */{size}").as_str());

    for (name, ty) in [
        (AUDIO, "audio/mp4"),
        (THUMBNAIL, "image/jpeg"),
        (MPD, "application/dash+xml"),
        (HLS_MASTER, "application/vnd.apple.mpegurl"),
        ("hls/index0.ts", "video/mp2t"),
    ] {
        let resp = client().get(site.clip_url(name)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(resp.headers()[CONTENT_TYPE], ty, "{name}");
    }
    let resp = client().get(site.clip_url("missing.mp4")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let expected_bytes = (2 * size + 1000 + 100) as u64;
    assert_eq!(
        site.stats(CLIP_720),
        PathStats { requests: 6, head_requests: 1, range_requests: 2, bytes_sent: expected_bytes }
    );
    assert_eq!(site.stats(&format!("/{CLIP_720}")), site.stats(CLIP_720));
    assert_eq!(site.requests("missing.mp4"), 1);
    site.reset_stats();
    assert_eq!(site.stats(CLIP_720), PathStats::default());
}

#[tokio::test]
async fn rate_limit_slows_bodies_until_lifted() {
    let site = site_with(MediaOptions { rate: Some(50_000), clip_seconds: 3, ..MediaOptions::default() }).await;
    assert!((duration(&ffprobe(site.path(CLIP_720))) - 3.0).abs() < 0.2);
    let url = site.clip_url(CLIP_720);
    let size = site.bytes(CLIP_720).unwrap().len() as u64;
    assert!(size > 100_000, "{size} bytes is too small to observe pacing");

    // 100 kB at 50 kB/s: about 2 s.
    let started = Instant::now();
    let resp = client().get(&url).header(RANGE, "bytes=0-99999").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 100_000);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_500), "took {took:?}");

    // Mid-way through a slow body, lifting the limit lets it finish at once.
    let mut resp = client().get(&url).send().await.unwrap();
    let mut got = resp.chunk().await.unwrap().unwrap().len() as u64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(site.stats(CLIP_720).bytes_sent < size, "still in progress");
    site.set_rate(None);
    let started = Instant::now();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, size);
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

    // Dropping the site stops it.
    let page = site.muxed("x");
    drop(site);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client().get(&page).send().await.is_err(), "site still answers after drop");
}

#[tokio::test]
async fn codecs_page_has_each_codec_and_subtitle_tracks() {
    use haul_test_support::media::{AUDIO_OPUS, SUBS_DE, SUBS_EN, VIDEO_AV1, VIDEO_VP9};
    let site = site_with(MediaOptions { extras: true, ..MediaOptions::default() }).await;
    for (name, codec, height) in
        [(VIDEO_VP9, "vp9", Some(360)), (VIDEO_AV1, "av1", Some(360)), (AUDIO_OPUS, "opus", None)]
    {
        let probe = ffprobe(site.path(name));
        let kind = if height.is_some() { "video" } else { "audio" };
        assert_eq!(stream(&probe, kind)["codec_name"], codec, "{name}: {probe:#}");
        assert_eq!(codec_types(site.path(name)), [kind], "{name}: one stream");
    }
    let info = info(&site.codecs("Codecs")).await;
    assert_title(&info, "Codecs");
    assert_eq!(format_ids(&info), ["a-opus", "a1", "av1-360", "h264-360", "h264-720", "vp9-360"]);
    for (id, ext, vcodec, acodec) in [
        ("vp9-360", "webm", "vp9", "none"),
        ("av1-360", "mp4", "av01.0.04M.08", "none"),
        ("h264-720", "mp4", "avc1.64001f", "none"),
        ("a-opus", "webm", "none", "opus"),
        ("a1", "m4a", "none", "mp4a.40.2"),
    ] {
        let format = format(&info, id);
        assert_eq!(
            (&format["ext"], &format["vcodec"], &format["acodec"]),
            (&ext.into(), &vcodec.into(), &acodec.into())
        );
        assert_eq!(format["protocol"], "http", "{id}: a direct URL haul's engine fetches");
    }
    let subtitles = &info["subtitles"];
    for (lang, file) in [("en", SUBS_EN), ("de", SUBS_DE)] {
        assert_eq!(subtitles[lang][0]["url"], site.clip_url(file), "{lang}: {subtitles:#}");
        assert_eq!(subtitles[lang][0]["ext"], "vtt");
    }
    let hostile = info_hostile(&site).await;
    assert!(hostile.contains(&"../../x".to_owned()), "{hostile:?}");
    assert!(hostile.iter().any(|lang| lang.contains('\\') && lang.chars().any(char::is_control)), "{hostile:?}");
}

/// The languages yt-dlp reads off the hostile-subs page, as it gives them.
async fn info_hostile(site: &MediaSite) -> Vec<String> {
    let info = info(&site.hostile_subs("Hostile")).await;
    info["subtitles"].as_object().expect("subtitles").keys().cloned().collect()
}

#[tokio::test]
async fn chapters_page_has_chapters_uploader_and_date() {
    let site = site().await;
    let info = info(&site.chapters("A talk")).await;
    assert_eq!(info["title"], "A talk");
    assert_eq!((&info["uploader"], &info["upload_date"]), (&"Ada Lovelace".into(), &"20261130".into()));
    assert_eq!(info["thumbnail"], site.clip_url(THUMBNAIL));
    let chapters: Vec<(&str, f64, f64)> = info["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| (c["title"].as_str().unwrap(), c["start_time"].as_f64().unwrap(), c["end_time"].as_f64().unwrap()))
        .collect();
    assert_eq!(chapters, [("Intro", 0.0, 1.0), ("Main", 1.0, 2.0)]);
    assert_eq!(info["formats"][0]["url"], site.clip_url(CLIP_360));
}

/// Signed URLs that expire: each reading of a page hands out a new token; a token's responses are cut once it
/// has sent `expire_after` bytes, and its later requests are answered 403, while a new token is served afresh.
#[tokio::test]
async fn signed_clip_urls_expire_after_their_bytes() {
    let site =
        site_with(MediaOptions { expire_after: Some(100_000), rate: Some(2_000_000), ..MediaOptions::default() }).await;
    let page = site.muxed("Signed");
    let client = reqwest::Client::new();
    let token_of = |html: &str| {
        let at = html.find("clip720.mp4?token=").unwrap() + "clip720.mp4?token=".len();
        html[at..].split('"').next().unwrap().to_owned()
    };
    let first = token_of(&client.get(&page).send().await.unwrap().text().await.unwrap());
    let second = token_of(&client.get(&page).send().await.unwrap().text().await.unwrap());
    assert_ne!(first, second, "a new token at each reading");
    assert_eq!(site.tokens_issued(), 2);

    let url = |token: &str| format!("{}?token={token}", site.clip_url(CLIP_720));
    let mut response = client.get(url(&first)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        received += chunk.len() as u64;
    }
    assert!((100_000..150_000).contains(&received), "cut near the budget: {received} bytes");
    let refused = client.get(url(&first)).header(RANGE, format!("bytes={received}-")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(site.expired_answers(), 1);

    let rest = client.get(url(&second)).header(RANGE, format!("bytes={received}-")).send().await.unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    let rest = rest.bytes().await.unwrap_or_default();
    assert_eq!(rest.len(), site.bytes(CLIP_720).unwrap().len() - received as usize, "the new token serves the rest");
    assert_eq!(&rest[..], &site.bytes(CLIP_720).unwrap()[received as usize..received as usize + rest.len()]);
}
