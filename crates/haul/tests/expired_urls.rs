//! Media whose stream URLs expire, end to end: a real `haul serve`, real yt-dlp on a `MediaSite` page whose clip
//! URLs carry a token that is new at every reading and runs out after a number of bytes (the connection cut
//! there, later requests answered 403), or that run out while the job is paused. The job reads the page again
//! for a fresh URL and continues from the bytes it has, so it completes with the file whole and next to nothing
//! fetched twice.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::media::CLIP_720;
use haul_test_support::{MediaOptions, MediaSite};
use reqwest::Method;
use serde_json::json;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stream_url_is_read_again_and_the_download_continues() {
    const BUDGET: u64 = 100_000;
    let options = MediaOptions {
        clip_seconds: 6,
        // Paced, so that each response goes out in small chunks and is cut close to the budget.
        rate: Some(1_000_000),
        expire_after: Some(BUDGET),
        ..MediaOptions::default()
    };
    let site = MediaSite::start_with(options).await.unwrap();
    let size = site.bytes(CLIP_720).unwrap().len() as u64;
    assert!(size > 3 * BUDGET, "the clip ({size} bytes) outlasts several URLs");
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::serve_command(dir.path(), &[]).stderr(Stdio::null()).spawn().unwrap();
    let base = common::listening(&mut child);
    let _server = Server(child);
    let token = common::token_of(dir.path());

    let page = site.muxed("Signed");
    let (status, download) = common::call(
        &base,
        &token,
        Method::POST,
        "/v1/downloads",
        Some(json!({ "url": page, "quality": "720p", "embed_metadata": false })),
    )
    .await;
    assert_eq!(status, 201, "{download}");
    let id = download["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let (_, download) = common::call(&base, &token, Method::GET, &format!("/v1/downloads/{id}"), None).await;
        match download["state"].as_str() {
            Some("completed" | "failed" | "cancelled") => break download,
            _ if Instant::now() > deadline => panic!(
                "the download did not end: {download}; {:?}, {} expired, {} tokens",
                site.all_stats(),
                site.expired_answers(),
                site.tokens_issued()
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(done["state"], "completed", "{done}");

    // The file is the clip, byte for byte.
    let path = dir.path().join("downloads").join(done["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), site.bytes(CLIP_720).unwrap().to_vec());
    // Several URLs were needed (the page was read once per URL), and each ran out.
    let readings = site.tokens_issued();
    assert!(readings > size / BUDGET, "{readings} readings for {size} bytes at {BUDGET} per URL");
    assert!(site.expired_answers() >= 1, "an expired URL was refused");
    // Nothing fetched twice beyond a small margin: what each cut left in flight (a paced chunk, 10 KB, each).
    let sent = site.stats(CLIP_720).bytes_sent;
    let margin = readings * 16 * 1024;
    assert!(sent >= size && sent <= size + margin, "{sent} bytes sent for a {size}-byte clip over {readings} URLs");
    eprintln!("{sent} bytes sent for a {size}-byte clip over {readings} readings, {} refused", site.expired_answers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_expired_during_a_pause_is_renewed_on_resume() {
    let options = MediaOptions {
        clip_seconds: 6,
        rate: Some(100_000),
        // Never run out by bytes here: the URLs expire while the job is paused.
        expire_after: Some(u64::MAX),
        ..MediaOptions::default()
    };
    let site = MediaSite::start_with(options).await.unwrap();
    let size = site.bytes(CLIP_720).unwrap().len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::serve_command(dir.path(), &[]).stderr(Stdio::null()).spawn().unwrap();
    let base = common::listening(&mut child);
    let _server = Server(child);
    let token = common::token_of(dir.path());
    let call = |method: Method, path: String, body: Option<serde_json::Value>| {
        let (base, token) = (base.clone(), token.clone());
        async move { common::call(&base, &token, method, &path, body).await }
    };

    let page = site.muxed("Paused");
    let (status, download) = call(
        Method::POST,
        "/v1/downloads".into(),
        Some(json!({ "url": page, "quality": "720p", "embed_metadata": false })),
    )
    .await;
    assert_eq!(status, 201, "{download}");
    let id = download["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while site.stats(CLIP_720).bytes_sent < 50_000 {
        assert!(Instant::now() < deadline, "the clip never started: {:?}", site.all_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, paused) = call(Method::POST, format!("/v1/downloads/{id}/pause"), None).await;
    assert_eq!(status, 200, "{paused}");
    let kept = paused["bytes_done"].as_u64().unwrap();
    assert!(kept > 0 && kept < size, "{paused}");
    site.expire_tokens();
    site.set_rate(None);
    // Each request for the page (haul's look at it too) hands out a token.
    let issued = site.tokens_issued();

    let (status, _) = call(Method::POST, format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, 200);
    let done = loop {
        let (_, download) = call(Method::GET, format!("/v1/downloads/{id}"), None).await;
        match download["state"].as_str() {
            Some("completed" | "failed" | "cancelled") => break download,
            _ if Instant::now() > deadline => panic!("the download did not end: {download}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(done["state"], "completed", "{done}");
    let path = dir.path().join("downloads").join(done["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), site.bytes(CLIP_720).unwrap().to_vec());
    // The kept reading's URL was refused once, the page read once more, and the bytes before the pause kept.
    assert_eq!(site.tokens_issued(), issued + 1, "the page read once more, after the refusal");
    assert!(site.expired_answers() >= 1);
    let sent = site.stats(CLIP_720).bytes_sent;
    assert!(sent <= size + 64 * 1024, "{sent} bytes sent for a {size}-byte clip ({kept} kept over the pause)");
}
