//! The Cloudflare Stream dialect (seed 003, dialects.md section 4) end to end: a real engine on SQLite, a real
//! origin, the router on 127.0.0.1:0, driven with reqwest the way a Stream client drives
//! `api.cloudflare.com/client/v4`.

use std::time::Duration;

mod common;

use common::Harness;
use haul_core::account::KeyKind;
use haul_core::job::{AccountId, DownloadId};
use haul_test_support::OriginOptions;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "cloudflare-token-0123456789";
const LINK_KEY: &[u8] = b"cloudflare-test-link-key-0123456789abcdef";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `…/stream/{32 hex}` names the job whose id is the same digits hyphenated.
fn download_id(uid: &str) -> DownloadId {
    assert_eq!(uid.len(), 32, "{uid}");
    format!("{}-{}-{}-{}-{}", &uid[..8], &uid[8..12], &uid[12..16], &uid[16..20], &uid[20..]).parse().unwrap()
}

/// How a caller presents itself.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a str),
    Global { email: &'a str, key: &'a str },
    None,
}

impl Harness {
    /// `/client/v4/accounts/{account}/stream{rest}`.
    fn stream(&self, account: &AccountId, rest: &str) -> String {
        format!("{}/client/v4/accounts/{account}/stream{rest}", self.base)
    }

    fn cf(&self, auth: Auth<'_>, method: Method, url: &str) -> RequestBuilder {
        let request = self.client.request(method, url);
        match auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Global { email, key } => request.header("X-Auth-Email", email).header("X-Auth-Key", key),
            Auth::None => request,
        }
    }

    /// The default account's call with its bearer token, expecting success; answers `result`.
    async fn ok(&self, method: Method, rest: &str, body: Option<Value>) -> Value {
        let mut request = self.cf(Auth::Bearer(&self.token), method.clone(), &self.stream(&self.account, rest));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = envelope(request).await;
        assert_eq!(status, StatusCode::OK, "{method} {rest}: {answer}");
        assert_eq!(answer["success"], true, "{answer}");
        answer["result"].clone()
    }

    /// The default account's call with its bearer token, expecting a failure; answers its message.
    async fn fails(&self, method: Method, rest: &str, status: StatusCode, code: u64) -> String {
        let request = self.cf(Auth::Bearer(&self.token), method.clone(), &self.stream(&self.account, rest));
        refused(request, status, code).await
    }

    /// Polls the video until it is ready to stream.
    async fn wait_ready(&self, auth: Auth<'_>, account: &AccountId, uid: &str) -> Value {
        for _ in 0..600 {
            let (status, answer) =
                envelope(self.cf(auth, Method::GET, &self.stream(account, &format!("/{uid}")))).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let video = &answer["result"];
            if video["readyToStream"] == true {
                return video.clone();
            }
            assert_ne!(video["status"]["state"], "error", "the download failed: {video}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("video {uid} never became ready");
    }

    /// Copies `url` into `account` and answers the new video.
    async fn copy(&self, auth: Auth<'_>, account: &AccountId, body: Value) -> Value {
        let (status, answer) = envelope(self.cf(auth, Method::POST, &self.stream(account, "/copy")).json(&body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["result"].clone()
    }
}

/// Sends `request` and checks that the answer is Cloudflare's envelope, whatever its status.
async fn envelope(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{status}: {content_type}");
    let answer: Value = response.json().await.unwrap();
    let object = answer.as_object().unwrap_or_else(|| panic!("not an object: {answer}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["errors", "messages", "result", "success"], "{answer}");
    assert_eq!(answer["messages"], json!([]), "{answer}");
    assert_eq!(answer["success"], status.is_success(), "{status}: {answer}");
    if status.is_success() {
        assert_eq!(answer["errors"], json!([]), "{answer}");
    } else {
        assert_eq!(answer["result"], Value::Null, "{answer}");
        assert_eq!(answer["errors"].as_array().unwrap().len(), 1, "{answer}");
    }
    (status, answer)
}

/// Sends `request`, expecting the envelope of a failure with `status` and `code`; answers its message.
async fn refused(request: RequestBuilder, status: StatusCode, code: u64) -> String {
    let (actual, answer) = envelope(request).await;
    assert_eq!(actual, status, "{answer}");
    let error = &answer["errors"][0];
    assert_eq!(error["code"], code, "{answer}");
    let message = error["message"].as_str().unwrap();
    assert!(!message.is_empty(), "{answer}");
    message.to_owned()
}

/// Checks the video object's fields that do not depend on progress.
fn check_video_shape(video: &Value, url: &str, name: &str) {
    let uid = video["uid"].as_str().unwrap();
    assert!(uid.len() == 32 && uid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{video}");
    assert_eq!(video["meta"], json!({"name": name, "downloaded-from": url}), "{video}");
    assert_eq!(video["thumbnail"], "", "{video}");
    assert_eq!(video["duration"], -1, "{video}");
    assert_eq!(video["input"], json!({"width": -1, "height": -1}), "{video}");
    for field in ["created", "modified"] {
        let time = video[field].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{field} is RFC 3339: {video}");
    }
    let percent: f64 = video["status"]["pctComplete"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&percent), "{video}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_client_copies_a_video_and_downloads_it_with_a_bearer_token() {
    // Throttled so that the download is still in progress when the client first asks for it.
    let server =
        Harness::start(TOKEN, OriginOptions { per_connection_rate: Some(512 * 1024), ..Default::default() }).await;
    let size = 2 * 1024 * 1024 + 7;
    let url = server.origin.url(size, "clip.mp4");

    let video = server.ok(Method::POST, "/copy", Some(json!({"url": url, "meta": {"name": "My First Video"}}))).await;
    check_video_shape(&video, &url, "My First Video");
    assert_eq!(video["status"], json!({"state": "queued", "pctComplete": "0"}), "{video}");
    assert_eq!((video["readyToStream"].as_bool(), video["size"].as_u64()), (Some(false), Some(0)), "{video}");
    assert_eq!(video["created"], video["modified"], "{video}");
    assert!(video.get("uploaded").is_none(), "{video}");
    let uid = video["uid"].as_str().unwrap().to_owned();

    // The `default` download, asked for while the video is still being fetched.
    let created = server.ok(Method::POST, &format!("/{uid}/downloads"), None).await;
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["default"], "{created}");
    assert_eq!(created["default"]["status"], "inprogress", "{created}");
    let link = created["default"]["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/links/{}/default?", server.base, download_id(&uid))), "{link}");

    // Poll the downloads until `default` is ready; its progress never goes back.
    let mut last_percent = 0.0;
    let download = loop {
        let downloads = server.ok(Method::GET, &format!("/{uid}/downloads"), None).await;
        let download = downloads["default"].clone();
        let percent = download["percentComplete"].as_f64().unwrap();
        assert!((last_percent..=100.0).contains(&percent), "{last_percent} then {download}");
        last_percent = percent;
        match download["status"].as_str().unwrap() {
            "ready" => break download,
            "inprogress" => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected download status {other}: {download}"),
        }
    };
    assert_eq!(download["percentComplete"], 100.0, "{download}");

    // The video, field by field, once ready.
    let video = server.wait_ready(Auth::Bearer(TOKEN), &server.account, &uid).await;
    check_video_shape(&video, &url, "My First Video");
    assert_eq!(video["uid"], uid.as_str());
    assert_eq!(video["status"], json!({"state": "ready", "pctComplete": "100"}), "{video}");
    assert_eq!(video["size"], size, "{video}");
    assert_eq!(video["uploaded"], video["modified"], "{video}");
    assert!(video["modified"].as_str().unwrap() >= video["created"].as_str().unwrap(), "{video}");
    let listed = server.ok(Method::GET, "", None).await;
    assert_eq!(listed, json!([video]));

    // The link needs no credentials and serves the origin's bytes exactly.
    let from_origin = server.client.get(&url).send().await.unwrap().bytes().await.unwrap();
    let response = reqwest::get(&link).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(sha256_hex(&bytes), sha256_hex(&from_origin));
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "clip.mp4"));

    // Only what was created is listed. This "video" is random bytes, so its audio download ends in `error`
    // (real media is in tests/media.rs).
    let downloads = server.ok(Method::GET, &format!("/{uid}/downloads"), None).await;
    assert_eq!(downloads.as_object().unwrap().keys().collect::<Vec<_>>(), ["default"], "{downloads}");
    let audio = server.ok(Method::POST, &format!("/{uid}/downloads/audio"), None).await;
    assert_eq!(audio.as_object().unwrap().keys().collect::<Vec<_>>(), ["audio"], "{audio}");
    let failed = loop {
        let downloads = server.ok(Method::GET, &format!("/{uid}/downloads"), None).await;
        assert_eq!(downloads.as_object().unwrap().keys().collect::<Vec<_>>(), ["audio", "default"], "{downloads}");
        if downloads["audio"]["status"] == "error" {
            break downloads;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["default"]["status"], "ready", "{failed}");

    // Seed 003, exactly.
    let response =
        server.cf(Auth::Bearer(TOKEN), Method::DELETE, &server.stream(&server.account, &format!("/{uid}/downloads")));
    let (status, answer) = envelope(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"errors": [], "messages": [], "success": true, "result": "ok"}));
    assert_eq!(server.ok(Method::GET, &format!("/{uid}/downloads"), None).await, json!({}));

    // The video and its file stay.
    let file = server.downloads_dir.join("clip.mp4");
    assert_eq!(sha256_hex(&std::fs::read(&file).unwrap()), sha256_hex(&from_origin));
    assert_eq!(server.ok(Method::GET, &format!("/{uid}"), None).await, video);

    // Deleting the video takes its file.
    assert_eq!(server.ok(Method::DELETE, &format!("/{uid}"), None).await, "ok");
    assert!(!file.exists(), "{} is still there", file.display());
    server.fails(Method::GET, &format!("/{uid}"), StatusCode::NOT_FOUND, 10404).await;
    server.fails(Method::GET, &format!("/{uid}/downloads"), StatusCode::NOT_FOUND, 10404).await;
    assert_eq!(server.ok(Method::GET, "", None).await, json!([]));
    assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_key_acts_only_with_its_email_and_only_for_its_account() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    const EMAIL: &str = "ops@example.com";
    const GLOBAL_KEY: &str = "144c9defac04969c7bfad8efaa8ea194";
    const BETA_TOKEN: &str = "beta-token-0123456789";
    let alpha = server.server.add_account("alpha", Some(EMAIL), KeyKind::CloudflareGlobal, GLOBAL_KEY).await;
    let beta = server.server.add_account("beta", Some("beta@example.com"), KeyKind::Bearer, BETA_TOKEN).await;
    let global = Auth::Global { email: EMAIL, key: GLOBAL_KEY };

    // The whole flow with the global key.
    let size = 300 * 1024 + 1;
    let url = server.origin.url(size, "global.bin");
    let video = server.copy(global, &alpha, json!({"url": url, "meta": {"name": "Global"}})).await;
    check_video_shape(&video, &url, "Global");
    let uid = video["uid"].as_str().unwrap().to_owned();
    // Emails are compared without case, as people type them.
    let shouting = Auth::Global { email: "OPS@Example.COM", key: GLOBAL_KEY };
    let video = server.wait_ready(shouting, &alpha, &uid).await;
    assert_eq!(video["size"], size, "{video}");
    let (status, answer) =
        envelope(server.cf(global, Method::POST, &server.stream(&alpha, &format!("/{uid}/downloads")))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let download = &answer["result"]["default"];
    assert_eq!((download["status"].as_str(), download["percentComplete"].as_f64()), (Some("ready"), Some(100.0)));
    let bytes = reqwest::get(download["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), server.origin.handle().file_sha256(size, "global.bin"));
    let (status, answer) =
        envelope(server.cf(global, Method::DELETE, &server.stream(&alpha, &format!("/{uid}/downloads")))).await;
    assert_eq!((status, &answer["result"]), (StatusCode::OK, &json!("ok")));

    // The key counts only with its account's email, and never as a bearer token.
    let list = server.stream(&alpha, "");
    for auth in [
        Auth::Global { email: "someone@example.com", key: GLOBAL_KEY },
        Auth::Global { email: EMAIL, key: "0000000000000000000000000000000" },
        Auth::Global { email: "", key: GLOBAL_KEY },
        Auth::Bearer(GLOBAL_KEY),
    ] {
        refused(server.cf(auth, Method::GET, &list), StatusCode::UNAUTHORIZED, 10000).await;
    }
    refused(server.client.get(&list).header("X-Auth-Key", GLOBAL_KEY), StatusCode::UNAUTHORIZED, 10000).await;
    refused(server.client.get(&list).header("X-Auth-Email", EMAIL), StatusCode::UNAUTHORIZED, 10000).await;

    // A key acts for its own account only: the path's other account is refused, not looked into.
    let video_path = format!("/{uid}");
    for (auth, path) in [
        (global, server.stream(&beta, "")),
        (global, server.stream(&beta, &video_path)),
        (Auth::Bearer(BETA_TOKEN), server.stream(&alpha, "")),
        (Auth::Bearer(BETA_TOKEN), server.stream(&alpha, &video_path)),
        (Auth::Bearer(TOKEN), server.stream(&alpha, &video_path)),
    ] {
        let message = refused(server.cf(auth, Method::GET, &path), StatusCode::FORBIDDEN, 10000).await;
        assert!(message.contains("does not belong to account"), "{message}");
    }
    let message = refused(
        server.cf(global, Method::POST, &server.stream(&beta, "/copy")).json(&json!({"url": url})),
        StatusCode::FORBIDDEN,
        10000,
    )
    .await;
    assert!(message.contains(beta.as_str()), "{message}");
    let (status, answer) = envelope(server.cf(Auth::Bearer(BETA_TOKEN), Method::GET, &server.stream(&beta, ""))).await;
    assert_eq!((status, &answer["result"]), (StatusCode::OK, &json!([])), "nothing was copied into beta");

    let (status, answer) = envelope(server.cf(global, Method::DELETE, &server.stream(&alpha, &video_path))).await;
    assert_eq!((status, &answer["result"]), (StatusCode::OK, &json!("ok")));
    refused(server.cf(global, Method::GET, &server.stream(&alpha, &video_path)), StatusCode::NOT_FOUND, 10404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_answers_in_the_envelope() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let list = server.stream(&server.account, "");

    // 401: no credentials, a bad token, another scheme, a revoked key.
    const GAMMA_TOKEN: &str = "gamma-token-0123456789";
    let gamma = server.server.add_account("gamma", None, KeyKind::Bearer, GAMMA_TOKEN).await;
    let gamma_list = server.stream(&gamma, "");
    let (status, _) = envelope(server.cf(Auth::Bearer(GAMMA_TOKEN), Method::GET, &gamma_list)).await;
    assert_eq!(status, StatusCode::OK);
    server.server.revoke_keys(&gamma).await;
    for request in [
        server.client.get(&list),
        server.cf(Auth::Bearer("wrong"), Method::GET, &list),
        server.client.get(&list).basic_auth("user", Some(TOKEN)),
        server.cf(Auth::Bearer(GAMMA_TOKEN), Method::GET, &gamma_list),
        server
            .cf(Auth::None, Method::POST, &server.stream(&server.account, "/copy"))
            .json(&json!({"url": "http://x/"})),
    ] {
        let message = refused(request, StatusCode::UNAUTHORIZED, 10000).await;
        assert!(message.starts_with("Authentication error"), "{message}");
    }

    // 404: a video that does not exist; a path this API does not have.
    let unknown = "0123456789abcdef0123456789abcdef";
    for (method, rest) in [
        (Method::GET, format!("/{unknown}")),
        (Method::DELETE, format!("/{unknown}")),
        (Method::GET, format!("/{unknown}/downloads")),
        (Method::POST, format!("/{unknown}/downloads")),
        (Method::POST, format!("/{unknown}/downloads/default")),
        (Method::DELETE, format!("/{unknown}/downloads")),
        (Method::DELETE, format!("/{unknown}/downloads/default")),
        (Method::POST, format!("/{unknown}")),
        (Method::GET, format!("/{unknown}/captions")),
        (Method::GET, format!("/{unknown}/downloads/default/extra")),
    ] {
        server.fails(method, &rest, StatusCode::NOT_FOUND, 10404).await;
    }
    for path in ["/client/v4/zones", "/client/v4/accounts", "/client/v4/accounts/x/stream2"] {
        let request = server.cf(Auth::Bearer(TOKEN), Method::GET, &format!("{}{path}", server.base));
        let message = refused(request, StatusCode::NOT_FOUND, 10404).await;
        assert!(message.contains(path), "{message}");
    }

    // 404: an identifier that is not a uid names no video, as Cloudflare answers it (its SDK's NotFoundError).
    for (method, rest) in [
        (Method::GET, "/not-a-uid"),
        (Method::DELETE, "/0123456789abcdef0123456789abcdeg"),
        (Method::GET, "/0123456789abcdef0123456789abcdef0/downloads"),
    ] {
        let message = server.fails(method, rest, StatusCode::NOT_FOUND, 10404).await;
        assert!(message.contains("not found"), "{message}");
    }
    // 400: an unknown download type.
    // The type is judged before the video is looked for.
    for method in [Method::POST, Method::DELETE] {
        let message = server.fails(method, &format!("/{unknown}/downloads/hd"), StatusCode::BAD_REQUEST, 10400).await;
        assert!(message.contains("\"hd\"") && message.contains("default") && message.contains("audio"), "{message}");
    }

    // 405: a method the path does not take.
    for (method, rest) in [
        (Method::GET, "/copy".to_owned()),
        (Method::PUT, format!("/{unknown}")),
        (Method::PATCH, format!("/{unknown}/downloads")),
        (Method::GET, format!("/{unknown}/downloads/default")),
        (Method::DELETE, String::new()),
    ] {
        server.fails(method, &rest, StatusCode::METHOD_NOT_ALLOWED, 10405).await;
    }

    // 400: bodies of copy that are not a video to fetch.
    let copy = server.stream(&server.account, "/copy");
    for body in ["not json", "", "{\"meta\": {\"name\": \"no url\"}}", "{\"url\": 5}", "{\"url\": \"ftp://x\"}"] {
        let request = server.cf(Auth::Bearer(TOKEN), Method::POST, &copy).body(body);
        refused(request, StatusCode::BAD_REQUEST, 10400).await;
    }
    for body in [
        json!({"url": ""}),
        json!({"url": "http://"}),
        json!({"url": server.origin.url(10, "a"), "meta": {"name": 7}}),
        json!({"url": server.origin.url(10, "a"), "meta": {"name": "line\nbreak"}}),
    ] {
        let request = server.cf(Auth::Bearer(TOKEN), Method::POST, &copy).json(&body);
        refused(request, StatusCode::BAD_REQUEST, 10400).await;
    }
    let message = server.fails(Method::POST, "/copy", StatusCode::BAD_REQUEST, 10400).await;
    assert!(message.contains("JSON"), "{message}");
    let huge = format!("{{\"url\": \"http://x/{}\"}}", "a".repeat(haul_api::MAX_JSON_BODY));
    refused(server.cf(Auth::Bearer(TOKEN), Method::POST, &copy).body(huge), StatusCode::PAYLOAD_TOO_LARGE, 10413).await;

    assert_eq!(server.ok(Method::GET, "", None).await, json!([]), "nothing was queued by the refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_links_refuse_tampering_and_expiry() {
    let server = Harness::start_with(TOKEN, OriginOptions::default(), |options| {
        options.links = haul_api::LinkSigner::new(LINK_KEY.to_vec());
    })
    .await;
    let size = 100 * 1024 + 3;
    let video = server.ok(Method::POST, "/copy", Some(json!({"url": server.origin.url(size, "signed.bin")}))).await;
    let uid = video["uid"].as_str().unwrap().to_owned();
    server.wait_ready(Auth::Bearer(TOKEN), &server.account, &uid).await;
    let created = server.ok(Method::POST, &format!("/{uid}/downloads/default"), None).await;
    let link = created["default"]["url"].as_str().unwrap().to_owned();
    let expected = server.origin.handle().file_sha256(size, "signed.bin");
    let fetch = |url: String| async move {
        let response = reqwest::get(&url).await.unwrap();
        (response.status(), response.bytes().await.unwrap())
    };
    let (status, bytes) = fetch(link.clone()).await;
    assert_eq!((status, sha256_hex(&bytes)), (StatusCode::OK, expected.clone()));

    // Any change to the signature or the expiry is refused.
    let (rest, signature) = link.rsplit_once("signature=").unwrap();
    let flipped = if signature.ends_with('0') { "1" } else { "0" };
    let altered_signature = format!("{rest}signature={}{flipped}", &signature[..signature.len() - 1]);
    let expires: u64 = link.split("expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let altered_expiry = link.replace(&format!("expires={expires}"), &format!("expires={}", expires + 1));
    for url in [altered_signature, altered_expiry] {
        assert_eq!(fetch(url.clone()).await.0, StatusCode::FORBIDDEN, "{url}");
    }

    // A link signed with the server's key works until it expires.
    let signer = haul_api::LinkSigner::new(LINK_KEY.to_vec());
    let id = download_id(&uid);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let fresh = signer.link_expiring(&server.base, &server.account, id, "file", now + 60);
    let (status, bytes) = fetch(fresh).await;
    assert_eq!((status, sha256_hex(&bytes)), (StatusCode::OK, expected));
    let expired = signer.link_expiring(&server.base, &server.account, id, "file", now - 1);
    assert_eq!(fetch(expired).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_sees_only_its_own_videos() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    const ONE: &str = "one-token-0123456789";
    const TWO: &str = "two-token-0123456789";
    let one = server.server.add_account("one", None, KeyKind::Bearer, ONE).await;
    let two = server.server.add_account("two", None, KeyKind::Bearer, TWO).await;

    let mut uids = Vec::new();
    for (token, account, name) in [(ONE, &one, "one.bin"), (TWO, &two, "two.bin")] {
        let video = server.copy(Auth::Bearer(token), account, json!({"url": server.origin.url(4096, name)})).await;
        let uid = video["uid"].as_str().unwrap().to_owned();
        // Without meta.name, the name is the file's once haul has chosen it.
        let video = server.wait_ready(Auth::Bearer(token), account, &uid).await;
        assert_eq!(video["meta"]["name"], name, "{video}");
        uids.push(uid);
    }
    for ((token, account), uid) in [(ONE, &one), (TWO, &two)].into_iter().zip(&uids) {
        let (status, answer) = envelope(server.cf(Auth::Bearer(token), Method::GET, &server.stream(account, ""))).await;
        assert_eq!(status, StatusCode::OK);
        let listed: Vec<&str> =
            answer["result"].as_array().unwrap().iter().map(|v| v["uid"].as_str().unwrap()).collect();
        assert_eq!(listed, [uid.as_str()]);
    }

    // Two's video does not exist for one, whatever one tries.
    let theirs = format!("/{}", uids[1]);
    for (method, rest) in [
        (Method::GET, theirs.clone()),
        (Method::DELETE, theirs.clone()),
        (Method::GET, format!("{theirs}/downloads")),
        (Method::POST, format!("{theirs}/downloads")),
        (Method::DELETE, format!("{theirs}/downloads")),
    ] {
        refused(server.cf(Auth::Bearer(ONE), method, &server.stream(&one, &rest)), StatusCode::NOT_FOUND, 10404).await;
    }
    let (status, answer) = envelope(server.cf(Auth::Bearer(TWO), Method::GET, &server.stream(&two, &theirs))).await;
    assert_eq!((status, &answer["result"]["status"]["state"]), (StatusCode::OK, &json!("ready")), "it survived");
    let (status, answer) =
        envelope(server.cf(Auth::Bearer(TWO), Method::GET, &server.stream(&two, &format!("{theirs}/downloads")))).await;
    assert_eq!((status, &answer["result"]), (StatusCode::OK, &json!({})), "no download was made for it");

    // The default account's video is the same job through the native API, and by its hyphenated id here.
    let url = server.origin.url(2048, "native.bin");
    let video = server.ok(Method::POST, "/copy", Some(json!({"url": url, "meta": {"name": "Native"}}))).await;
    let uid = video["uid"].as_str().unwrap().to_owned();
    let video = server.wait_ready(Auth::Bearer(TOKEN), &server.account, &uid).await;
    let id = download_id(&uid);
    assert_eq!(server.ok(Method::GET, &format!("/{id}"), None).await, video);
    let (status, native) = server.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!(native["id"], id.to_string());
    assert_eq!(native["url"], url.as_str());
    assert_eq!(native["title"], "Native");
    assert_eq!(native["state"], "completed");
    assert_eq!(native["size"], 2048);
    let (status, _) = server.call(Method::GET, &format!("/v1/downloads/{}", download_id(&uids[1])), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another account's job stays hidden from the native API too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_keep_meta_and_labels_which_edits_replace_and_lists_filter_on() {
    let server = Harness::start(TOKEN, OriginOptions::default()).await;
    let url = server.origin.url(2048, "clip.bin");
    let body = json!({
        "input": url, "meta": {"name": "Clip", "team": "a", "n": [1, {"x": null}]}, "creator": "ann",
        "thumbnailTimestampPct": 0.25, "requireSignedURLs": true, "allowedOrigins": ["example.com"],
    });
    let video = server.copy(Auth::Bearer(TOKEN), &server.account, body).await;
    assert_eq!(video["meta"], json!({"name": "Clip", "team": "a", "n": [1, {"x": null}], "downloaded-from": url}));
    assert_eq!((&video["creator"], &video["thumbnailTimestampPct"]), (&json!("ann"), &json!(0.25)), "{video}");
    assert_eq!(video["requireSignedURLs"], true, "{video}");
    let uid = video["uid"].as_str().unwrap().to_owned();
    server.wait_ready(Auth::Bearer(TOKEN), &server.account, &uid).await;
    let id = download_id(&uid);
    assert_eq!(server.engine.get(&server.account, id).await.unwrap().title.as_deref(), Some("Clip"));

    // A link of a video that requires signed URLs lives an hour.
    let downloads = server.ok(Method::POST, &format!("/{uid}/downloads"), None).await;
    let link = downloads["default"]["url"].as_str().unwrap();
    let expires: u64 = link.split("expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((3500..=3700).contains(&(expires - now)), "{link}");

    // An edit replaces meta whole, renames the video everywhere, and leaves out what it does not name.
    let edited =
        server.ok(Method::POST, &format!("/{uid}"), Some(json!({"meta": {"name": "Renamed"}, "creator": null}))).await;
    assert_eq!(edited["meta"], json!({"name": "Renamed", "downloaded-from": url}), "{edited}");
    assert_eq!((&edited["creator"], &edited["requireSignedURLs"]), (&Value::Null, &json!(true)), "{edited}");
    assert_eq!(server.engine.get(&server.account, id).await.unwrap().title.as_deref(), Some("Renamed"));
    let edited = server.ok(Method::POST, &format!("/{uid}"), Some(json!({"requireSignedURLs": false}))).await;
    assert_eq!((&edited["meta"]["name"], &edited["requireSignedURLs"]), (&json!("Renamed"), &json!(false)));

    // Refused copies and edits, each saying what was wrong; nothing is queued by them.
    for (body, words) in [
        (json!({"input": url, "url": "http://127.0.0.1:1/other"}), "only input"),
        (json!({}), "input"),
        (json!({"input": url, "meta": ["a"]}), "JSON object"),
        (json!({"input": url, "meta": {"name": 7}}), "meta.name"),
        (json!({"input": url, "creator": 5}), "creator"),
        (json!({"input": url, "creator": "x".repeat(65)}), "creator"),
        (json!({"input": url, "thumbnailTimestampPct": 1.5}), "from 0 to 1"),
    ] {
        let request = server.cf(Auth::Bearer(TOKEN), Method::POST, &server.stream(&server.account, "/copy"));
        let message = refused(request.json(&body), StatusCode::BAD_REQUEST, 10400).await;
        assert!(message.contains(words), "{body}: {message}");
    }
    let request = server.cf(Auth::Bearer(TOKEN), Method::POST, &server.stream(&server.account, &format!("/{uid}")));
    refused(request.json(&json!({"thumbnailTimestampPct": -1})), StatusCode::BAD_REQUEST, 10400).await;

    // Filters.
    let second = server
        .copy(Auth::Bearer(TOKEN), &server.account, json!({"url": url, "name": "Second", "creator": "bob"}))
        .await;
    let second = second["uid"].as_str().unwrap().to_owned();
    let uids = |query: &'static str| {
        let server = &server;
        async move {
            let listed = server.ok(Method::GET, &format!("?{query}"), None).await;
            listed.as_array().unwrap().iter().map(|video| video["uid"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(uids("").await, [second.clone(), uid.clone()]);
    assert_eq!(uids("asc=true").await, [uid.clone(), second.clone()]);
    assert_eq!(uids("creator=bob").await, vec![second.clone()]);
    assert_eq!(uids("search=RENAMED").await, vec![uid.clone()]);
    assert_eq!(uids("video_name=Second").await, vec![second.clone()]);
    assert_eq!(uids("limit=1&asc=true").await, vec![uid.clone()]);
    assert_eq!(uids("status=pendingupload").await, Vec::<String>::new());
    assert_eq!(uids("before=2000-01-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(uids("after=2000-01-01T00:00:00%2B00:00").await.len(), 2);
    let answer: Value = server
        .cf(Auth::Bearer(TOKEN), Method::GET, &server.stream(&server.account, "?include_counts=true&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&answer["total"], &answer["range"]), (&json!(2), &json!(1)), "{answer}");
    for (query, words) in [("colour=red", "unknown list parameter"), ("limit=0", "limit"), ("after=soon", "RFC 3339")] {
        let message = server.fails(Method::GET, &format!("?{query}"), StatusCode::BAD_REQUEST, 10400).await;
        assert!(message.contains(words), "{query}: {message}");
    }

    let usage = server.ok(Method::GET, "/storage-usage", None).await;
    assert_eq!((&usage["videoCount"], &usage["creator"]), (&json!(2), &Value::Null), "{usage}");
    let usage = server.ok(Method::GET, "/storage-usage?creator=bob", None).await;
    assert_eq!((&usage["videoCount"], &usage["creator"]), (&json!(1), &json!("bob")), "{usage}");
    assert!(usage["totalStorageMinutes"].is_number(), "{usage}");
}
