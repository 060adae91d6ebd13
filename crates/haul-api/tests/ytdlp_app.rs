//! The yt-dlp web app's API (seeds 000 and 004, dialects.md section 1) end to end: a real engine on SQLite, a
//! real origin, the router on 127.0.0.1:0, driven with reqwest the way the app's clients drive it.

use std::time::Duration;

mod common;

use common::Harness;
use haul_test_support::OriginOptions;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "ytdlp-app-token-0123456789";

impl Harness {
    /// Starts a download through `POST /api/download` and returns its id.
    async fn app_add(&self, body: Value) -> String {
        let (status, answer) = self.call(Method::POST, "/api/download", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["status"], "pending", "{answer}");
        assert_eq!(answer["message"], "Descarga iniciada", "{answer}");
        answer["download_id"].as_str().unwrap().to_owned()
    }

    /// The task with `id` from `GET /api/downloads`, as the seed's polling loop finds it.
    async fn app_task(&self, id: &str) -> Option<Value> {
        let (status, tasks) = self.call(Method::GET, "/api/downloads", None).await;
        assert_eq!(status, StatusCode::OK, "{tasks}");
        tasks.as_array().expect("a JSON array of tasks").iter().find(|task| task["id"] == id).cloned()
    }

    async fn app_wait(&self, id: &str, status: &str) -> Value {
        for _ in 0..600 {
            let task = self.app_task(id).await.expect("the task is listed");
            if task["status"] == status {
                return task;
            }
            assert_ne!(task["status"], "error", "download failed while waiting for {status}: {task}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("download {id} never reached {status}");
    }

    /// A call expecting FastAPI's `{"detail": ...}`.
    async fn detail(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, answer) = self.call(method, path, body).await;
        assert!(!status.is_success(), "{status}: {answer}");
        assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "only `detail`: {answer}");
        (status, answer["detail"].clone())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn iso8601_is_recent(text: &str) {
    let time = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?} is not ISO 8601: {e}"));
    let age = std::time::SystemTime::now().duration_since(time).unwrap_or_default();
    assert!(age < Duration::from_secs(120), "{text} is not recent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_start_poll_and_fetch_the_file() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 3 * 1024 * 1024 + 17;
    let url = server.origin.url(size, "clip.mp4");

    // Step 1 of the seed's complete example.
    let id = server.app_add(json!({"url": url, "quality": "720p"})).await;
    // Step 2: poll the list until completed.
    let task = server.app_wait(&id, "completed").await;

    // The task, field by field.
    let expected_keys = [
        "id",
        "url",
        "title",
        "thumbnail",
        "status",
        "progress",
        "speed",
        "eta",
        "filesize",
        "downloaded_bytes",
        "format_note",
        "is_playlist",
        "playlist_index",
        "playlist_total",
        "filename",
        "quality",
        "download_type",
        "error_message",
        "created_at",
        "completed_at",
    ];
    let mut keys: Vec<_> = task.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = expected_keys.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(task["id"], id.as_str());
    assert_eq!(task["url"], url.as_str());
    assert_eq!(task["title"], "clip");
    assert_eq!(task["thumbnail"], Value::Null, "no thumbnail for a plain file");
    assert_eq!(task["progress"], 100.0);
    assert_eq!((task["speed"].clone(), task["eta"].clone()), (Value::Null, Value::Null));
    assert_eq!((task["filesize"].as_u64(), task["downloaded_bytes"].as_u64()), (Some(size), Some(size)));
    assert_eq!(task["is_playlist"], false);
    assert_eq!((task["playlist_index"].clone(), task["playlist_total"].clone()), (Value::Null, Value::Null));
    // Stored as the app stores it, `{title}__{download_id}.{ext}`.
    assert_eq!(task["filename"], format!("clip__{id}.mp4"));
    assert!(server.downloads_dir.join(format!("clip__{id}.mp4")).is_file());
    assert_eq!((task["quality"].as_str(), task["download_type"].as_str()), (Some("720p"), Some("video")));
    assert_eq!(task["error_message"], Value::Null);
    iso8601_is_recent(task["created_at"].as_str().unwrap());
    iso8601_is_recent(task["completed_at"].as_str().unwrap());

    // Step 3: the file, with the title as its name and the type from the extension.
    let response = server.request(Method::GET, &format!("/api/download/{id}/file")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "video/mp4");
    let disposition = response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert!(disposition.contains("filename=\"clip.mp4\""), "{disposition}");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "clip.mp4"));

    // The seed's JavaScript reads the name after `filename=` with the quotes removed.
    let name = disposition.split("filename=").nth(1).unwrap().split(';').next().unwrap().replace('"', "");
    assert_eq!(name, "clip.mp4");

    // Ranges on the file and on /api/stream/{filename}, as a <video> element asks.
    for path in [format!("/api/download/{id}/file"), format!("/api/stream/clip__{id}.mp4")] {
        let response = server.request(Method::GET, &path).header(header::RANGE, "bytes=100-199").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{path}");
        assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes 100-199/{size}").as_str());
        assert_eq!(&response.bytes().await.unwrap()[..], &bytes[100..200], "{path}");
    }
    // /api/stream only serves the caller's finished downloads by name: nothing else on disk is reachable.
    for name in ["..%2Fhaul.db", "haul.db", "clip.mp4", "clip.mp4.part", "%2Fetc%2Fpasswd"] {
        let (status, detail) = server.detail(Method::GET, &format!("/api/stream/{name}"), None).await;
        assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Archivo no encontrado")), "{name}");
    }

    // The same task through Surge and the native API.
    let (status, surge) = server.call(Method::GET, &format!("/download?id={id}"), None).await;
    assert_eq!((status, surge["status"].as_str()), (StatusCode::OK, Some("completed")), "{surge}");
    let (status, native) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(
        (status, native["state"].as_str(), native["quality"].as_str()),
        (StatusCode::OK, Some("completed"), Some("720p"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_cancel_keeps_files_and_remove_deletes_them() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let size = 1024 * 1024;
    let id = server.app_add(json!({"url": server.origin.url(size, "song.mp4")})).await;
    server.app_wait(&id, "completed").await;
    let file = server.downloads_dir.join(format!("song__{id}.mp4"));
    // A thumbnail as media downloads leave it.
    let thumbnails = server.server.thumbnails_dir();
    std::fs::create_dir_all(&thumbnails).unwrap();
    let thumbnail = thumbnails.join(format!("{id}.jpg"));
    std::fs::write(&thumbnail, b"\xff\xd8\xff\xe0 jpeg").unwrap();

    // The task links a thumbnail only when the job recorded one (media jobs do, see dialect_media.rs); the
    // image is served whenever the file is there.
    let task = server.app_task(&id).await.unwrap();
    assert_eq!(task["thumbnail"], serde_json::Value::Null);
    let response = server.request(Method::GET, &format!("/api/thumbnails/{id}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(&response.bytes().await.unwrap()[..], b"\xff\xd8\xff\xe0 jpeg");

    // Cancel: a finished download cannot be cancelled, and nothing is deleted.
    let (status, detail) = server.detail(Method::DELETE, &format!("/api/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(detail.as_str().unwrap().contains(&format!("/api/downloads/{id}/remove")), "{detail}");
    assert!(file.is_file() && thumbnail.is_file(), "cancel deleted files");
    assert_eq!(server.app_task(&id).await.unwrap()["status"], "completed");

    // Remove: seed 000's answer; the task, the file and the thumbnail are gone.
    let (status, answer) = server.call(Method::DELETE, &format!("/api/downloads/{id}/remove"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Descarga eliminada"})));
    assert!(server.app_task(&id).await.is_none(), "removed from the list");
    assert!(!file.exists(), "the file is deleted");
    assert!(!thumbnail.exists(), "the thumbnail is deleted");
    for path in [format!("/api/downloads/{id}/remove"), format!("/api/downloads/{id}")] {
        let (status, detail) = server.detail(Method::DELETE, &path, None).await;
        assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Descarga no encontrada")), "{path}");
    }
    let (status, detail) = server.detail(Method::GET, &format!("/api/thumbnails/{id}"), None).await;
    assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Miniatura no encontrada")));

    // Files already deleted by hand do not stop a removal (missing_ok in the seed).
    let id = server.app_add(json!({"url": server.origin.url(size, "gone.mp4")})).await;
    server.app_wait(&id, "completed").await;
    std::fs::remove_file(server.downloads_dir.join(format!("gone__{id}.mp4"))).unwrap();
    let (status, detail) = server.detail(Method::GET, &format!("/api/download/{id}/file"), None).await;
    assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Archivo físico no encontrado")));
    let (status, answer) = server.call(Method::DELETE, &format!("/api/downloads/{id}/remove"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Descarga eliminada"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_download_and_keeps_the_task() {
    let slow = OriginOptions { aggregate_rate: Some(512 * 1024), ..Default::default() };
    let server = Harness::start(TOKEN, slow).await;
    let id = server.app_add(json!({"url": server.origin.url(64 * 1024 * 1024, "big.mp4")})).await;
    let task = server.app_wait(&id, "downloading").await;
    let (status, answer) = server.call(Method::DELETE, &format!("/api/downloads/{id}"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Descarga cancelada"})));
    let task_after = server.app_task(&id).await.expect("a cancelled task stays in the list");
    assert_eq!(task_after["status"], "cancelled");
    assert_eq!(task_after["id"], task["id"]);
    // Cancelling again is not an error; the file is not served.
    let (status, answer) = server.call(Method::DELETE, &format!("/api/downloads/{id}"), None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "Descarga cancelada"})));
    let (status, detail) = server.detail(Method::GET, &format!("/api/download/{id}/file"), None).await;
    assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Descarga no disponible o no completada")));
    let leftovers: Vec<_> = std::fs::read_dir(&server.downloads_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.is_empty(), "cancel leaves no partial file: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_in_fastapi_shape() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;

    // Seed 004: not completed, unknown, not even an id.
    let slow = server.origin.url(8 * 1024 * 1024, "later.mp4");
    let paused = server.call(Method::POST, "/v1/downloads", Some(json!({"url": slow, "paused": true}))).await.1;
    let paused_id = paused["id"].as_str().unwrap();
    assert_eq!(server.app_task(paused_id).await.unwrap()["status"], "pending", "paused shows as pending");
    for id in [paused_id, "550e8400-e29b-41d4-a716-446655440000", "not-an-id"] {
        let (status, detail) = server.detail(Method::GET, &format!("/api/download/{id}/file"), None).await;
        assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Descarga no disponible o no completada")));
    }

    // Request validation: 422 with pydantic's list.
    let cases = [
        (json!({"quality": "720p"}), "missing", json!(["body", "url"])),
        (json!({"url": 5}), "string_type", json!(["body", "url"])),
        (json!({"url": "http://x/a", "quality": "999p"}), "literal_error", json!(["body", "quality"])),
        (json!({"url": "http://x/a", "download_type": "podcast"}), "literal_error", json!(["body", "download_type"])),
        (json!(["http://x/a"]), "model_attributes_type", json!(["body"])),
    ];
    for (body, kind, loc) in cases {
        let (status, detail) = server.detail(Method::POST, "/api/download", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!((&detail[0]["type"], &detail[0]["loc"]), (&json!(kind), &loc), "{body}: {detail}");
        assert!(detail[0]["msg"].is_string(), "{detail}");
    }
    let response = server
        .request(Method::POST, "/api/download")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["type"], "json_invalid", "{body}");

    // URLs haul cannot fetch, and pages yt-dlp cannot read.
    for url in ["ftp://example.com/a.mp4", "not a url", "file:///etc/passwd"] {
        let (status, detail) = server.detail(Method::POST, "/api/download", Some(json!({"url": url}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {detail}");
        assert!(detail.as_str().unwrap().starts_with("Petición no válida"), "{detail}");
    }
    let nowhere = json!({"url": "http://127.0.0.1:9/nothing-listens-here"});
    let (status, detail) = server.detail(Method::POST, "/api/info", Some(nowhere)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{detail}");
    assert!(detail.as_str().unwrap().starts_with("No se pudo obtener la información"), "{detail}");
    let (status, detail) = server.detail(Method::POST, "/api/info", Some(json!({}))).await;
    assert_eq!((status, &detail[0]["type"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("missing")), "{detail}");
    let (list_status, tasks) = server.call(Method::GET, "/api/downloads", None).await;
    assert_eq!((list_status, tasks.as_array().unwrap().len()), (StatusCode::OK, 1), "refused requests add nothing");

    // FastAPI's own answers for unknown paths and methods.
    let (status, detail) = server.detail(Method::GET, "/api/download", None).await;
    assert_eq!((status, detail), (StatusCode::METHOD_NOT_ALLOWED, json!("Method Not Allowed")));
    let (status, detail) = server.detail(Method::GET, "/api/nothing/here", None).await;
    assert_eq!((status, detail), (StatusCode::NOT_FOUND, json!("Not Found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_requests_without_media_tools_say_what_is_missing() {
    let server = Harness::start_with_tools(TOKEN, OriginOptions::default(), haul_engine::MediaTools::none()).await;
    let audio = json!({"url": server.origin.url(10, "a.mp4"), "download_type": "audio"});
    let (status, detail) = server.detail(Method::POST, "/api/download", Some(audio)).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(detail.as_str().unwrap().contains("ffmpeg"), "{detail}");
    let (status, detail) = server.detail(Method::POST, "/api/info", Some(json!({"url": "http://127.0.0.1:9/v"}))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{detail}");
    assert!(detail.as_str().unwrap().contains("yt-dlp"), "{detail}");
    // Plain files still download.
    let id = server.app_add(json!({"url": server.origin.url(1000, "plain.bin"), "quality": "480p"})).await;
    let task = server.app_wait(&id, "completed").await;
    assert_eq!((task["quality"].as_str(), task["download_type"].as_str()), (Some("480p"), Some("video")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_by_header_or_query_and_the_open_mode() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let url = |path: &str| format!("{}{path}", server.base);
    for request in [
        server.client.get(url("/api/downloads")),
        server.client.get(url("/api/downloads")).bearer_auth("wrong"),
        server.client.get(url("/api/downloads?token=wrong")),
        server.client.get(url("/api/downloads")).basic_auth("user", Some(TOKEN)),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains("Bearer"), "{body}");
    }
    let response = server.client.get(url(&format!("/api/downloads?token={TOKEN}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Open: no token needed, and the downloads belong to the default account (seen with its token on /v1).
    let open = Harness::start_with(TOKEN, OriginOptions::default(), |options| options.open_ytdlp_app = true).await;
    let response = open
        .client
        .post(format!("{}/api/download", open.base))
        .json(&json!({"url": open.origin.url(1000, "open.bin")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.json::<Value>().await.unwrap()["download_id"].as_str().unwrap().to_owned();
    let (status, native) = open.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    // Only the yt-dlp app is open: the other APIs still want the token.
    let response = open.client.get(format!("{}/v1/downloads", open.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_see_only_their_own_tasks() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let other_token = "other-account-token-9876543210";
    server.server.add_account("other", None, haul_core::account::KeyKind::Bearer, other_token).await;
    let mine = server.app_add(json!({"url": server.origin.url(1000, "mine.bin")})).await;
    server.app_wait(&mine, "completed").await;

    let other = |method: Method, path: &str| {
        server.client.request(method, format!("{}{path}", server.base)).bearer_auth(other_token)
    };
    let tasks: Value = other(Method::GET, "/api/downloads").send().await.unwrap().json().await.unwrap();
    assert_eq!(tasks, json!([]));
    for (method, path) in [
        (Method::GET, format!("/api/download/{mine}/file")),
        (Method::DELETE, format!("/api/downloads/{mine}")),
        (Method::DELETE, format!("/api/downloads/{mine}/remove")),
        (Method::GET, format!("/api/stream/mine__{mine}.bin")),
    ] {
        let response = other(method, &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(server.app_task(&mine).await.unwrap()["status"], "completed", "untouched by the other account");
    assert!(server.downloads_dir.join(format!("mine__{mine}.bin")).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_can_be_moved() {
    let server = Harness::start_with(TOKEN, OriginOptions::default(), |options| {
        options.mounts.set("ytdlp-app=/yt").unwrap();
    })
    .await;
    let id = server.app_add_at("/yt", json!({"url": server.origin.url(1000, "moved.bin")})).await;
    std::fs::create_dir_all(server.server.thumbnails_dir()).unwrap();
    std::fs::write(server.server.thumbnails_dir().join(format!("{id}.png")), b"png").unwrap();
    let (status, tasks) = server.call(Method::GET, "/yt/downloads", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tasks[0]["id"], id.as_str());
    let thumbnail = server.request(Method::GET, &format!("/yt/thumbnails/{id}")).send().await.unwrap();
    assert_eq!(thumbnail.status(), StatusCode::OK, "thumbnails follow the mount");
    // Nothing is left at the old mount (the native API's 404 answers there).
    let (status, body) = server.call(Method::GET, "/api/downloads", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

impl Harness {
    async fn app_add_at(&self, mount: &str, body: Value) -> String {
        let (status, answer) = self.call(Method::POST, &format!("{mount}/download"), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["download_id"].as_str().unwrap().to_owned()
    }
}
