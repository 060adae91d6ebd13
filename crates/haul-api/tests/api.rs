//! End-to-end tests of the HTTP API: a real engine on a real SQLite file, a real origin on loopback, the router
//! served on 127.0.0.1:0 and driven with reqwest, asserting what a client sees (status, headers, JSON, bytes).

use std::time::Duration;

mod common;

use common::Harness;
use haul_core::job::AccountId;
use haul_engine::service::AddRequest;
use haul_test_support::OriginOptions;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "test-token-0123456789";

impl Harness {
    async fn create(&self, body: Value) -> Value {
        let (status, job) = self.call(Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        job
    }

    /// Polls until the download is in `state`, failing fast if it fails.
    async fn wait_for(&self, id: &str, state: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["state"] == state {
                return job;
            }
            assert_ne!(job["state"], "failed", "download failed while waiting for {state}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("download {id} never reached {state}");
    }
}

/// Asserts the one error shape and returns the message.
fn error_message(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_download_is_served_with_ranges_and_validators() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 3 * 1024 * 1024 + 17;
    let response = server
        .request(Method::POST, "/v1/downloads")
        .json(&json!({"url": server.origin.url(size, "data.bin"), "filename": "résumé \"1\".txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/downloads/{id}"));
    assert!(job["state"] == "queued" || job["state"] == "active", "{job}");
    assert!(job.get("lease_owner").is_none(), "scheduler internals are not part of the API: {job}");

    let job = server.wait_for(&id, "completed").await;
    assert_eq!(job["size"], size);
    assert_eq!(job["bytes_done"], size);

    // The whole file, byte-exact, with its headers.
    let file_path = format!("/v1/downloads/{id}/file");
    let response = server.request(Method::GET, &file_path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_LENGTH], size.to_string().as_str());
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    let disposition = headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
    assert!(disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9"), "{disposition}");
    assert!(!disposition["attachment; filename=\"".len()..].split(';').next().unwrap().contains('é'));
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let last_modified = headers[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "data.bin"));

    // One range.
    let response =
        server.request(Method::GET, &file_path).header(header::RANGE, "bytes=1000-1999").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes 1000-1999/{size}").as_str());
    assert_eq!(response.bytes().await.unwrap(), server.origin.handle().file_bytes(size, "data.bin", 1000, 2000));
    // A suffix range.
    let response = server.request(Method::GET, &file_path).header(header::RANGE, "bytes=-10").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), server.origin.handle().file_bytes(size, "data.bin", size - 10, size));

    // A range past the end.
    let response =
        server.request(Method::GET, &file_path).header(header::RANGE, format!("bytes={size}-")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes */{size}").as_str());
    error_message(&response.json().await.unwrap(), "range_not_satisfiable");

    // Conditional requests.
    let response = server.request(Method::GET, &file_path).header(header::IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()[header::ETAG], etag.as_str());
    let response = server
        .request(Method::GET, &file_path)
        .header(header::IF_NONE_MATCH, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response =
        server.request(Method::GET, &file_path).header(header::IF_MODIFIED_SINCE, &last_modified).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    // HEAD: the GET's headers, no body.
    let response = server.request(Method::HEAD, &file_path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], size.to_string().as_str());
    assert_eq!(response.headers()[header::ETAG], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());

    // Listing by state, with the total for paging.
    let (status, list) = server.call(Method::GET, "/v1/downloads?state=completed", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["downloads"][0]["id"], id.as_str());
    let (_, list) = server.call(Method::GET, "/v1/downloads?state=paused", None).await;
    assert_eq!(list["downloads"], json!([]));
    assert_eq!(list["total"], 0);
    let (status, body) = server.call(Method::GET, "/v1/downloads?state=sleeping", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "bad_request").contains("sleeping"), "{body}");

    // A completed download cannot be resumed; the message says why.
    let (status, body) = server.call(Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&body, "conflict").contains("completed"), "{body}");

    let (status, stats) = server.call(Method::GET, "/v1/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((stats["completed"].as_u64(), stats["total"].as_u64()), (Some(1), Some(1)), "{stats}");
    assert_eq!((stats["node"].as_str(), stats["backend"].as_str()), (Some("test"), Some("sqlite")), "{stats}");
    // The node that fetched it holds the file; it is the only node, seen by its heartbeat.
    let (_, done) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(done["node"], "test", "{done}");
    let nodes = wait_for_nodes(&server).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!((nodes[0]["id"].as_str(), nodes[0]["this"].as_bool()), (Some("test"), Some(true)), "{nodes:?}");
    assert_eq!(nodes[0]["active"], 0, "{nodes:?}");
    assert!(nodes[0]["last_seen"].as_i64() >= nodes[0]["started_at"].as_i64(), "{nodes:?}");

    // Delete without files: the row goes, the file stays.
    let view = server.engine.get(&server.account, parse_id(&id)).await.unwrap();
    let on_disk = server.engine.file_path(&view).await.expect("completed file inside the downloads dir");
    let (status, removed) = server.call(Method::DELETE, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["id"], id.as_str());
    assert!(on_disk.is_file(), "delete_files defaults to false");
    let (status, body) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body, "not_found").contains(&id), "{body}");
}

/// `GET /v1/nodes` once the node's first heartbeat (at start) is recorded.
async fn wait_for_nodes(server: &Harness) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) = server.call(Method::GET, "/v1/nodes", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
        if !nodes.is_empty() {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no node ever listed in /v1/nodes");
}

fn parse_id(text: &str) -> haul_core::job::DownloadId {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_files_and_missing_files() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 64 * 1024;
    let first = server.create(json!({"url": server.origin.url(size, "one.bin")})).await;
    let second = server.create(json!({"url": server.origin.url(size, "two.bin"), "directory": "sub"})).await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    server.wait_for(first_id, "completed").await;
    server.wait_for(second_id, "completed").await;
    let first_path = server.downloads_dir.join("one.bin");
    let second_path = server.downloads_dir.join("sub").join("two.bin");
    assert!(first_path.is_file() && second_path.is_file());

    let (status, removed) =
        server.call(Method::DELETE, &format!("/v1/downloads/{first_id}?delete_files=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(!first_path.exists(), "delete_files=true removes the file");

    // A completed download whose file was removed behind the server's back.
    std::fs::remove_file(&second_path).unwrap();
    let (status, body) = server.call(Method::GET, &format!("/v1/downloads/{second_id}/file"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body, "not_found").contains(second_id), "{body}");
    let (status, _) = server.call(Method::DELETE, &format!("/v1/downloads/{second_id}?delete_files=false"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        server.call(Method::DELETE, &format!("/v1/downloads/{second_id}?delete_files=maybe"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_patch_and_cancel_on_a_slow_origin() {
    let server =
        Harness::start(TOKEN, OriginOptions { per_connection_rate: Some(256 * 1024), ..Default::default() }).await;
    let size = 32 * 1024 * 1024;
    let url = server.origin.url(size, "slow.bin");
    let job = server.create(json!({"url": url, "connections": 2, "speed_limit": "1M", "priority": 3})).await;
    assert_eq!(job["speed_limit"], 1024 * 1024);
    assert_eq!(job["priority"], 3);
    assert_eq!(job["connections_limit"], 2);
    let id = job["id"].as_str().unwrap().to_owned();
    server.wait_for(&id, "active").await;

    // Not served while running.
    let (status, body) = server.call(Method::GET, &format!("/v1/downloads/{id}/file"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body, "not_found").contains("is active; the file is served once it is completed"));
    // The URL cannot change under a running fetch.
    let (status, body) =
        server.call(Method::PATCH, &format!("/v1/downloads/{id}"), Some(json!({"url": url.clone() + "?v=2"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body, "conflict").contains("active"), "{body}");

    let (status, paused) = server.call(Method::POST, &format!("/v1/downloads/{id}/pause"), None).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["state"], "paused");
    let (status, body) = server.call(Method::POST, &format!("/v1/downloads/{id}/pause"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&body, "conflict").contains("paused"), "{body}");

    // While paused, the URL (an expired link, say) and the priority can change.
    let new_url = server.origin.url(size, "slow.bin") + "?mirror=1";
    let (status, patched) =
        server.call(Method::PATCH, &format!("/v1/downloads/{id}"), Some(json!({"url": new_url, "priority": 7}))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((patched["url"].as_str(), patched["priority"].as_i64()), (Some(new_url.as_str()), Some(7)));
    let (status, body) =
        server.call(Method::PATCH, &format!("/v1/downloads/{id}"), Some(json!({"url": "ftp://example.com/x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    error_message(&body, "unsupported_url");

    let (status, resumed) = server.call(Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert!(resumed["state"] == "queued" || resumed["state"] == "active", "{resumed}");
    server.wait_for(&id, "active").await;

    let (status, cancelled) = server.call(Method::POST, &format!("/v1/downloads/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (status, body) = server.call(Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&body, "conflict").contains("cancelled"), "{body}");
    let (_, list) = server.call(Method::GET, "/v1/downloads?state=cancelled&limit=10&offset=0", None).await;
    assert_eq!(list["downloads"][0]["id"], id.as_str(), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speed_limited_download_pauses_at_once_and_resumes_right_after() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 4 * 1024 * 1024;
    // Eight connections under 4 KiB/s together: their first chunks put the shared limiter a minute into debt.
    let url = server.origin.url(size, "limited.bin");
    let job = server.create(json!({"url": url, "connections": 8, "speed_limit": "4K"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    server.wait_for(&id, "active").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, job) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if job["bytes_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no bytes: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, paused) = server.call(Method::POST, &format!("/v1/downloads/{id}/pause"), None).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    // Resumed straight away: the paused run must have let go of the file already, not be sleeping off its debt
    // with the file locked (the new run would find it in use and fail).
    let (status, resumed) = server.call(Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    server.wait_for(&id, "active").await;
    let before = paused["bytes_done"].as_u64().unwrap();
    loop {
        let (_, job) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_ne!(job["state"], "failed", "the resumed run failed: {job}");
        if job["bytes_done"].as_u64().unwrap_or(0) > before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the resumed run fetched nothing: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, cancelled) = server.call(Method::POST, &format!("/v1/downloads/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
}

/// One server-sent event as the client parsed it.
#[derive(Debug)]
struct SseEvent {
    id: u64,
    kind: String,
    data: Value,
}

/// Reads events from an SSE response until `stop` says so (or a timeout), skipping keep-alive comments.
async fn read_events(response: reqwest::Response, stop: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
    use futures_util::StreamExt as _;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await.expect("events in time");
        buffer.push_str(std::str::from_utf8(&chunk.expect("stream open").unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = Some(value.trim().parse().unwrap());
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(value.trim()).unwrap());
                }
            }
            let (Some(id), Some(kind), Some(data)) = (id, kind, data) else { continue };
            let event = SseEvent { id, kind, data };
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_the_callers_jobs_and_replay_after_last_event_id() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let response = server.request(Method::GET, "/v1/events").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));

    // Another account's download must not show up on this stream.
    let stranger = server
        .engine
        .add(&AccountId::generate(), AddRequest { url: server.origin.url(1024, "theirs.bin"), ..Default::default() })
        .await
        .unwrap();
    let job = server.create(json!({"url": server.origin.url(256 * 1024, "ours.bin")})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let events = read_events(response, |event| event.kind == "completed" && event.data["download"]["id"] == id).await;

    assert!(events.iter().all(|event| event.data["download"]["id"] != stranger.id.to_string()), "{events:?}");
    assert!(events.iter().all(|event| event.data["id"] == event.id && event.data["kind"] == event.kind.as_str()));
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).filter(|kind| *kind != "progress").collect();
    assert_eq!(kinds, ["added", "started", "completed"], "{events:?}");
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id), "ids increase");
    assert_eq!(events.last().unwrap().data["download"]["state"], "completed");

    // Reconnecting after the `added` event replays what came after it.
    let added = events.iter().find(|event| event.kind == "added").unwrap().id;
    let response =
        server.request(Method::GET, "/v1/events").header("Last-Event-ID", added.to_string()).send().await.unwrap();
    let replayed = read_events(response, |event| event.kind == "completed").await;
    assert!(replayed.iter().all(|event| event.id > added), "{replayed:?}");
    assert_eq!(replayed.first().unwrap().kind, "started", "{replayed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_share_one_shape() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let url = |path: &str| format!("{}{path}", server.base);

    // Health is public.
    let response = server.client.get(url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok", "port": port}));

    // 401 without a token, with a wrong one, with another scheme.
    for request in [
        server.client.get(url("/v1/downloads")),
        server.client.get(url("/v1/downloads")).bearer_auth("wrong"),
        server.client.get(url("/v1/downloads")).bearer_auth(format!("{TOKEN}x")),
        server.client.get(url("/v1/stats")).basic_auth("user", Some(TOKEN)),
        server.client.get(url("/v1/events")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        error_message(&response.json().await.unwrap(), "unauthorized");
    }

    // Bodies axum refuses before the handler runs.
    let response = server
        .request(Method::POST, "/v1/downloads")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    error_message(&response.json().await.unwrap(), "bad_request");
    let (status, body) = server.call(Method::POST, "/v1/downloads", Some(json!({"mirrors": []}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "bad_request").contains("url"), "{body}");
    let (status, body) =
        server.call(Method::POST, "/v1/downloads", Some(json!({"url": "http://h/f", "colour": "red"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "bad_request").contains("colour"), "{body}");
    let response = server.request(Method::POST, "/v1/downloads").body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error_message(&response.json().await.unwrap(), "unsupported_media_type");
    // More than the kernel buffers hold: the client is still writing when the 413 is sent, and hears it only
    // because the server reads the rest (`linger.rs`) instead of resetting the connection.
    let oversized = json!({"url": format!("http://example.com/{}", "a".repeat(16 * 1024 * 1024))});
    let (status, body) = server.call(Method::POST, "/v1/downloads", Some(oversized)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_message(&body, "payload_too_large");

    // Field values the handler or the engine refuses.
    let (status, body) =
        server.call(Method::POST, "/v1/downloads", Some(json!({"url": "http://h/f", "speed_limit": "fast"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "bad_request").contains("speed_limit"), "{body}");
    let (status, body) = server.call(Method::POST, "/v1/downloads", Some(json!({"url": "ftp://example.com/f"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(&body, "unsupported_url").contains("ftp://example.com/f"), "{body}");
    let (status, body) =
        server.call(Method::POST, "/v1/downloads", Some(json!({"url": "http://h/f", "connections": 0}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Ids.
    let (status, body) = server.call(Method::GET, "/v1/downloads/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "bad_request").contains("not-a-uuid"), "{body}");
    let unknown = "3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f";
    for (method, path) in [
        (Method::GET, format!("/v1/downloads/{unknown}")),
        (Method::POST, format!("/v1/downloads/{unknown}/pause")),
        (Method::DELETE, format!("/v1/downloads/{unknown}")),
        (Method::GET, format!("/v1/downloads/{unknown}/file")),
    ] {
        let (status, body) = server.call(method, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(error_message(&body, "not_found").contains(unknown), "{body}");
    }

    // Routes and methods.
    let (status, body) = server.call(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body, "not_found").contains("/v1/nothing-here"), "{body}");
    let response = server.request(Method::PUT, "/v1/downloads").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().get(header::ALLOW).is_some(), "{:?}", response.headers());
    error_message(&response.json().await.unwrap(), "method_not_allowed");

    // The OpenAPI document is public and describes the API.
    let response = server.client.get(url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{document}");
    for path in ["/v1/downloads", "/v1/downloads/{id}", "/v1/downloads/{id}/file", "/v1/events", "/v1/stats"] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    assert!(document["paths"]["/v1/downloads"]["post"].is_object());
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The media choices a download takes and shows, and where its subtitles are served.
    assert!(document["paths"]["/v1/downloads/{id}/subtitles/{lang}"]["get"].is_object());
    let schemas = &document["components"]["schemas"];
    for field in ["prefer", "vcodec", "format", "subtitles", "auto_subtitles", "embed_subtitles", "embed_metadata"] {
        assert!(schemas["CreateDownload"]["properties"][field].is_object(), "CreateDownload.{field} missing");
        assert!(schemas["MediaOptions"]["properties"][field].is_object(), "MediaOptions.{field} missing");
    }
    for field in ["media_options", "subtitle_files"] {
        assert!(schemas["Download"]["properties"][field].is_object(), "Download.{field} missing");
    }
    assert!(schemas["SubtitleFileView"]["properties"]["url"].is_object());
}

/// `Idempotency-Key`: fifty identical adds sent at once make one download, every answer naming it; the same key
/// with another body is a 422 that says so; a malformed key is a 400; without a key, each add is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_one_download_of_many_identical_adds() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let body = json!({"url": server.origin.url(4096, "once.bin"), "paused": true});
    let sends = (0..50).map(|_| {
        server.request(Method::POST, "/v1/downloads").header("Idempotency-Key", "add-7f3e").json(&body).send()
    });
    let mut ids = std::collections::BTreeSet::new();
    let mut replayed = 0;
    for response in futures_util::future::join_all(sends).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        replayed += usize::from(response.headers().get("idempotent-replayed").is_some_and(|value| value == "true"));
        let created: Value = response.json().await.unwrap();
        ids.insert(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one download for one key: {ids:?}");
    assert_eq!(replayed, 49, "every answer but the first is a replay");
    let (_, stats) = server.call(Method::GET, "/v1/stats", None).await;
    assert_eq!(stats["total"], 1, "{stats}");

    // The same key for another body.
    let other = json!({"url": server.origin.url(4096, "other.bin"), "paused": true});
    let response =
        server.request(Method::POST, "/v1/downloads").header("Idempotency-Key", "add-7f3e").json(&other).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    let message = error_message(&error, "idempotency_key_reused");
    assert!(message.contains("add-7f3e") && message.contains("new key"), "{message}");

    // Malformed keys, then no key at all.
    for key in ["", "has space", &"k".repeat(256)] {
        let response =
            server.request(Method::POST, "/v1/downloads").header("Idempotency-Key", key).json(&body).send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "key {key:?}");
        let error: Value = response.json().await.unwrap();
        assert!(error_message(&error, "bad_request").contains("Idempotency-Key"), "{error}");
    }
    for _ in 0..2 {
        let response = server.request(Method::POST, "/v1/downloads").json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    let (_, stats) = server.call(Method::GET, "/v1/stats", None).await;
    assert_eq!(stats["total"], 3, "{stats}");
}

/// One sample of the text format: `name{labels} value`, labels as written.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let wanted = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (series == wanted).then(|| value.parse().ok()).flatten()
    })
}

/// `/metrics`: the operator's token reads the text format, whose figures match what the test did (jobs by
/// state, bytes fetched, a finished run, the requests made by route and status); another account's key is a
/// 403 and no token a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 3 * 1024 * 1024 + 5;
    let created = server.create(json!({"url": server.origin.url(size, "measured.bin")})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.wait_for(&id, "completed").await;
    server.create(json!({"url": server.origin.url(1024, "waiting.bin"), "paused": true})).await;
    let (status, _) = server.call(Method::GET, "/v1/downloads/not-an-id", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = server.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let value = |name: &str, labels: &str| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in:\n{text}"))
    };
    assert_eq!(value("haul_jobs", r#"state="completed""#), 1.0);
    assert_eq!(value("haul_jobs", r#"state="paused""#), 1.0);
    assert_eq!(value("haul_jobs", r#"state="active""#), 0.0);
    assert_eq!(value("haul_bytes_fetched_total", ""), size as f64, "every byte of the one download, once");
    assert_eq!(value("haul_downloads_finished_total", r#"outcome="completed""#), 1.0);
    assert_eq!(value("haul_downloads_running", ""), 0.0);
    assert_eq!(value("haul_http_requests_total", r#"method="POST",route="/v1/downloads",status="201""#), 2.0);
    assert_eq!(value("haul_http_requests_total", r#"method="GET",route="/v1/downloads/{id}",status="400""#), 1.0);
    assert!(value("haul_http_request_duration_seconds_count", r#"method="POST",route="/v1/downloads""#) >= 2.0);
    assert_eq!(value("haul_event_streams_open", ""), 0.0);

    server.server.add_account("eve", None, haul_core::account::KeyKind::Bearer, "eve-secret").await;
    let response = server.client.get(format!("{}/metrics", server.base)).bearer_auth("eve-secret").send().await;
    assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "another account sees no server-wide figures");
    let response = server.client.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// `/metrics` by host, cause and store operation: the bytes of a download from an origin that cuts half its
/// bodies short are counted under the origin's host, once each, the cuts as `interrupted` retries, and the store's
/// claims and adds are timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_break_bytes_down_by_host_retries_by_cause_and_time_the_store() {
    let origin = OriginOptions { cut_fraction: 0.5, ..OriginOptions::default() };
    let server = Harness::start(TOKEN, origin).await;
    let size = 8 * 1024 * 1024 + 3;
    let created = server.create(json!({"url": server.origin.url(size, "cut.bin")})).await;
    server.wait_for(created["id"].as_str().unwrap(), "completed").await;
    let text = server.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let value = |name: &str, labels: &str| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in:\n{text}"))
    };
    assert_eq!(value("haul_host_bytes_fetched_total", r#"host="127.0.0.1""#), size as f64);
    assert!(value("haul_retries_total", r#"cause="interrupted""#) >= 1.0, "half the bodies were cut:\n{text}");
    assert!(value("haul_store_operation_seconds_count", r#"operation="claim""#) >= 1.0);
    assert_eq!(value("haul_store_operation_seconds_count", r#"operation="create""#), 1.0);
    assert!(!text.contains("haul_host_download_speed_bytes{"), "no host series once nothing runs:\n{text}");
}

/// A NUL byte in a list's search text is a 400 naming the field, on every backend (PostgreSQL's text cannot hold
/// one, and answered 500 before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_search_is_refused() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let (status, body) = server.call(Method::GET, "/v1/downloads?search=a%00b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body, "bad_request").contains("search cannot contain a NUL"), "{body}");
}

/// Webhooks through HTTP are one account's: another account's key lists none of them, and reading, listing the
/// deliveries of or deleting one by its id is a 404 that leaves it in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_webhooks_are_out_of_reach() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let (status, created) = server
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://hooks.example.net/haul", "events": ["completed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    server.server.add_account("eve", None, haul_core::account::KeyKind::Bearer, "eve-secret").await;
    let eve = |method: Method, path: String| {
        server.client.request(method, format!("{}{path}", server.base)).bearer_auth("eve-secret").send()
    };
    let listed: Value = eve(Method::GET, "/v1/webhooks".into()).await.unwrap().json().await.unwrap();
    assert_eq!(listed["webhooks"], json!([]), "{listed}");
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
    ] {
        let response = eve(method.clone(), path.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path} by another account");
    }
    let (status, mine) = server.call(Method::GET, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["url"], "https://hooks.example.net/haul");
    assert!(mine.get("secret").is_none(), "the secret is shown only when the webhook is made: {mine}");
}
