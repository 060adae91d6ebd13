//! The Surge compatibility dialect (seed 001, dialects.md section 2) end to end: a real engine on SQLite, a real
//! origin, the router on 127.0.0.1:0, driven with reqwest the way a Surge client drives Surge.

use std::time::Duration;

mod common;

use common::Harness;
use haul_test_support::OriginOptions;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "surge-token-0123456789";

impl Harness {
    /// A call expecting Surge's plain-text error.
    async fn text(&self, request: reqwest::RequestBuilder) -> (StatusCode, String) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{status}: {content_type}");
        (status, response.text().await.unwrap())
    }

    async fn add(&self, body: Value) -> String {
        let (status, answer) = self.call(Method::POST, "/download", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        assert_eq!(answer, json!({"status": "queued", "message": "Download queued successfully", "id": id}));
        id
    }

    async fn wait_for(&self, id: &str, status: &str) -> Value {
        for _ in 0..600 {
            let (code, job) = self.call(Method::GET, &format!("/download?id={id}"), None).await;
            assert_eq!(code, StatusCode::OK, "{job}");
            if job["status"] == status {
                return job;
            }
            assert_ne!(job["status"], "error", "download failed while waiting for {status}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("download {id} never reached {status}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_completes_and_is_listed_in_surge_and_native_shapes() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 2 * 1024 * 1024 + 5;
    let url = server.origin.url(size, "data.bin");
    let id = server.add(json!({"url": url, "path": "music", "skip_approval": true})).await;
    let job = server.wait_for(&id, "completed").await;

    // The status object, field by field.
    let dest = server.downloads_dir.join("music").join("data.bin");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["url"], url.as_str());
    assert_eq!(job["filename"], "data.bin");
    assert_eq!(job["dest_path"], dest.display().to_string());
    assert_eq!(job["total_size"], size);
    assert_eq!(job["downloaded"], size);
    assert_eq!(job["progress"], 100.0);
    assert_eq!(job["speed"], 0.0);
    assert_eq!(job["status"], "completed");
    assert!(job.get("error").is_none(), "{job}");
    assert_eq!(job["eta"], 0);
    assert_eq!(job["connections"], 0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let added_at = job["added_at"].as_i64().unwrap();
    assert!((now - 60..=now).contains(&added_at), "added_at is unix seconds: {job}");
    let time_taken = job["time_taken"].as_i64().unwrap();
    assert!((0..60_000).contains(&time_taken), "{job}");
    if time_taken > 0 {
        assert_eq!(job["avg_speed"], size * 1000 / time_taken as u64);
    }

    // Byte-exact on disk.
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "data.bin"));

    // /list and /history contain it.
    let (status, list) = server.call(Method::GET, "/list", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0], job);
    let (status, history) = server.call(Method::GET, "/history", None).await;
    assert_eq!(status, StatusCode::OK);
    let entry = &history[0];
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!((entry["id"].as_str(), entry["status"].as_str()), (Some(id.as_str()), Some("completed")));
    assert_eq!((entry["total_size"].as_u64(), entry["downloaded"].as_u64()), (Some(size), Some(size)));
    assert_eq!(entry["dest_path"], job["dest_path"]);
    assert!(entry["completed_at"].as_i64().unwrap() >= added_at, "{entry}");

    // The same job through the native API.
    let (status, native) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!((native["state"].as_str(), native["bytes_done"].as_u64()), (Some("completed"), Some(size)));

    // /health as Surge clients read it: the listening port.
    let (status, health) = server.call(Method::GET, "/health", None).await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok", "port": port})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_update_url_on_a_throttled_origin() {
    let server =
        Harness::start(TOKEN, OriginOptions { per_connection_rate: Some(256 * 1024), ..Default::default() }).await;
    let size = 4 * 1024 * 1024;
    let id = server.add(json!({"url": server.origin.url(size, "slow.bin")})).await;
    server.wait_for(&id, "downloading").await;

    // The URL cannot change under a running fetch.
    let (status, text) = server
        .text(server.request(Method::PUT, &format!("/update-url?id={id}")).json(&json!({"url": "http://x/y"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");

    let (status, body) = server.call(Method::POST, &format!("/pause?id={id}"), None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "paused", "id": id})));
    let job = server.wait_for(&id, "paused").await;
    assert_eq!((job["speed"].as_f64(), job["connections"].as_u64()), (Some(0.0), Some(0)));
    let progress = job["progress"].as_f64().unwrap();
    assert!((0.0..100.0).contains(&progress), "{job}");

    // While paused the URL may change (same bytes, another query string).
    let new_url = server.origin.url(size, "slow.bin") + "?mirror=1";
    let (status, body) = server.call(Method::PUT, &format!("/update-url?id={id}"), Some(json!({"url": new_url}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "updated", "id": id, "url": new_url})));

    let (status, body) = server.call(Method::POST, &format!("/resume?id={id}"), None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "resumed", "id": id})));
    let job = server.wait_for(&id, "completed").await;
    assert_eq!(job["url"], new_url.as_str());
    let bytes = std::fs::read(server.downloads_dir.join("slow.bin")).unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "slow.bin"));

    // Resuming a completed download is refused in plain text.
    let (status, text) = server.text(server.request(Method::POST, &format!("/resume?id={id}"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(text.contains("completed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_delete_and_post_forgets_the_job_and_keeps_the_file() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    for (method, name) in [(Method::DELETE, "one.bin"), (Method::POST, "two.bin")] {
        let size = 64 * 1024 + 3;
        let id = server.add(json!({"url": server.origin.url(size, name)})).await;
        server.wait_for(&id, "completed").await;

        let response = server.request(method.clone(), &format!("/delete?id={id}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "deleted", "id": id}), "{method}");

        // The file stays; the job is gone from every API.
        let bytes = std::fs::read(server.downloads_dir.join(name)).unwrap();
        assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, name));
        let (status, text) = server.text(server.request(Method::GET, &format!("/download?id={id}"))).await;
        assert_eq!((status, text.as_str()), (StatusCode::NOT_FOUND, "Download not found"));
        let (status, text) = server.text(server.request(method.clone(), &format!("/delete?id={id}"))).await;
        assert_eq!((status, text.as_str()), (StatusCode::NOT_FOUND, "Download not found"));
        let (status, _) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, list) = server.call(Method::GET, "/list", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_plain_text_in_surge_shape() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;

    // 401 without a token, with a wrong one, and with another scheme.
    let url = format!("{}/list", server.base);
    for request in [
        server.client.get(&url),
        server.client.get(&url).bearer_auth("wrong"),
        server.client.get(&url).basic_auth("user", Some(TOKEN)),
        server.client.post(format!("{}/download", server.base)).json(&json!({"url": "http://x/y"})),
    ] {
        let (status, text) = server.text(request).await;
        assert_eq!((status, text.as_str()), (StatusCode::UNAUTHORIZED, "Unauthorized"));
    }

    // 400 for a missing or empty id, on every endpoint that takes one.
    for (method, path) in [
        (Method::GET, "/download"),
        (Method::POST, "/pause"),
        (Method::POST, "/resume"),
        (Method::DELETE, "/delete?id="),
        (Method::POST, "/delete"),
        (Method::PUT, "/update-url"),
    ] {
        let (status, text) =
            server.text(server.request(method.clone(), path).json(&json!({"url": "http://x/y"}))).await;
        assert_eq!((status, text.as_str()), (StatusCode::BAD_REQUEST, "Missing id parameter"), "{method} {path}");
    }

    // 404 for an unknown id, well-formed or not.
    for id in ["550e8400-e29b-41d4-a716-446655440000", "nope"] {
        let (status, text) = server.text(server.request(Method::POST, &format!("/pause?id={id}"))).await;
        assert_eq!((status, text.as_str()), (StatusCode::NOT_FOUND, "Download not found"));
    }

    // 405 for a wrong method, in plain text (the native routes keep their JSON shape).
    for (method, path) in
        [(Method::GET, "/delete"), (Method::GET, "/pause"), (Method::POST, "/list"), (Method::PUT, "/download")]
    {
        let (status, text) = server.text(server.request(method.clone(), path)).await;
        assert_eq!((status, text.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"), "{method} {path}");
    }
    let (status, body) = server.call(Method::PUT, "/v1/downloads", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));

    // 400 for a bad body and for a path leaving the downloads directory.
    for body in [
        json!({"nourl": 1}),
        json!({"url": server.origin.url(10, "a"), "path": "/etc"}),
        json!({"url": server.origin.url(10, "a"), "path": "x/../../.."}),
    ] {
        let (status, text) = server.text(server.request(Method::POST, "/download").json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
    }
    let (status, _) = server.text(server.request(Method::POST, "/download").body("not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = server.call(Method::GET, "/list", None).await;
    assert_eq!(list, json!([]), "nothing was queued by the refused requests");
}

/// Reads server-sent events as (event, data, id) until `stop` matches one.
async fn read_events(
    mut response: reqwest::Response,
    stop: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value, u64)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("timed out").unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = String::new();
            let mut data = Value::Null;
            let mut id = 0;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().unwrap();
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = serde_json::from_str(value.trim()).unwrap();
                }
            }
            if kind.is_empty() {
                continue;
            }
            assert!(id > 0, "every Surge event carries an id: {block}");
            let done = stop(&kind, &data);
            events.push((kind, data, id));
            if done {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_status_objects_with_surge_kinds() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let (status, text) = server.text(server.client.get(format!("{}/events", server.base))).await;
    assert_eq!((status, text.as_str()), (StatusCode::UNAUTHORIZED, "Unauthorized"));
    let response = server.request(Method::GET, "/events").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));

    let id = server.add(json!({"url": server.origin.url(128 * 1024, "ev.bin")})).await;
    let events = read_events(response, |kind, _| kind == "complete").await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _, _)| kind.as_str()).filter(|kind| *kind != "progress").collect();
    assert_eq!(kinds, ["queued", "started", "complete"], "{events:?}");
    assert!(events.iter().all(|(_, data, _)| data["id"] == id.as_str()), "{events:?}");
    let (_, last, _) = events.last().unwrap();
    assert_eq!((last["status"].as_str(), last["progress"].as_f64()), (Some("completed"), Some(100.0)));

    // A client that reconnects with Last-Event-ID gets what came after it, then live events.
    let after_queued = events[0].2;
    let response = server.request(Method::GET, "/events").header("Last-Event-ID", after_queued).send().await.unwrap();
    let replayed = read_events(response, |kind, _| kind == "complete").await;
    let expected: Vec<_> = events[1..].iter().map(|(kind, _, id)| (kind.clone(), *id)).collect();
    let got: Vec<_> = replayed.iter().map(|(kind, _, id)| (kind.clone(), *id)).collect();
    assert_eq!(got, expected);
}
