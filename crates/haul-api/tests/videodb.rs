//! The VideoDB download-jobs dialect (seed 002, dialects.md section 3) end to end: a real engine on SQLite, a
//! real origin, the router on 127.0.0.1:0, driven with reqwest the way a VideoDB client drives VideoDB.

use std::time::{Duration, SystemTime};

mod common;

use common::Harness;
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_test_support::OriginOptions;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "native-token-0123456789";
const KEY: &str = "sk-videodb-alice-0123456789abcdef";
const OTHER_KEY: &str = "sk-videodb-bob-0123456789abcdef";
const LINK_KEY: &[u8] = b"videodb-test-link-key-0123456789abcdef";

impl Harness {
    /// A VideoDB request to `path` under the default mount, with `key` as its access token.
    fn videodb(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, format!("{}/videodb{path}", self.base)).header("x-access-token", key)
    }

    /// A new account whose VideoDB key is `key`.
    async fn videodb_account(&self, name: &str, key: &str) -> AccountId {
        self.server.add_account(name, None, KeyKind::Videodb, key).await
    }

    /// `POST /download`, checked field by field; the job's id and `output_url`.
    async fn add(&self, key: &str, body: Value) -> (String, String) {
        let (status, answer) = send(self.videodb(Method::POST, "/download", key).json(&body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let id = answer["data"]["id"].as_str().unwrap().to_owned();
        id.parse::<DownloadId>().unwrap();
        let output_url = answer["data"]["output_url"].as_str().unwrap().to_owned();
        assert_eq!(
            answer,
            json!({"success": true, "status": "processing", "data": {"id": id, "output_url": output_url}})
        );
        assert_eq!(output_url, format!("{}/videodb/download/{id}/output", self.base), "where the outcome is polled");
        (id, output_url)
    }

    /// `GET /download/{id}`'s `data` once its status is `status`.
    async fn wait_for(&self, key: &str, id: &str, status: &str) -> Value {
        for _ in 0..600 {
            let (code, answer) = send(self.videodb(Method::GET, &format!("/download/{id}"), key)).await;
            assert_eq!(code, StatusCode::OK, "{answer}");
            assert_eq!((&answer["success"], &answer["status"]), (&json!(true), &answer["data"]["status"]));
            if answer["status"] == status {
                return answer["data"].clone();
            }
            assert_ne!(answer["status"], "error", "download failed while waiting for {status}: {answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("download {id} never reached {status}");
    }

    /// `GET /download` with `query`: the `downloads` array.
    async fn list(&self, key: &str, query: &str) -> Vec<Value> {
        let (status, answer) = send(self.videodb(Method::GET, &format!("/download{query}"), key)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["success"], true, "{answer}");
        answer["data"]["downloads"].as_array().unwrap().clone()
    }

    /// The files left in the downloads directory.
    fn files_on_disk(&self) -> Vec<String> {
        match std::fs::read_dir(&self.downloads_dir) {
            Ok(entries) => entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Sends `request`, expecting a JSON answer.
async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// Sends `request`, expecting a failure in VideoDB's shape with `expected` status; returns the message.
async fn failure(request: RequestBuilder, expected: StatusCode) -> String {
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|value| value.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(status, expected, "{text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_owned();
    assert!(!message.is_empty());
    assert_eq!(body, json!({"success": false, "message": message}));
    message
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The origin's bytes for `url`, fetched as any client would.
async fn origin_sha256(url: &str) -> String {
    sha256_hex(&reqwest::get(url).await.unwrap().error_for_status().unwrap().bytes().await.unwrap())
}

/// A link with the value of `parameter` replaced by `edit(value)`.
fn edit_parameter(link: &str, parameter: &str, edit: impl Fn(&str) -> String) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if name == parameter => format!("{name}={}", edit(value)),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The part of a signed link that does not change with the time it was made.
fn link_target(link: &str) -> &str {
    link.split("&expires=").next().unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn slow_origin() -> OriginOptions {
    OriginOptions { per_connection_rate: Some(64 * 1024), ..OriginOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_poll_fetch_and_list_as_a_videodb_client() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    server.videodb_account("alice", KEY).await;
    let size = 3 * 1024 * 1024 + 7;
    let url = server.origin.url(size, "clip.bin");
    let (id, output_url) = server.add(KEY, json!({"stream_link": url, "name": "My clip"})).await;

    let job = server.wait_for(KEY, &id, "done").await;
    let download_url = job["download_url"].as_str().unwrap().to_owned();
    assert_eq!(
        job,
        json!({"id": id, "name": "My clip", "status": "done", "created_at": job["created_at"],
               "output_url": output_url, "percentage": 100.0, "download_url": download_url})
    );
    let created_at = humantime::parse_rfc3339(job["created_at"].as_str().unwrap()).unwrap();
    let age = SystemTime::now().duration_since(created_at).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "created_at is now, in RFC 3339: {job}");
    // The output URL, as the SDK polls it with its key, answers the finished job.
    let (status, outcome) = send(server.client.get(&output_url).header("x-access-token", KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&outcome["success"], &outcome["status"]), (&json!(true), &json!("done")), "{outcome}");
    let polled_link = outcome["data"]["download_url"].as_str().unwrap().to_owned();
    assert_eq!(link_target(&polled_link), link_target(&download_url));

    // The link works without any credentials, byte for byte, under the job's name.
    let expected = origin_sha256(&url).await;
    for link in [&download_url, &polled_link] {
        let response = reqwest::get(link).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{link}");
        let disposition = response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
        assert!(disposition.contains("My clip.bin"), "{disposition}");
        assert_eq!(sha256_hex(&response.bytes().await.unwrap()), expected);
    }

    // The list shows the same job; the signed link may have been made a second later.
    let listed = server.list(KEY, "").await;
    assert_eq!(listed.len(), 1);
    let mut entry = listed[0].clone();
    assert_eq!(link_target(entry["download_url"].as_str().unwrap()), link_target(&download_url));
    entry["download_url"] = job["download_url"].clone();
    assert_eq!(entry, job);

    // Paging, newest first.
    let (second, _) = server.add(KEY, json!({"stream_link": server.origin.url(1000, "two.bin")})).await;
    let (third, _) = server.add(KEY, json!({"stream_link": server.origin.url(1000, "three.bin")})).await;
    let ids = |jobs: Vec<Value>| jobs.iter().map(|job| job["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(server.list(KEY, "").await), [third.as_str(), second.as_str(), id.as_str()]);
    assert_eq!(ids(server.list(KEY, "?page_index=0&count=2").await), [third.as_str(), second.as_str()]);
    assert_eq!(ids(server.list(KEY, "?page_index=1&count=2").await), [id.as_str()]);
    assert_eq!(ids(server.list(KEY, "?page_index=2&count=2").await), Vec::<String>::new());
    assert_eq!(ids(server.list(KEY, "?count=5000").await).len(), 3);

    for query in ["?count=5001", "?count=0", "?count=ten", "?page_index=-1", "?page_index=x&count=2"] {
        let message =
            failure(server.videodb(Method::GET, &format!("/download{query}"), KEY), StatusCode::BAD_REQUEST).await;
        assert!(message.contains("page_index") || message.contains("count"), "{query}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_query_and_by_json_body_removes_the_job_and_its_file() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    server.videodb_account("alice", KEY).await;
    let (by_query, query_link) = server.add(KEY, json!({"stream_link": server.origin.url(70_000, "one.bin")})).await;
    let (by_body, body_link) = server.add(KEY, json!({"stream_link": server.origin.url(70_000, "two.bin")})).await;
    server.wait_for(KEY, &by_query, "done").await;
    server.wait_for(KEY, &by_body, "done").await;
    assert_eq!(server.files_on_disk().len(), 2, "{:?}", server.files_on_disk());

    let (status, answer) =
        send(server.videodb(Method::DELETE, &format!("/download?download_id={by_query}"), KEY)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true, "message": "Download deleted"})));
    // As the seed's Python example sends it: `requests.delete(url, headers=..., json={"download_id": ...})`.
    let request = server.videodb(Method::DELETE, "/download", KEY).json(&json!({"download_id": by_body}));
    let (status, answer) = send(request).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true, "message": "Download deleted"})));

    for (id, link) in [(&by_query, &query_link), (&by_body, &body_link)] {
        let message =
            failure(server.videodb(Method::GET, &format!("/download/{id}"), KEY), StatusCode::NOT_FOUND).await;
        assert!(message.contains(id.as_str()), "{message}");
        failure(server.videodb(Method::DELETE, &format!("/download?download_id={id}"), KEY), StatusCode::NOT_FOUND)
            .await;
        // The output URL handed out before the delete now leads nowhere.
        let gone = server.client.get(link.as_str()).header("x-access-token", KEY).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(server.files_on_disk(), Vec::<String>::new());
    assert_eq!(server.list(KEY, "").await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_download_cancels_it_and_leaves_nothing() {
    let server = Harness::start(TOKEN, slow_origin()).await;
    let account = server.videodb_account("alice", KEY).await;
    let (id, output_url) =
        server.add(KEY, json!({"stream_link": server.origin.url(16 * 1024 * 1024, "slow.bin")})).await;
    let download_id: DownloadId = id.parse().unwrap();
    // Wait until bytes are on disk, so the delete below has a running fetch to stop.
    let mut running = false;
    for _ in 0..600 {
        let view = server.engine.get(&account, download_id).await.unwrap();
        if view.state == JobState::Active && view.bytes_done > 0 {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running, "the slow download never started");

    // Running: processing, with neither a download_url nor an error yet; the output URL says so.
    let job = server.wait_for(KEY, &id, "processing").await;
    assert_eq!(
        job,
        json!({"id": id, "name": "slow.bin", "status": "processing", "created_at": job["created_at"],
               "output_url": output_url, "percentage": job["percentage"]})
    );
    let (_, outcome) = send(server.client.get(&output_url).header("x-access-token", KEY)).await;
    assert_eq!((&outcome["success"], &outcome["status"]), (&json!(true), &json!("processing")), "{outcome}");
    failure(server.client.get(&output_url), StatusCode::UNAUTHORIZED).await;
    assert!(
        server.files_on_disk().iter().any(|name| name.starts_with("slow.bin.part")),
        "{:?}",
        server.files_on_disk()
    );

    let request = server.videodb(Method::DELETE, "/download", KEY).json(&json!({"download_id": id}));
    let (status, answer) = send(request).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true, "message": "Download deleted"})));
    failure(server.videodb(Method::GET, &format!("/download/{id}"), KEY), StatusCode::NOT_FOUND).await;
    assert_eq!(server.list(KEY, "").await, Vec::<Value>::new());
    assert_eq!(server.files_on_disk(), Vec::<String>::new(), "no .part or .part.haul left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answers_in_videodb_shape() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let account = server.videodb_account("alice", KEY).await;
    let bearer_secret = "sk-bearer-not-videodb-0123456789";
    server.server.add_key(&account, KeyKind::Bearer, bearer_secret).await;
    let revoked_secret = "sk-videodb-revoked-0123456789";
    let carol = server.videodb_account("carol", revoked_secret).await;
    assert!(server.list(revoked_secret, "").await.is_empty(), "the key works until it is revoked");
    server.server.revoke_keys(&carol).await;

    // 401: no key, a wrong one, the native token, a bearer-kind key, a revoked key; on every route.
    let list_url = format!("{}/videodb/download", server.base);
    let unknown = "550e8400-e29b-41d4-a716-446655440000";
    for key in [None, Some(""), Some("sk-wrong"), Some(TOKEN), Some(bearer_secret), Some(revoked_secret)] {
        for (method, path) in [
            (Method::GET, "/download".to_owned()),
            (Method::POST, "/download".to_owned()),
            (Method::DELETE, format!("/download?download_id={unknown}")),
            (Method::GET, format!("/download/{unknown}")),
        ] {
            let mut request = server.client.request(method.clone(), format!("{}/videodb{path}", server.base));
            if let Some(key) = key {
                request = request.header("x-access-token", key);
            }
            let request = request.json(&json!({"stream_link": server.origin.url(10, "a.bin")}));
            let message = failure(request, StatusCode::UNAUTHORIZED).await;
            assert!(message.contains("x-access-token: sk-"), "{key:?} {method} {path}: {message}");
            assert!(message.contains("haul key create --account NAME --kind videodb"), "{message}");
        }
    }
    // The native bearer scheme is not VideoDB's.
    failure(server.client.get(&list_url).bearer_auth(TOKEN), StatusCode::UNAUTHORIZED).await;

    // 404: an unknown id, an unknown path.
    for (method, path) in [
        (Method::GET, format!("/download/{unknown}")),
        (Method::DELETE, format!("/download?download_id={unknown}")),
        (Method::GET, "/nope".to_owned()),
        (Method::GET, "/download/a/b".to_owned()),
        (Method::GET, "".to_owned()),
    ] {
        failure(server.videodb(method, &path, KEY), StatusCode::NOT_FOUND).await;
    }
    // 400: an id that cannot be one.
    for (method, path) in [(Method::GET, "/download/download-abc123"), (Method::DELETE, "/download?download_id=nope")] {
        let message = failure(server.videodb(method, path, KEY), StatusCode::BAD_REQUEST).await;
        assert!(message.contains("download_id"), "{message}");
    }

    // 405: a wrong method on a route that exists.
    for (method, path) in [
        (Method::PUT, "/download".to_owned()),
        (Method::PATCH, "/download".to_owned()),
        (Method::POST, format!("/download/{unknown}")),
        (Method::DELETE, format!("/download/{unknown}")),
    ] {
        failure(server.videodb(method, &path, KEY), StatusCode::METHOD_NOT_ALLOWED).await;
    }

    // 400: bodies that are not a download request.
    let post = || server.videodb(Method::POST, "/download", KEY);
    for request in [
        post().body("{not json"),
        post().body(""),
        post().json(&json!([])),
        post().json(&json!({})),
        post().json(&json!({"name": "no link"})),
        post().json(&json!({"stream_link": ""})),
        post().json(&json!({"stream_link": 5})),
        post().json(&json!({"stream_link": "ftp://example.com/a.bin"})),
        post().json(&json!({"stream_link": "not a url"})),
        post().json(&json!({"stream_link": server.origin.url(10, "a.bin"), "name": "bad\u{7}name"})),
    ] {
        failure(request, StatusCode::BAD_REQUEST).await;
    }
    let message = failure(post().json(&json!({"name": "x"})), StatusCode::BAD_REQUEST).await;
    assert!(message.contains("stream_link"), "{message}");

    // 400: a DELETE that does not say which job.
    let delete = || server.videodb(Method::DELETE, "/download", KEY);
    for request in [
        delete(),
        delete().json(&json!({})),
        delete().json(&json!({"id": unknown})),
        delete().body("{not json"),
        server.videodb(Method::DELETE, "/download?download_id=", KEY),
        server
            .videodb(Method::DELETE, &format!("/download?download_id={unknown}"), KEY)
            .json(&json!({"download_id": "other"})),
    ] {
        let message = failure(request, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("download_id") || message.contains("JSON"), "{message}");
    }

    assert!(server.list(KEY, "").await.is_empty(), "nothing was queued by the refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_refuse_tampering_and_expiry() {
    let server = Harness::start_with(TOKEN, OriginOptions::default(), |options| {
        options.links = haul_api::LinkSigner::new(LINK_KEY.to_vec());
    })
    .await;
    let account = server.videodb_account("alice", KEY).await;
    let (id, _) = server.add(KEY, json!({"stream_link": server.origin.url(50_000, "signed.bin")})).await;
    let job = server.wait_for(KEY, &id, "done").await;
    let link = job["download_url"].as_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::OK);

    let flip = |value: &str| {
        let mut chars: Vec<char> = value.chars().collect();
        chars[0] = if chars[0] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let later = |value: &str| (value.parse::<u64>().unwrap() + 1).to_string();
    let download_id: DownloadId = id.parse().unwrap();
    let signer = haul_api::LinkSigner::new(LINK_KEY.to_vec());
    let expired = signer.link_expiring(&server.base, &account, download_id, "file", unix_now() - 60);
    let fresh = signer.link_expiring(&server.base, &account, download_id, "file", unix_now() + 60);
    assert_eq!(reqwest::get(&fresh).await.unwrap().status(), StatusCode::OK, "the test signs as the server does");
    for tampered in [
        edit_parameter(&link, "signature", flip),
        edit_parameter(&link, "expires", later),
        link.replace("/file?", "/audio?"),
        expired,
    ] {
        assert_eq!(reqwest::get(&tampered).await.unwrap().status(), StatusCode::FORBIDDEN, "{tampered}");
    }

    let (status, _) = send(server.videodb(Method::DELETE, &format!("/download?download_id={id}"), KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::NOT_FOUND, "deleted since");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_sees_only_its_own_jobs() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    server.videodb_account("alice", KEY).await;
    server.videodb_account("bob", OTHER_KEY).await;
    let (alice_job, _) = server.add(KEY, json!({"stream_link": server.origin.url(20_000, "alice.bin")})).await;
    let (bob_job, _) = server.add(OTHER_KEY, json!({"stream_link": server.origin.url(20_000, "bob.bin")})).await;
    server.wait_for(KEY, &alice_job, "done").await;
    server.wait_for(OTHER_KEY, &bob_job, "done").await;

    let ids = |jobs: Vec<Value>| jobs.iter().map(|job| job["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(server.list(KEY, "").await), [alice_job.as_str()]);
    assert_eq!(ids(server.list(OTHER_KEY, "").await), [bob_job.as_str()]);

    // Bob cannot see or delete Alice's job, by query or by body; it is as if it did not exist.
    failure(server.videodb(Method::GET, &format!("/download/{alice_job}"), OTHER_KEY), StatusCode::NOT_FOUND).await;
    let by_query = server.videodb(Method::DELETE, &format!("/download?download_id={alice_job}"), OTHER_KEY);
    failure(by_query, StatusCode::NOT_FOUND).await;
    let by_body = server.videodb(Method::DELETE, "/download", OTHER_KEY).json(&json!({"download_id": alice_job}));
    failure(by_body, StatusCode::NOT_FOUND).await;

    let job = server.wait_for(KEY, &alice_job, "done").await;
    let bytes = reqwest::get(job["download_url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(20_000, "alice.bin"));
    assert!(server.files_on_disk().contains(&"alice.bin".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_videodb_job_is_the_same_job_in_the_native_api() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    server.server.add_key(&server.account, KeyKind::Videodb, KEY).await;

    // Made through VideoDB, read natively.
    let size = 100_000;
    let (id, _) =
        server.add(KEY, json!({"stream_link": server.origin.url(size, "both.bin"), "name": "Both ways"})).await;
    server.wait_for(KEY, &id, "done").await;
    let (status, native) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!(native["id"], id.as_str());
    assert_eq!(native["state"], "completed");
    assert_eq!(native["title"], "Both ways");
    assert_eq!(native["path"], "both.bin");
    assert_eq!(native["bytes_done"], size);

    // Made natively, read through VideoDB: named after its URL until the file has a name, then after the file.
    let (status, native) = server
        .call(
            Method::POST,
            "/v1/downloads",
            Some(json!({"url": server.origin.url(10, "native.bin?x=1"), "paused": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{native}");
    let paused = native["id"].as_str().unwrap().to_owned();
    let job = server.wait_for(KEY, &paused, "processing").await;
    assert_eq!(job["name"], "native.bin");

    // Cancelled natively: an error, saying why.
    let (status, native) = server.call(Method::POST, &format!("/v1/downloads/{paused}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    let (status, answer) = send(server.videodb(Method::GET, &format!("/download/{paused}"), KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&answer["status"], &answer["data"]["status"]), (&json!("error"), &json!("error")));
    assert!(answer["data"]["error"].as_str().is_some_and(|error| !error.is_empty()), "{answer}");
    assert!(answer["data"].get("download_url").is_none(), "{answer}");

    // A failed fetch: an error with the origin's reason.
    let (failed, _) =
        server.add(KEY, json!({"stream_link": format!("{}/missing.bin", server.origin.base_url())})).await;
    let mut answer = Value::Null;
    for _ in 0..600 {
        answer = send(server.videodb(Method::GET, &format!("/download/{failed}"), KEY)).await.1;
        if answer["status"] != "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer["data"]["status"], "error", "{answer}");
    assert!(answer["data"]["error"].as_str().unwrap().contains("404"), "{answer}");
    assert_eq!(answer["data"]["name"], "missing.bin");

    // Deleted through VideoDB, gone natively.
    let (status, _) = send(server.videodb(Method::DELETE, &format!("/download?download_id={id}"), KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
