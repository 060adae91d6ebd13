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
        self.wait_until(id, status, |job| {
            assert_ne!(job["status"], "error", "download failed while waiting for {status}: {job}");
            job["status"] == status
        })
        .await
    }

    /// Polls `GET /download?id=` until `done` holds (30 s at most); `what` names the wait in the panic.
    async fn wait_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let job = self.status(id).await;
            if done(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("download {id} never reached {what}");
    }

    async fn status(&self, id: &str) -> Value {
        let (code, job) = self.call(Method::GET, &format!("/download?id={id}"), None).await;
        assert_eq!(code, StatusCode::OK, "{job}");
        job
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
    let mirror = format!("{url}?mirror=1");
    let id = server.add(json!({"url": url, "path": "music", "mirrors": [mirror], "skip_approval": true})).await;
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
    assert_eq!((&entry["time_taken"], &entry["avg_speed"]), (&job["time_taken"], &job["avg_speed"]));
    assert_eq!(entry["mirrors"], json!([mirror]), "{entry}");

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

/// One server-sent event: its `event:`, its `data:` parsed and as sent, and its `id:`.
#[derive(Debug)]
struct Message {
    kind: String,
    data: Value,
    raw: String,
    id: u64,
}

/// Reads server-sent events until `stop` matches one.
async fn read_events(mut response: reqwest::Response, stop: impl Fn(&str, &Value) -> bool) -> Vec<Message> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("timed out").unwrap().unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = String::new();
            let mut raw = String::new();
            let mut id = 0;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().unwrap();
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    raw = value.trim().to_owned();
                }
            }
            if kind.is_empty() {
                continue;
            }
            assert!(id > 0, "every Surge event carries an id: {block}");
            let data: Value = serde_json::from_str(&raw).unwrap();
            let done = stop(&kind, &data);
            events.push(Message { kind, data, raw, id });
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
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).filter(|kind| *kind != "progress").collect();
    assert_eq!(kinds, ["queued", "started", "complete"], "{events:?}");
    assert!(events.iter().all(|event| event.data["id"] == id.as_str()), "{events:?}");
    let last = &events.last().unwrap().data;
    assert_eq!((last["status"].as_str(), last["progress"].as_f64()), (Some("completed"), Some(100.0)));

    // A client that reconnects with Last-Event-ID gets what came after it, then live events.
    let after_queued = events[0].id;
    let response = server.request(Method::GET, "/events").header("Last-Event-ID", after_queued).send().await.unwrap();
    let replayed = read_events(response, |kind, _| kind == "complete").await;
    let expected: Vec<_> = events[1..].iter().map(|event| (event.kind.clone(), event.id)).collect();
    let got: Vec<_> = replayed.iter().map(|event| (event.kind.clone(), event.id)).collect();
    assert_eq!(got, expected);
}

/// A JSON object's members in the order they were sent (`serde_json::Value` sorts them, and Go's decoder keeps
/// the last of two keys that match one field).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The Go type of a field, as far as decoding JSON into it goes.
#[derive(Clone, Copy, Debug)]
enum Go {
    String,
    /// `int`, `int64`, `time.Duration`: a JSON integer (`1.0` or `1e3` is a type error).
    Int,
    Float,
    /// `[]byte`: base64 text.
    Bytes,
    IntSlice,
    /// `json.RawMessage`: anything.
    Raw,
}

/// The Go struct Surge's client (`internal/core/remote_service.go`) decodes each event's data into, from
/// `internal/engine/events/events.go`: no json tags, so the keys are the field names. `error` goes through
/// `DownloadErrorMsg.UnmarshalJSON`, which reads `Err` as raw JSON and keeps a string as the error.
fn go_struct(kind: &str) -> &'static [(&'static str, Go)] {
    match kind {
        "progress" => &[
            ("DownloadID", Go::String),
            ("Downloaded", Go::Int),
            ("Total", Go::Int),
            ("Speed", Go::Float),
            ("Elapsed", Go::Int),
            ("ActiveConnections", Go::Int),
            ("ChunkBitmap", Go::Bytes),
            ("BitmapWidth", Go::Int),
            ("ActualChunkSize", Go::Int),
            ("ChunkProgress", Go::IntSlice),
        ],
        "started" => &[
            ("DownloadID", Go::String),
            ("URL", Go::String),
            ("Filename", Go::String),
            ("Total", Go::Int),
            ("DestPath", Go::String),
        ],
        "complete" => &[
            ("DownloadID", Go::String),
            ("Filename", Go::String),
            ("Elapsed", Go::Int),
            ("Total", Go::Int),
            ("AvgSpeed", Go::Float),
        ],
        "error" => &[("DownloadID", Go::String), ("Filename", Go::String), ("Err", Go::Raw)],
        "paused" => &[("DownloadID", Go::String), ("Filename", Go::String), ("Downloaded", Go::Int)],
        "resumed" | "queued" | "removed" => &[("DownloadID", Go::String), ("Filename", Go::String)],
        other => panic!("Surge's client ignores an event named {other:?}"),
    }
}

/// What `json.Unmarshal(data, &msg)` leaves in the event's Go struct, field by field, or why it fails (the
/// client then drops the event). Like Go: a key goes to the field of the same name, else to one whose name
/// differs only in case (underscores count); null leaves a field alone; the last key for a field wins; a value
/// of the wrong type for a field is an error.
fn go_decode(kind: &str, raw: &str) -> Result<std::collections::BTreeMap<&'static str, Value>, String> {
    let Members(members) = serde_json::from_str(raw).map_err(|error| format!("not a JSON object: {error}"))?;
    let fields = go_struct(kind);
    let mut decoded = std::collections::BTreeMap::new();
    for (key, value) in members {
        let field = fields.iter().find(|(name, _)| *name == key);
        let field = field.or_else(|| fields.iter().find(|(name, _)| name.eq_ignore_ascii_case(&key)));
        let Some(&(name, go)) = field else { continue };
        if value.is_null() {
            continue;
        }
        let fits = match go {
            Go::String | Go::Bytes => value.is_string(),
            Go::Int => value.is_i64() || value.is_u64(),
            Go::Float => value.is_number(),
            Go::IntSlice => value.as_array().is_some_and(|items| items.iter().all(|item| item.is_i64())),
            Go::Raw => true,
        };
        if !fits {
            return Err(format!("{kind}: {key:?} = {value} does not fit Go field {name} ({go:?})"));
        }
        decoded.insert(name, value);
    }
    Ok(decoded)
}

/// The Go field names an event carries, sorted (the status object's keys are all lower case).
fn go_keys(raw: &str) -> Vec<String> {
    let Members(members) = serde_json::from_str(raw).unwrap();
    let mut keys: Vec<String> = members
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_decode_into_the_go_clients_structs_by_field_name() {
    // 1 MiB/s for the whole origin: a 4 MiB download runs long enough to report progress and be paused.
    let server = Harness::start(TOKEN, OriginOptions { aggregate_rate: Some(1024 * 1024), ..Default::default() }).await;
    let response = server.request(Method::GET, "/events").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Added the way Surge's TUI adds: an absolute path, and no mirrors or headers sent as null.
    let size: u64 = 4 * 1024 * 1024;
    let url = server.origin.url(size, "go.bin");
    let dir = server.downloads_dir.join("tui");
    let body = json!({"url": url, "path": dir.display().to_string(), "filename": "go.bin", "mirrors": null,
                      "headers": null, "skip_approval": true});
    let id = server.add(body).await;
    server.wait_until(&id, "some bytes", |job| job["status"] == "downloading" && job["downloaded"] != 0).await;
    // A progress event goes out every second while it runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = server.call(Method::POST, &format!("/pause?id={id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.wait_for(&id, "paused").await;
    let (status, body) = server.call(Method::POST, &format!("/resume?id={id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.wait_for(&id, "completed").await;

    // One that fails (the origin answers 404), then is removed.
    let failed = server.add(json!({"url": format!("{}/missing.bin", server.origin.base_url())})).await;
    server.wait_until(&failed, "error", |job| job["status"] == "error").await;
    let (status, body) = server.call(Method::POST, &format!("/delete?id={failed}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let events = read_events(response, |kind, data| kind == "removed" && data["id"] == failed.as_str()).await;
    let mut seen = std::collections::BTreeSet::new();
    for event in &events {
        let (kind, raw, data) = (event.kind.as_str(), event.raw.as_str(), &event.data);
        let go = go_decode(kind, raw).unwrap_or_else(|error| panic!("the client would drop {raw}: {error}"));
        let download = go["DownloadID"].as_str().unwrap_or_else(|| panic!("no DownloadID: {raw}"));
        assert!(!download.is_empty() && download == data["id"], "{raw}");
        assert!([id.as_str(), failed.as_str()].contains(&download), "{raw}");
        let ours = download == id;

        let expected: &[&str] = match kind {
            "progress" => &["ActiveConnections", "DownloadID", "Downloaded", "Elapsed", "Speed", "Total"],
            "started" => &["DestPath", "DownloadID", "Filename", "Total", "URL"],
            "complete" => &["AvgSpeed", "DownloadID", "Elapsed", "Filename", "Total"],
            "error" => &["DownloadID", "Err", "Filename"],
            "paused" => &["DownloadID", "Downloaded", "Filename"],
            _ => &["DownloadID", "Filename"],
        };
        assert_eq!(go_keys(raw), expected, "{kind}: {raw}");
        if kind != "progress" {
            let name = if ours { "go.bin" } else { "missing.bin" };
            assert_eq!(go["Filename"], name, "{raw}");
        }
        // Only a completed download has a time taken and an average speed.
        if data["status"] != "completed" {
            assert_eq!((&data["time_taken"], &data["avg_speed"]), (&json!(0), &json!(0)), "{raw}");
        }

        match kind {
            "progress" => {
                assert!(ours, "{raw}");
                assert!(go["Downloaded"].as_u64().unwrap() <= size, "{raw}");
                assert_eq!(go["Total"], size, "{raw}");
                // Bytes per second: the `Speed` key wins over the status object's `speed` in MB/s.
                let speed = go["Speed"].as_f64().unwrap();
                let mb_per_s = data["speed"].as_f64().unwrap();
                assert!((speed - mb_per_s * 1024.0 * 1024.0).abs() <= 1e-6 * speed.max(1.0), "{raw}");
                // Nanoseconds: progress is reported a second or more after it starts.
                assert!(go["Elapsed"].as_i64().unwrap() >= 500_000_000, "{raw}");
                assert!(go["ActiveConnections"].is_u64(), "{raw}");
            }
            "started" if ours => {
                assert_eq!(go["URL"], url.as_str(), "{raw}");
                assert_eq!(go["DestPath"], dir.join("go.bin").display().to_string(), "{raw}");
            }
            "complete" => {
                assert_eq!(go["Total"], size, "{raw}");
                let elapsed = go["Elapsed"].as_i64().unwrap();
                assert!(elapsed >= 1_000_000_000, "the download ran for seconds: {raw}");
                let average = size as f64 * 1e9 / elapsed as f64;
                let avg_speed = go["AvgSpeed"].as_f64().unwrap();
                assert!((avg_speed - average).abs() <= 1e-6 * average, "{raw}");
                assert!(data["avg_speed"].as_u64().unwrap() > 0 && data["time_taken"].as_i64().unwrap() > 0, "{raw}");
            }
            "error" => {
                assert!(!ours, "{raw}");
                assert!(go["Err"].as_str().is_some_and(|error| error.contains("404")), "{raw}");
            }
            "paused" => {
                let downloaded = go["Downloaded"].as_u64().unwrap();
                assert!(downloaded > 0 && downloaded < size, "{raw}");
            }
            _ => {}
        }
        seen.insert(kind);
    }
    let all = ["complete", "error", "paused", "progress", "queued", "removed", "resumed", "started"];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
    let bytes = std::fs::read(dir.join("go.bin")).unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "go.bin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_paths_inside_the_downloads_directory_are_used_and_outside_refused() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let root = &server.downloads_dir;

    // Inside: used relative to the downloads directory; the directory itself is its root.
    for (path, name, file) in [
        (root.join("abs").join("inner").display().to_string(), "in.bin", root.join("abs/inner/in.bin")),
        (format!("{}/", root.display()), "root.bin", root.join("root.bin")),
    ] {
        let id = server.add(json!({"url": server.origin.url(1000, name), "path": path})).await;
        let job = server.wait_for(&id, "completed").await;
        assert_eq!(job["dest_path"], file.display().to_string(), "{path}");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 1000, "{path}");
    }

    // Outside (or leaving it with ..): a 400 that says what to send instead.
    let parent = root.parent().unwrap();
    for path in [
        "/etc".to_owned(),
        parent.join("elsewhere").display().to_string(),
        format!("{}-other/x", root.display()),
        root.join("../x").display().to_string(),
    ] {
        let body = json!({"url": server.origin.url(10, "out.bin"), "path": path});
        let (status, text) = server.text(server.request(Method::POST, "/download").json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        assert!(text.contains("send a path relative to the downloads directory"), "{path}: {text}");
    }
    let (_, list) = server.call(Method::GET, "/list", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing was queued by the refused requests: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_queued_active_or_failed_and_pause_of_paused_answer_as_surge_does() {
    // 64 KiB/s for the whole origin: 8 MiB downloads stay running; the server runs 4 at a time.
    let server = Harness::start(TOKEN, OriginOptions { aggregate_rate: Some(64 * 1024), ..Default::default() }).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(server.add(json!({"url": server.origin.url(8 * 1024 * 1024, &format!("slow{n}.bin"))})).await);
    }
    let mut list = Value::Null;
    for _ in 0..600 {
        list = server.call(Method::GET, "/list", None).await.1;
        let count = |status: &str| list.as_array().unwrap().iter().filter(|job| job["status"] == status).count();
        if (count("downloading"), count("queued")) == (4, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let with = |status: &str| {
        let job = list.as_array().unwrap().iter().find(|job| job["status"] == status);
        job.unwrap_or_else(|| panic!("no {status} download: {list}"))["id"].as_str().unwrap().to_owned()
    };
    let (queued, active) = (with("queued"), with("downloading"));
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Resuming one that is queued or downloading answers as done and changes nothing.
    for (id, status) in [(&queued, "queued"), (&active, "downloading")] {
        let (code, body) = server.call(Method::POST, &format!("/resume?id={id}"), None).await;
        assert_eq!((code, body), (StatusCode::OK, json!({"status": "resumed", "id": id})), "{status}");
        let job = server.status(id).await;
        assert_eq!(job["status"], status, "{job}");
        // Running for a while, not completed: no time taken or average speed yet.
        assert_eq!((&job["time_taken"], &job["avg_speed"]), (&json!(0), &json!(0)), "{job}");
    }

    // Pausing one that is paused answers as done.
    let (code, body) = server.call(Method::POST, &format!("/pause?id={active}"), None).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"status": "paused", "id": active})));
    server.wait_for(&active, "paused").await;
    let (code, body) = server.call(Method::POST, &format!("/pause?id={active}"), None).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"status": "paused", "id": active})));
    let job = server.status(&active).await;
    assert_eq!((&job["status"], &job["time_taken"], &job["avg_speed"]), (&json!("paused"), &json!(0), &json!(0)));

    for id in &ids {
        let (code, _) = server.call(Method::POST, &format!("/delete?id={id}"), None).await;
        assert_eq!(code, StatusCode::OK);
    }

    // Resuming a failed one retries it (here with a URL that works now).
    let failed = server.add(json!({"url": format!("{}/missing.bin", server.origin.base_url())})).await;
    let job = server.wait_until(&failed, "error", |job| job["status"] == "error").await;
    assert_eq!((&job["time_taken"], &job["avg_speed"]), (&json!(0), &json!(0)), "{job}");
    let url = server.origin.url(4096, "missing.bin");
    let (code, body) = server.call(Method::PUT, &format!("/update-url?id={failed}"), Some(json!({"url": url}))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = server.call(Method::POST, &format!("/resume?id={failed}"), None).await;
    assert_eq!((code, body), (StatusCode::OK, json!({"status": "resumed", "id": failed})));
    let job = server.wait_for(&failed, "completed").await;
    assert_eq!(job["downloaded"], 4096, "{job}");

    // Pausing a completed one is still refused, in plain text.
    let (status, text) = server.text(server.request(Method::POST, &format!("/pause?id={failed}"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(text.contains("completed"), "{text}");
}
