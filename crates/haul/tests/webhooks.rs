//! Webhooks end to end: a real `haul serve` process, a real origin, and a loopback receiver that refuses the
//! first deliveries and then accepts, verifying every signature as a receiver following the README would.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use haul_test_support::{Origin, OriginOptions};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Server {
    /// `haul serve` allowed to reach 127.0.0.1 (the origin and the receiver), retrying deliveries every 0.2 s.
    fn start(data_dir: &Path) -> Self {
        let mut child =
            common::serve_command(data_dir, &["--webhook-retry", "0.2"]).stderr(Stdio::null()).spawn().unwrap();
        let base = common::listening(&mut child);
        Self { child, base, token: common::token_of(data_dir) }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        common::call(&self.base, &self.token, method, path, body).await
    }

    async fn add(&self, url: &str) -> String {
        let (status, body) = self.call(reqwest::Method::POST, "/v1/downloads", Some(json!({ "url": url }))).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        let path = format!("/v1/webhooks/{webhook}/deliveries");
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        body["deliveries"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    secret: String,
    /// Requests answered 500 before accepting any.
    refuse_first: usize,
    /// Answer 500 to everything while set.
    refusing: bool,
    requests: usize,
    refused: usize,
    /// Accepted deliveries in arrival order: (delivery id, event, download id).
    accepted: Vec<(String, String, String)>,
    /// Anything wrong with a request (signature, headers, body), described.
    problems: Vec<String>,
}

/// Held for a few field updates, never across an await.
type Receiver = Arc<std::sync::Mutex<Seen>>;

/// Checks a delivery the way the README tells receivers to: the HMAC-SHA256 of `t.body` under the secret, a
/// timestamp within five minutes, the headers matching the body.
fn check(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(String, String, String), String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let signature = header("haul-signature").ok_or("no Haul-Signature")?;
    let mut timestamp = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (timestamp, v1) = timestamp.zip(v1).ok_or_else(|| format!("malformed Haul-Signature {signature:?}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if now.abs_diff(timestamp) > 300 {
        return Err(format!("timestamp {timestamp} is more than 5 minutes from {now}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| format!("bad signature {signature:?}"))?;
    let json: Value = serde_json::from_slice(body).map_err(|error| format!("body is not JSON: {error}"))?;
    let delivery = header("haul-delivery").ok_or("no Haul-Delivery")?;
    let event = header("haul-event").ok_or("no Haul-Event")?;
    if json["id"] != delivery.as_str() || json["event"] != event.as_str() || header("haul-webhook-id").is_none() {
        return Err(format!("headers {headers:?} do not match the body {json}"));
    }
    let download = json["download"]["id"].as_str().ok_or("no download id")?.to_owned();
    if json["download"]["state"].as_str().is_none() {
        return Err(format!("no download state in {json}"));
    }
    Ok((delivery, event, download))
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = receiver.lock().unwrap();
    seen.requests += 1;
    let checked = check(&seen.secret, &headers, &body);
    let delivery = match checked {
        Ok(delivery) => delivery,
        Err(problem) => {
            seen.problems.push(problem);
            return StatusCode::BAD_REQUEST;
        }
    };
    if seen.refusing || seen.refused < seen.refuse_first {
        seen.refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    seen.accepted.push(delivery);
    StatusCode::OK
}

/// The receiver on a free port of 127.0.0.1, and its URL.
async fn start_receiver(seen: Seen) -> (Receiver, String) {
    let receiver: Receiver = Arc::new(std::sync::Mutex::new(seen));
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

/// Waits until `done` holds for what the receiver saw.
async fn wait_for(receiver: &Receiver, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let seen = receiver.lock().unwrap();
            assert!(seen.problems.is_empty(), "{:?}", seen.problems);
            if done(&seen) {
                return;
            }
            assert!(Instant::now() < deadline, "waited a minute for {what}: {} accepted", seen.accepted.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each delivery id accepted once, and each download's events in the order they happened.
fn assert_once_each_and_in_order(seen: &Seen, downloads: &[String], expected: &[&str]) {
    let mut ids: Vec<&str> = seen.accepted.iter().map(|(id, _, _)| id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a delivery was accepted twice: {:?}", seen.accepted);
    let mut by_download: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, event, download) in &seen.accepted {
        by_download.entry(download).or_default().push(event);
    }
    for download in downloads {
        assert_eq!(by_download.get(download.as_str()).map(Vec::as_slice), Some(expected), "{:?}", seen.accepted);
    }
}

async fn add_webhook(server: &Server, url: &str, secret: Option<&str>) -> (String, String) {
    let mut body = json!({ "url": url, "events": ["added", "started", "completed", "failed"] });
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    let (status, created) = server.call(reqwest::Method::POST, "/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["events"], json!(["added", "started", "completed", "failed"]));
    (created["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

/// The receiver answers 500 to the first five deliveries: each is retried until it gets a 200, arrives exactly
/// once per delivery id, signed, and each job's events arrive in order; the deliveries endpoint counts every
/// attempt.
#[tokio::test(flavor = "multi_thread")]
async fn refused_deliveries_are_retried_and_arrive_once_each_signed_and_in_order() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let (receiver, hook_url) = start_receiver(Seen { refuse_first: 5, ..Seen::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (webhook, secret) = add_webhook(&server, &hook_url, None).await;
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "a generated secret: {secret}");
    receiver.lock().unwrap().secret = secret;
    let (status, listed) = server.call(reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["webhooks"][0]["id"], webhook.as_str());
    assert!(listed["webhooks"][0].get("secret").is_none(), "the secret is shown once: {listed}");

    let mut downloads = Vec::new();
    for n in 0..3 {
        downloads.push(server.add(&origin.url(64 * 1024, &format!("file-{n}.bin"))).await);
    }
    wait_for(&receiver, "every job's three events", |seen| seen.accepted.len() == 9).await;
    let requests = {
        let seen = receiver.lock().unwrap();
        assert_eq!(seen.refused, 5);
        assert_once_each_and_in_order(&seen, &downloads, &["added", "started", "completed"]);
        seen.requests
    };

    // Every attempt shows: 9 delivered, their attempts adding up to what the receiver was sent.
    let deliveries = server.deliveries(&webhook).await;
    assert_eq!(deliveries.len(), 9);
    let attempts: u64 = deliveries.iter().map(|delivery| delivery["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, requests as u64, "{deliveries:?}");
    for delivery in &deliveries {
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert_eq!(delivery["last_status"], 200, "{delivery}");
        assert!(delivery["last_error"].is_null(), "{delivery}");
    }
}

/// A download completes while the receiver refuses; the server is killed (SIGKILL) with the completion's
/// delivery still pending, restarted on the same data, and once the receiver accepts, every event arrives,
/// once each and in order.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_survive_a_kill_between_the_change_and_the_delivery() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let secret = "whsec_0123456789abcdef0123456789abcdef";
    let seen = Seen { secret: secret.to_owned(), refusing: true, ..Seen::default() };
    let (receiver, hook_url) = start_receiver(seen).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let (webhook, given) = add_webhook(&server, &hook_url, Some(secret)).await;
    assert_eq!(given, secret);
    let download = server.add(&origin.url(64 * 1024, "kept.bin")).await;

    // The completion is recorded and its delivery refused at least once: the refusal shows, status and all.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deliveries = server.deliveries(&webhook).await;
        let completed = deliveries.iter().find(|delivery| delivery["event"] == "completed");
        if let Some(completed) = completed.filter(|delivery| delivery["attempts"].as_u64() >= Some(1)) {
            assert_eq!(completed["state"], "pending", "{completed}");
            assert_eq!(completed["download"], download.as_str());
            assert!(completed["next_attempt_at"].is_i64(), "{completed}");
            // Behind the job's earlier events, never tried out of order; the first one refused.
            let added = deliveries.iter().find(|delivery| delivery["event"] == "added").unwrap();
            assert_eq!(added["last_status"], 500, "{added}");
            assert_eq!(added["last_error"], "answered 500 Internal Server Error", "{added}");
            break;
        }
        let added = deliveries.iter().find(|delivery| delivery["event"] == "added");
        if completed.is_some() && added.is_some_and(|added| added["attempts"].as_u64() >= Some(1)) {
            // The completion waits behind `added`, which is refused: what a kill must not lose.
            break;
        }
        assert!(Instant::now() < deadline, "no refused delivery yet: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.lock().unwrap().accepted.is_empty());
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    server = Server::start(dir.path());
    receiver.lock().unwrap().refusing = false;
    wait_for(&receiver, "the job's three events", |seen| seen.accepted.len() == 3).await;
    // Nothing more comes (no second copy of anything).
    tokio::time::sleep(Duration::from_millis(600)).await;
    {
        let seen = receiver.lock().unwrap();
        assert!(seen.refused >= 1);
        assert_once_each_and_in_order(&seen, std::slice::from_ref(&download), &["added", "started", "completed"]);
    }
    let deliveries = server.deliveries(&webhook).await;
    assert!(deliveries.iter().all(|delivery| delivery["state"] == "delivered"), "{deliveries:?}");
}

/// The destination policy holds for webhooks as for downloads: without --allow-net a loopback URL is refused,
/// naming the flag. Bad events and schemes are refused too, and `haul webhook` adds, lists and removes.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_obey_the_destination_policy_and_the_cli_manages_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("HAUL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = common::listening(&mut child);
    let server = Server { child, base, token: common::token_of(dir.path()) };
    let post = |body: Value| server.call(reqwest::Method::POST, "/v1/webhooks", Some(body));

    let (status, refused) = post(json!({"url": "http://127.0.0.1:9/hook"})).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "destination_refused");
    assert!(refused["error"]["message"].as_str().unwrap().contains("--allow-net"), "{refused}");
    let (status, error) = post(json!({"url": "https://hooks.example/x", "events": ["completed", "done"]})).await;
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"done\"") && message.contains("completed, failed, cancelled, removed"), "{message}");
    let (status, error) = post(json!({"url": "ftp://hooks.example/x"})).await;
    assert_eq!(status, 422, "{error}");
    let (status, _) = server.call(reqwest::Method::GET, "/v1/webhooks/not-an-id", None).await;
    assert_eq!(status, 404);
    let (status, _) =
        server.call(reqwest::Method::DELETE, "/v1/webhooks/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!(status, 404);

    let haul = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(args)
            .args(["--host", &server.base, "--token", &server.token])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        (output.status.success(), stdout, stderr)
    };
    let (ok, added, stderr) =
        haul(&["webhook", "add", "https://hooks.example/haul", "-e", "completed", "-e", "failed"]);
    assert!(ok, "{stderr}");
    assert!(added.contains("sends completed,failed to https://hooks.example/haul"), "{added}");
    assert!(added.contains("secret: whsec_"), "{added}");
    let id = added.split_whitespace().nth(1).unwrap().to_owned();
    let (ok, listed, _) = haul(&["webhook", "ls"]);
    assert!(ok && listed.contains(&id[..8]) && listed.contains("https://hooks.example/haul"), "{listed}");
    let (ok, deliveries, stderr) = haul(&["webhook", "deliveries", &id[..8]]);
    assert!(ok && deliveries.starts_with("DELIVERY"), "{deliveries}{stderr}");
    let (ok, _, stderr) = haul(&["webhook", "add", "http://127.0.0.1:9/hook"]);
    assert!(!ok && stderr.contains("--allow-net"), "{stderr}");
    let (ok, removed, stderr) = haul(&["webhook", "rm", &id[..8]]);
    assert!(ok && removed.contains("removed webhook"), "{removed}{stderr}");
    let (_, listed, _) = haul(&["webhook", "ls"]);
    assert!(listed.starts_with("no webhooks"), "{listed}");
}
