//! The foreign APIs' media mappings on real media: the yt-dlp web app's `quality` and `download_type`, and
//! Cloudflare Stream's `default` (mp4) and `audio` (m4a) downloads, against pages of generated clips that the
//! real yt-dlp reads and the real ffmpeg finishes.

use std::time::Duration;

mod common;

use common::Harness;
use haul_test_support::{MediaSite, OriginOptions, codec_types, media, missing_tools};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const TOKEN: &str = "dialect-media-token-0123456789";

async fn started() -> (Harness, MediaSite) {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media tests need {} on PATH (./test.sh installs them)", missing.join(", "));
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let site = MediaSite::start().await.unwrap();
    (server, site)
}

/// Polls `path` until `done` says so, failing on `failed`.
async fn poll(server: &Harness, path: &str, done: impl Fn(&Value) -> bool, failed: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..800 {
        let (status, body) = server.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(!failed(&body), "{path} failed: {body}");
        tokio::time::sleep(Duration::from_millis(75)).await;
    }
    panic!("{path} never finished");
}

/// Saves `bytes` to a temp file and answers the stream types ffprobe finds in it.
fn streams_of(bytes: &[u8]) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    codec_types(file.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ytdlp_app_quality_and_download_type_pick_the_media() {
    let (server, site) = started().await;
    let page = site.muxed("Concert");
    let (status, info) = server.call(Method::POST, "/api/info", Some(json!({"url": page}))).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert!(info["title"].as_str().unwrap().starts_with("Concert"), "{info}");
    assert_eq!(info["thumbnail"], site.clip_url(media::THUMBNAIL).as_str(), "{info}");
    let heights: Vec<u64> = info["formats"].as_array().unwrap().iter().filter_map(|f| f["height"].as_u64()).collect();
    assert!(heights.contains(&720) && heights.contains(&360), "{info}");

    let add = |body: Value| {
        let server = &server;
        async move {
            let (status, answer) = server.call(Method::POST, "/api/download", Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["download_id"].as_str().unwrap().to_owned()
        }
    };
    let video = add(json!({"url": page, "quality": "360p"})).await;
    let audio = add(json!({"url": site.dash("Concert audio"), "download_type": "audio"})).await;
    let tasks = poll(
        &server,
        "/api/downloads",
        |tasks| tasks.as_array().unwrap().iter().all(|task| task["status"] == "completed"),
        |tasks| tasks.as_array().unwrap().iter().any(|task| task["status"] == "error"),
    )
    .await;
    let task = |id: &str| tasks.as_array().unwrap().iter().find(|task| task["id"] == id).unwrap().clone();

    let video_task = task(&video);
    assert!(video_task["title"].as_str().unwrap().starts_with("Concert"), "{video_task}");
    assert_eq!((video_task["quality"].as_str(), video_task["download_type"].as_str()), (Some("360p"), Some("video")));
    assert_eq!(video_task["thumbnail"], format!("/api/thumbnails/{video}").as_str(), "{video_task}");
    let filename = video_task["filename"].as_str().unwrap();
    assert!(filename.ends_with(&format!("__{video}.mp4")), "{filename}");
    let response = server.request(Method::GET, &format!("/api/download/{video}/file")).send().await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "video/mp4");
    let disposition = response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert!(disposition.contains("Concert") && !disposition.contains(&video), "the title, not the id: {disposition}");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..], &site.bytes(media::CLIP_360).unwrap()[..], "360p is the 360p clip");
    let thumbnail = server.request(Method::GET, &format!("/api/thumbnails/{video}")).send().await.unwrap();
    assert_eq!(thumbnail.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(&thumbnail.bytes().await.unwrap()[..], &site.bytes(media::THUMBNAIL).unwrap()[..]);

    let audio_task = task(&audio);
    assert_eq!(audio_task["download_type"], "audio", "{audio_task}");
    assert!(audio_task["filename"].as_str().unwrap().ends_with(".m4a"), "{audio_task}");
    let response = server.request(Method::GET, &format!("/api/download/{audio}/file")).send().await.unwrap();
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("audio/"), "{content_type}");
    assert_eq!(streams_of(&response.bytes().await.unwrap()), ["audio"]);

    // Seed 000 on a media task: the file and the thumbnail go.
    let thumbnail_file = server.server.thumbnails_dir().join(format!("{video}.jpg"));
    assert!(thumbnail_file.is_file());
    let (status, answer) = server.call(Method::DELETE, &format!("/api/downloads/{video}/remove"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Descarga eliminada"})));
    assert!(!thumbnail_file.exists() && !server.downloads_dir.join(filename).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_default_and_audio_downloads_of_a_video() {
    let (server, site) = started().await;
    let stream = format!("/client/v4/accounts/{}/stream", server.account);
    let (status, copied) =
        server.call(Method::POST, &format!("{stream}/copy"), Some(json!({"url": site.dash("Keynote")}))).await;
    assert_eq!(status, StatusCode::OK, "{copied}");
    let uid = copied["result"]["uid"].as_str().unwrap().to_owned();
    let video = poll(
        &server,
        &format!("{stream}/{uid}"),
        |body| body["result"]["readyToStream"] == true,
        |body| body["result"]["status"]["state"] == "error",
    )
    .await;
    let video = &video["result"];
    assert!(video["meta"]["name"].as_str().unwrap().starts_with("Keynote"), "{video}");
    assert_eq!((video["input"]["width"].as_i64(), video["input"]["height"].as_i64()), (Some(1280), Some(720)));
    assert!((video["duration"].as_f64().unwrap() - 2.0).abs() < 0.5, "{video}");
    let thumbnail = reqwest::get(video["thumbnail"].as_str().unwrap()).await.unwrap();
    assert_eq!(thumbnail.status(), StatusCode::OK, "a signed link to the thumbnail: {video}");
    assert_eq!(&thumbnail.bytes().await.unwrap()[..], &site.bytes(media::THUMBNAIL).unwrap()[..]);

    for kind in ["default", "audio"] {
        let (status, created) = server.call(Method::POST, &format!("{stream}/{uid}/downloads/{kind}"), None).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        assert!(created["result"][kind].is_object(), "{created}");
    }
    let downloads = poll(
        &server,
        &format!("{stream}/{uid}/downloads"),
        |body| ["default", "audio"].iter().all(|kind| body["result"][kind]["status"] == "ready"),
        |body| ["default", "audio"].iter().any(|kind| body["result"][kind]["status"] == "error"),
    )
    .await;
    let result = &downloads["result"];
    assert_eq!(result["audio"]["percentComplete"], 100.0, "{result}");
    // Each link works without credentials: the mp4 has both streams, the m4a only the sound.
    let fetch = |kind: &str| {
        let link = result[kind]["url"].as_str().unwrap().to_owned();
        async move {
            let response = reqwest::get(&link).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{link}");
            response.bytes().await.unwrap()
        }
    };
    assert_eq!(streams_of(&fetch("default").await), ["video", "audio"]);
    assert_eq!(streams_of(&fetch("audio").await), ["audio"]);
    let audio_files = || {
        std::fs::read_dir(&server.downloads_dir)
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().ends_with(".audio.m4a"))
            .count()
    };
    assert_eq!(audio_files(), 1);

    // Seed 003: both downloads go, the audio file with them; the video stays.
    let (status, answer) = server.call(Method::DELETE, &format!("{stream}/{uid}/downloads"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"errors": [], "messages": [], "success": true, "result": "ok"}));
    assert_eq!(audio_files(), 0, "the audio file is deleted with its download");
    let (_, downloads) = server.call(Method::GET, &format!("{stream}/{uid}/downloads"), None).await;
    assert_eq!(downloads["result"], json!({}));
    let (status, video) = server.call(Method::GET, &format!("{stream}/{uid}"), None).await;
    assert_eq!((status, video["result"]["readyToStream"].as_bool()), (StatusCode::OK, Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ytdlp_app_shows_processing_while_ffmpeg_merges() {
    let missing = missing_tools();
    assert!(missing.is_empty(), "the media tests need {} on PATH (./test.sh installs them)", missing.join(", "));
    // ffmpeg as found, except that merging first waits 2 s, so the merge step can be seen.
    let found = haul_engine::MediaTools::discover(None, None, std::env::var_os("PATH").as_deref()).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("ffmpeg");
    let real = found.ffmpeg.clone().unwrap();
    let script = format!("#!/bin/sh\ncase \"$*\" in *1:a:0*) sleep 2 ;; esac\nexec '{}' \"$@\"\n", real.display());
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tools = haul_engine::MediaTools { ffmpeg: Some(wrapper), ..found };
    let server = Harness::start_with_tools(TOKEN, OriginOptions::default(), tools).await;
    let site = MediaSite::start().await.unwrap();

    let (status, answer) = server.call(Method::POST, "/api/download", Some(json!({"url": site.dash("Merged")}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["download_id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    for _ in 0..400 {
        let (_, tasks) = server.call(Method::GET, "/api/downloads", None).await;
        let status = tasks[0]["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "completed" || status == "error" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains(&"processing".to_owned()), "the merge shows as processing: {seen:?} ({id})");
    assert_eq!(seen.last().map(String::as_str), Some("completed"), "{seen:?}");
    let after: Vec<&String> = seen.iter().skip_while(|s| *s != "processing").collect();
    assert_eq!(after, ["processing", "completed"], "processing comes last, before completed: {seen:?}");
}

/// The app's `/api/info` says a feed is a playlist, and its `/api/download` of one makes every entry a task of its
/// own, numbered against the playlist (`is_playlist`, `playlist_index`, `playlist_total`), each with its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ytdlp_app_downloads_a_playlist_as_one_task_per_entry() {
    let (server, site) = started().await;
    let pages = [site.muxed("Episode one"), site.no_thumbnail("Episode two")];
    let feed = site.feed("Podcast", &[("Episode one", &pages[0]), ("Episode two", &pages[1])]);
    let (status, info) = server.call(Method::POST, "/api/info", Some(json!({"url": feed}))).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["is_playlist"], true, "{info}");

    let (status, answer) =
        server.call(Method::POST, "/api/download", Some(json!({"url": feed, "quality": "360p"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let playlist = answer["download_id"].as_str().unwrap().to_owned();
    let tasks = poll(
        &server,
        "/api/downloads",
        |tasks| {
            let tasks = tasks.as_array().unwrap();
            tasks.len() == 3 && tasks.iter().all(|task| task["status"] == "completed")
        },
        |tasks| tasks.as_array().unwrap().iter().any(|task| task["status"] == "error"),
    )
    .await;
    let tasks = tasks.as_array().unwrap();
    let parent = tasks.iter().find(|task| task["id"] == playlist.as_str()).unwrap();
    assert_eq!(
        (&parent["is_playlist"], &parent["playlist_index"], &parent["playlist_total"], &parent["title"]),
        (&json!(true), &Value::Null, &json!(2), &json!("Podcast")),
        "{parent:#}"
    );
    let mut entries: Vec<&Value> = tasks.iter().filter(|task| task["id"] != playlist.as_str()).collect();
    entries.sort_by_key(|task| task["playlist_index"].as_u64());
    for (n, task) in entries.iter().enumerate() {
        assert_eq!(
            (&task["is_playlist"], &task["playlist_index"], &task["playlist_total"], &task["quality"]),
            (&json!(true), &json!(n + 1), &json!(2), &json!("360p")),
            "{task:#}"
        );
        let id = task["id"].as_str().unwrap();
        let response = server.request(Method::GET, &format!("/api/download/{id}/file")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&response.bytes().await.unwrap()[..], &site.bytes(media::CLIP_360).unwrap()[..]);
    }
    assert_eq!(entries[0]["title"], "Episode one");
}
