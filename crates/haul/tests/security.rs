//! haul as an attacker with a valid key meets it: a real `haul serve` (refusing private destinations, with
//! 127.0.0.2 and 127.0.0.3 opened by `--allow-net` to stand for the public internet) and "trap" servers on
//! loopback that count every request they get. Each test asserts what the attacker sees and that the trap
//! behind the refused address got nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The ranges `haul serve` is told to open; everything else special is refused.
const OPENED: &str = "127.0.0.2/31";

struct Server {
    child: Child,
    base: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), Stdio::null(), &[])
    }

    /// With more flags.
    fn start_with(args: &[&str]) -> Self {
        Self::launch(tempfile::tempdir().unwrap(), Stdio::null(), &[], args)
    }

    /// `haul serve` on `dir`, its logs (stderr) going to `logs`, with `env` set.
    fn start_in(dir: tempfile::TempDir, logs: impl Into<Stdio>, env: &[(&str, &str)]) -> Self {
        Self::launch(dir, logs, env, &[])
    }

    fn launch(dir: tempfile::TempDir, logs: impl Into<Stdio>, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-net", OPENED])
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("HAUL_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logs)
            .spawn()
            .unwrap();
        let base = common::listening(&mut child);
        let token = common::token_of(dir.path());
        Self { child, base, token, dir }
    }

    /// Stops the server and hands back its data directory.
    fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Runs `haul ARGS --data-dir DIR` on this server's data directory; its stdout.
    fn haul(&self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
        let output = command.args(args).arg("--data-dir").arg(self.dir.path()).output().unwrap();
        assert!(output.status.success(), "haul {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The status of `GET /v1/downloads` with `token`.
    async fn status_with(&self, token: &str) -> StatusCode {
        let response = reqwest::Client::new().get(format!("{}/v1/downloads", self.base)).bearer_auth(token).send();
        response.await.unwrap().status()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// A native API call: status and JSON body.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn add(&self, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, "/v1/downloads", Some(body)).await
    }

    /// Polls the download until it has ended (completed, failed or cancelled).
    async fn ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
            if ["completed", "failed", "cancelled"].contains(&body["state"].as_str().unwrap_or_default()) {
                return body;
            }
            assert!(Instant::now() < deadline, "the download did not end: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a trap server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
}

/// A server that answers a few paths and remembers every request.
#[derive(Clone)]
struct Trap {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Trap {
    async fn start(ip: [u8; 4]) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
        let address = listener.local_addr().unwrap();
        let trap = Self { address, seen: Arc::new(Mutex::new(Vec::new())) };
        let app = Router::new()
            .route("/go", get(go))
            .route("/page", get(page))
            .fallback(get(file))
            .layer(axum::middleware::from_fn_with_state(trap.clone(), remember))
            .with_state(trap.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        trap
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn remember(State(trap): State<Trap>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let seen = Seen { path: request.uri().path().to_owned(), headers: request.headers().clone() };
    trap.seen.lock().unwrap().push(seen);
    next.run(request).await
}

#[derive(serde::Deserialize)]
struct GoQuery {
    to: String,
}

/// `/go?to=URL`: a 302 there.
async fn go(Query(query): Query<GoQuery>) -> Redirect {
    Redirect::temporary(&query.to)
}

#[derive(serde::Deserialize)]
struct PageQuery {
    media: String,
}

/// `/page?media=BASE`: a video page whose video and thumbnail live at BASE, as yt-dlp's generic extractor reads.
async fn page(Query(query): Query<PageQuery>) -> Response {
    let base = query.media;
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Trap</title>\
         <meta property=\"og:title\" content=\"Trap\"><meta property=\"og:image\" content=\"{base}/thumb.jpg\">\
         </head><body><video controls><source src=\"{base}/clip.mp4\" type=\"video/mp4\"></video></body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// Anything else: 4 KiB of the path's bytes, the "secret" an attacker is after; 404 under `/missing`.
async fn file(uri: Uri) -> Response {
    if uri.path().starts_with("/missing") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = uri.path().as_bytes().iter().copied().cycle().take(4096).collect::<Vec<u8>>();
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// The forms an attacker writes loopback (and other private addresses) in, for a trap on 127.0.0.1:PORT.
fn hostile_urls(port: u16) -> Vec<String> {
    [
        format!("http://127.0.0.1:{port}/secret"),
        format!("http://2130706433:{port}/secret"),
        format!("http://0x7f000001:{port}/secret"),
        format!("http://127.1:{port}/secret"),
        format!("http://0.0.0.0:{port}/secret"),
        format!("http://[::1]:{port}/secret"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/admin".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ]
    .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn literal_private_addresses_are_refused_at_creation_through_every_api() {
    let secret = Trap::start([127, 0, 0, 1]).await;
    let server = Server::start();
    let client = reqwest::Client::new();
    let videodb_key = server.haul(&["key", "create", "--account", "default", "--kind", "videodb"]);
    let account = std::fs::read_to_string(server.dir.path().join("account")).unwrap().trim().to_owned();
    for url in hostile_urls(secret.address.port()) {
        // Native: 403 in haul's shape, naming the address and what would allow it.
        let (status, body) = server.add(json!({"url": url})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
        assert_eq!(body["error"]["code"], "destination_refused", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("--allow-net") && message.contains("is not fetched"), "{message}");
        // As a mirror of an allowed URL.
        let (status, _) = server.add(json!({"url": "http://127.0.0.2:9/x", "mirrors": [url]})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url} as a mirror");

        // The yt-dlp web app, Surge, VideoDB and Cloudflare Stream: a 400 in each one's own shape.
        let ytdlp = server.request(reqwest::Method::POST, "/api/download").json(&json!({"url": url})).send().await;
        let ytdlp = ytdlp.unwrap();
        assert_eq!(ytdlp.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(ytdlp.text().await.unwrap().contains("is not fetched"), "{url}");
        let surge = server.request(reqwest::Method::POST, "/download").json(&json!({"url": url})).send().await;
        assert_eq!(surge.unwrap().status(), StatusCode::BAD_REQUEST, "{url}");
        let videodb = client
            .post(format!("{}/videodb/download", server.base))
            .header("x-access-token", &videodb_key)
            .json(&json!({"stream_link": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(videodb.status(), StatusCode::BAD_REQUEST, "{url}");
        let videodb: Value = videodb.json().await.unwrap();
        assert_eq!(videodb["success"], false, "{videodb}");
        let cloudflare = client
            .post(format!("{}/client/v4/accounts/{account}/stream/copy", server.base))
            .bearer_auth(&server.token)
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(cloudflare.status(), StatusCode::BAD_REQUEST, "{url}");
        let cloudflare: Value = cloudflare.json().await.unwrap();
        assert!(cloudflare["errors"][0]["message"].as_str().unwrap().contains("is not fetched"), "{cloudflare}");
    }
    // PATCH url of a paused job.
    let (status, job) = server.add(json!({"url": "http://127.0.0.2:9/x", "paused": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap();
    let patch = json!({"url": format!("http://127.0.0.1:{}/secret", secret.address.port())});
    let (status, body) = server.call(reqwest::Method::PATCH, &format!("/v1/downloads/{id}"), Some(patch)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("destination_refused")));
    assert!(secret.seen().is_empty(), "the server fetched from behind the policy: {:?}", secret.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn names_and_redirects_that_lead_to_loopback_fail_the_job_and_fetch_nothing() {
    let secret = Trap::start([127, 0, 0, 1]).await;
    let relay = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let port = secret.address.port();
    let by_name = format!("http://localhost:{port}/secret");
    let cases = [
        by_name.clone(),
        relay.url(&format!("/go?to=http://127.0.0.1:{port}/secret")),
        relay.url(&format!("/go?to={by_name}")),
        relay.url(&format!("/go?to=http://[::ffff:127.0.0.1]:{port}/secret")),
    ];
    for url in cases {
        let (status, job) = server.add(json!({"url": url, "kind": "file"})).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: a name is judged when it is resolved: {job}");
        let ended = server.ended(job["id"].as_str().unwrap()).await;
        assert_eq!(ended["state"], "failed", "{url}: {ended}");
        let error = ended["error"].as_str().unwrap();
        assert!(error.contains("loopback") && error.contains("--allow-net"), "{url}: {error}");
    }
    assert!(secret.seen().is_empty(), "fetched from behind the policy: {:?}", secret.seen());
    assert!(relay.seen().len() >= 3, "the relay, allowed, was asked once per redirecting job at least");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_and_closed_ports_answer_alike() {
    let open = Trap::start([127, 0, 0, 1]).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = Server::start();
    let mut answers = Vec::new();
    for port in [open.address.port(), closed] {
        let (status, body) = server.add(json!({"url": format!("http://127.0.0.1:{port}/")})).await;
        let (_, job) = server.add(json!({"url": format!("http://localhost:{port}/"), "kind": "file"})).await;
        let ended = server.ended(job["id"].as_str().unwrap()).await;
        let strip = |text: &str| text.replace(&port.to_string(), "PORT");
        answers.push((status, strip(&body.to_string()), ended["state"].clone(), strip(&ended["error"].to_string())));
    }
    assert_eq!(answers[0], answers[1], "an attacker can tell an open port from a closed one");
    assert!(open.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_host_carries_none_of_the_users_headers() {
    let first = Trap::start([127, 0, 0, 2]).await;
    let second = Trap::start([127, 0, 0, 3]).await;
    let server = Server::start();
    let url = first.url(&format!("/go?to={}", second.url("/file.bin")));
    let headers = json!({"Authorization": "Bearer user-secret", "Cookie": "session=user-secret", "X-Token": "t"});
    let (status, job) = server.add(json!({"url": url, "headers": headers, "kind": "file"})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let ended = server.ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "completed", "{ended}");
    for seen in first.seen() {
        assert_eq!(seen.headers.get("x-token").map(|v| v.to_str().unwrap()), Some("t"), "{seen:?}");
    }
    let at_second = second.seen();
    assert!(!at_second.is_empty());
    for seen in at_second {
        for name in ["authorization", "cookie", "x-token", "referer"] {
            assert!(!seen.headers.contains_key(name), "{name} reached the other host: {seen:?}");
        }
        assert_eq!(seen.path, "/file.bin");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_that_frame_the_request_are_refused() {
    let server = Server::start();
    for name in ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Range"] {
        let body = json!({"url": "http://127.0.0.2:9/x", "headers": {name: "1"}});
        let (status, answer) = server.add(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("set by haul itself"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yt_dlp_and_thumbnails_obey_the_policy_too() {
    let secret = Trap::start([127, 0, 0, 1]).await;
    let site = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let port = secret.address.port();

    // yt-dlp asked to read a page on a name that resolves to loopback: refused by the proxy it runs behind.
    let page_on_loopback = format!("http://localhost:{port}/page?media=http://localhost:{port}");
    let (status, job) = server.add(json!({"url": page_on_loopback, "kind": "media"})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let ended = server.ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap();
    assert!(error.contains("loopback") && error.contains("is not fetched"), "{error}");

    // The yt-dlp web app's /api/info runs yt-dlp the same way.
    let info = server.request(reqwest::Method::POST, "/api/info").json(&json!({"url": page_on_loopback})).send();
    let info = info.await.unwrap();
    assert_eq!(info.status(), StatusCode::BAD_REQUEST);
    let text = info.text().await.unwrap();
    assert!(text.contains("loopback"), "{text}");

    // A page on an allowed host whose video and og:image are on loopback: the page is read, nothing behind it.
    let page = site.url(&format!("/page?media=http://127.0.0.1:{port}"));
    let (_, job) = server.add(json!({"url": page, "kind": "media"})).await;
    let ended = server.ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["error"].as_str().unwrap().contains("loopback"), "{ended}");
    assert!(site.seen().iter().any(|seen| seen.path == "/page"), "the allowed page was read");

    assert!(secret.seen().is_empty(), "fetched from behind the policy: {:?}", secret.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused_at_once_and_after_a_restart() {
    let server = Server::start();
    let token = server.token.clone();
    assert_eq!(server.status_with(&token).await, StatusCode::OK);
    let keys = server.haul(&["key", "ls"]);
    let id = keys.lines().find(|line| line.contains(&token[..12])).and_then(|line| line.split_whitespace().next());
    let id = id.unwrap_or_else(|| panic!("the token is listed as a key: {keys}")).to_owned();
    server.haul(&["key", "revoke", &id]);
    assert_eq!(server.status_with(&token).await, StatusCode::UNAUTHORIZED, "the running server still takes it");

    let server = Server::start_in(server.stop(), Stdio::null(), &[]);
    assert_eq!(server.token, token, "the token file is left as it was");
    assert_eq!(server.status_with(&token).await, StatusCode::UNAUTHORIZED, "a restart brought it back");

    // Rotation: a new token that works, written to the token file; the old one stays refused.
    let rotated = server.haul(&["token", "--rotate"]);
    assert_ne!(rotated, token);
    assert_eq!(std::fs::read_to_string(server.dir.path().join("token")).unwrap().trim(), rotated);
    assert_eq!(server.status_with(&rotated).await, StatusCode::OK);
    assert_eq!(server.status_with(&token).await, StatusCode::UNAUTHORIZED);
    let again = server.haul(&["token", "--rotate"]);
    assert_eq!(server.status_with(&rotated).await, StatusCode::UNAUTHORIZED, "rotating twice revokes the first");
    assert_eq!(server.status_with(&again).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_at_every_level_hold_no_secret() {
    let relay = Trap::start([127, 0, 0, 2]).await;
    let log_path = tempfile::NamedTempFile::new().unwrap();
    let logs = std::fs::File::create(log_path.path()).unwrap();
    let server = Server::start_in(tempfile::tempdir().unwrap(), logs, &[("HAUL_LOG", "trace")]);
    let secrets = ["tok-0123456789abcdef", "pass-0123456789abcdef", "sig-0123456789abcdef", "key-0123456789abcdef"];
    // Jobs whose URLs carry a password, a token and an API key (also percent-encoded, as a redirect target in
    // a parameter), on a host that answers 404: their URLs and errors are logged on the way.
    let port = relay.address.port();
    let target = format!("http://u:{}@127.0.0.2:{port}/missing?token={}", secrets[1], secrets[0]);
    let encoded = format!("http%3A%2F%2Fu%3A{}%40127.0.0.2%3A{port}%2Fmissing%3Ftoken%3D{}", secrets[1], secrets[0]);
    for url in
        [format!("{target}&api_key={}", secrets[3]), relay.url(&format!("/go?to={encoded}&api_key={}", secrets[3]))]
    {
        let (status, job) = server.add(json!({"url": url, "kind": "file"})).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        let ended = server.ended(job["id"].as_str().unwrap()).await;
        assert_eq!(ended["state"], "failed", "{ended}");
    }
    // The yt-dlp web app's ?token=, a signed link's signature=, a bearer token in a header.
    let client = reqwest::Client::new();
    let _ = client.get(format!("{}/api/downloads?token={}", server.base, server.token)).send().await.unwrap();
    let link = format!("{}/links/x/file?account=a&expires=1&signature={}", server.base, secrets[2]);
    let _ = client.get(link).send().await.unwrap();
    let _ = client.get(format!("{}/v1/downloads", server.base)).bearer_auth(secrets[0]).send().await.unwrap();
    let token = server.token.clone();
    drop(server);

    let logged = std::fs::read_to_string(log_path.path()).unwrap();
    assert!(logged.contains("/api/downloads") && logged.contains("signature=***"), "the requests were logged");
    assert!(logged.contains("/missing?token=***"), "the jobs' URLs were logged");
    for secret in secrets.iter().copied().chain([token.as_str()]) {
        assert!(!logged.contains(secret), "{secret} is in the log:\n{logged}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_planted_in_the_data_directory_lead_nowhere() {
    let site = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let downloads = server.dir.path().join("downloads");
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "outside the data directory").unwrap();

    // A directory that is a symlink out: the job fails, nothing is written outside.
    std::os::unix::fs::symlink(outside.path(), downloads.join("evil")).unwrap();
    let (status, job) = server.add(json!({"url": site.url("/a.bin"), "directory": "evil", "kind": "file"})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let ended = server.ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["error"].as_str().unwrap().contains("symlink"), "{ended}");
    assert!(!ended["error"].as_str().unwrap().contains(&*server.dir.path().to_string_lossy()), "no server path");

    // A partial file that is a symlink out: never written through.
    std::os::unix::fs::symlink(outside.path().join("stolen"), downloads.join("b.bin.part")).unwrap();
    let (_, job) = server.add(json!({"url": site.url("/b.bin"), "filename": "b.bin", "kind": "file"})).await;
    let ended = server.ended(job["id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let left: Vec<_> = std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["secret.txt"], "only what was there before");

    // A thumbnail that is a symlink to a file outside: not served.
    let (_, job) = server.add(json!({"url": site.url("/c.bin"), "kind": "file"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(server.ended(&id).await["state"], "completed");
    let thumbnails = server.dir.path().join("thumbnails");
    std::os::unix::fs::symlink(&secret, thumbnails.join(format!("{id}.jpg"))).unwrap();
    let response = server.request(reqwest::Method::GET, &format!("/v1/downloads/{id}/thumbnail")).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(!response.text().await.unwrap().contains("outside the data directory"));
    // Nor a finished file swapped for a symlink out.
    let path = downloads.join("c.bin");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    let response = server.request(reqwest::Method::GET, &format!("/v1/downloads/{id}/file")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_and_the_data_directory_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let (_, job) = server.add(json!({"url": site.url("/d.bin"), "kind": "file"})).await;
    server.ended(job["id"].as_str().unwrap()).await;
    let mode = |name: &str| std::fs::metadata(server.dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(std::fs::metadata(server.dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
    for name in ["haul.db", "haul.db-wal", "haul.db-shm", "token", "link.key"] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_download_is_retried_after_its_url_is_fixed() {
    let site = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let (_, job) = server.add(json!({"url": site.url("/missing/e.bin"), "kind": "file"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let ended = server.ended(&id).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert!(ended["error"].as_str().unwrap().contains("404"), "{ended}");
    let (status, body) = server.call(reqwest::Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{body}");

    let fixed = json!({"url": site.url("/e.bin")});
    let (status, _) = server.call(reqwest::Method::PATCH, &format!("/v1/downloads/{id}"), Some(fixed)).await;
    assert_eq!(status, StatusCode::OK);
    let output = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["retry", &id[..8], "--host", &server.base, "--token", &server.token])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let ended = server.ended(&id).await;
    assert_eq!(ended["state"], "completed", "{ended}");
    let (status, body) = server.call(reqwest::Method::POST, &format!("/v1/downloads/{id}/retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a completed download is not retried: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("completed"), "{body}");
}

/// A small tmpfs, mounted for the life of the guard; `None` where this machine does not allow mounting.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Self { dir: dir.to_owned() })
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.dir).status();
        assert!(status.unwrap().success(), "remounting the tmpfs larger");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_pauses_the_download_and_a_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("downloads"), "2m") else {
        eprintln!("not run: this machine does not allow mounting a tmpfs (needs root)");
        return;
    };
    let origin = haul_test_support::Origin::start_on(
        SocketAddr::from(([127, 0, 0, 2], 0)),
        haul_test_support::OriginOptions::default(),
    )
    .await
    .unwrap();
    let server = Server::start_in(dir, Stdio::null(), &[]);
    let (_, job) = server.add(json!({"url": origin.url(8 << 20, "big.bin"), "kind": "file"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let paused = loop {
        let (_, body) = server.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if body["state"] == "paused" {
            break body;
        }
        assert!(body["state"] != "failed", "a full disk fails nothing: {body}");
        assert!(Instant::now() < deadline, "not paused: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = paused["error"].as_str().unwrap();
    assert!(reason.contains("the disk is full") && reason.contains("8.0 MiB"), "{reason}");
    // Asking for a pause now is an error, never a 2xx with the job still running.
    let (status, _) = server.call(reqwest::Method::POST, &format!("/v1/downloads/{id}/pause"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Other downloads and the API keep working.
    let (_, small) = server.add(json!({"url": origin.url(100_000, "small.bin"), "kind": "file"})).await;
    assert_eq!(server.ended(small["id"].as_str().unwrap()).await["state"], "completed");

    disk.grow("32m");
    let (status, _) = server.call(reqwest::Method::POST, &format!("/v1/downloads/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK);
    let done = server.ended(&id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let path = server.dir.path().join("downloads/big.bin");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 8 << 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_come_in_pages_and_accounts_have_a_cap() {
    let server = Server::start_with(&["--max-jobs-per-account", "250"]);
    for n in 0..250 {
        let (status, body) = server.add(json!({"url": format!("http://127.0.0.2:9/f{n}"), "paused": true})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = server.add(json!({"url": "http://127.0.0.2:9/one-too-many"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_downloads")));

    let (_, page) = server.call(reqwest::Method::GET, "/v1/downloads", None).await;
    assert_eq!((page["downloads"].as_array().unwrap().len(), page["total"].as_u64()), (100, Some(250)));
    let mut seen = 100;
    let mut next = page["next"].as_str().map(str::to_owned);
    while let Some(path) = next {
        let (status, page) = server.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        seen += page["downloads"].as_array().unwrap().len();
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 250, "the pages hold every download once");
    for bad in ["limit=0", "limit=1001", "limit=-1", "offset=x"] {
        let (status, _) = server.call(reqwest::Method::GET, &format!("/v1/downloads?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (_, big) = server.call(reqwest::Method::GET, "/v1/downloads?limit=1000", None).await;
    assert_eq!(big["downloads"].as_array().unwrap().len(), 250);
    // A URL past 8 KiB and a priority out of range.
    let long = format!("http://127.0.0.2:9/{}", "a".repeat(9000));
    assert_eq!(server.add(json!({"url": long})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.add(json!({"url": "http://127.0.0.2:9/p", "priority": 1_000_000})).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_web_app_cannot_be_driven_by_another_site() {
    let server = Server::start_with(&["--open-dialect", "ytdlp-app"]);
    let client = reqwest::Client::new();
    let post = |host: &str, content_type: &str| {
        client
            .post(format!("{}/api/download", server.base))
            .header("host", host)
            .header("content-type", content_type)
            .body(r#"{"url": "http://127.0.0.2:9/x"}"#)
            .send()
    };
    // A form post from another page (a "simple request", sent without a preflight): refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        assert_eq!(post("127.0.0.1", content_type).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    // DNS rebinding: the browser sends the attacker's name as Host.
    let rebound = post("rebind.attacker.example:1700", "application/json").await.unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let listing = client.get(format!("{}/api/downloads", server.base)).header("host", "rebind.attacker.example");
    assert_eq!(listing.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // The app's own page, on the server's address or localhost, works as before.
    assert_eq!(post("127.0.0.1:1700", "application/json").await.unwrap().status(), StatusCode::OK);
    assert_eq!(post("localhost:1700", "application/json; charset=utf-8").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_trickle_their_headers_cannot_starve_the_others() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // The server under a file descriptor limit of 512, against 600 connections that send a byte of a request
    // line and then a byte every second, never finishing their headers.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("prlimit")
        .args(["--nofile=512:512", "--"])
        .arg(env!("CARGO_BIN_EXE_haul"))
        .args(["serve", "--listen", "127.0.0.1:0", "--header-timeout", "2", "--data-dir"])
        .arg(dir.path())
        .env_remove("HAUL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address: SocketAddr =
        line.split_whitespace().find_map(|word| word.strip_prefix("http://")?.parse().ok()).unwrap();

    let mut tricklers = Vec::new();
    for _ in 0..600 {
        let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else { break };
        tricklers.push(tokio::spawn(async move {
            let started = Instant::now();
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                let mut buf = [0u8; 64];
                if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    return Some(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(90) {
                    return None;
                }
            }
            None
        }));
    }
    // Meanwhile, ordinary requests keep being answered, each on a connection of its own.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(0).build().unwrap();
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = client.get(format!("http://{address}/health")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        latencies.push(started.elapsed());
    }
    let mut lifetimes = Vec::new();
    for trickler in tricklers {
        lifetimes.extend(trickler.await.unwrap());
    }
    let closed = lifetimes.len();
    eprintln!("ordinary requests in order: {latencies:?}");
    lifetimes.sort();
    if let (Some(first), Some(last)) = (lifetimes.first(), lifetimes.last()) {
        eprintln!("trickling connections lived from {first:?} to {last:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    eprintln!(
        "600 trickling connections, fd limit 512: 20 ordinary requests answered, median {:?}, slowest {:?}; \
         {closed} trickling connections closed by the server",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(closed, 600, "the server closes connections that never finish their headers");
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_at_the_edges_of_u64_and_link_errors_in_json() {
    let site = Trap::start([127, 0, 0, 2]).await;
    let server = Server::start();
    let (_, job) = server.add(json!({"url": site.url("/r.bin"), "kind": "file"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(server.ended(&id).await["state"], "completed");
    let get = |range: &str| {
        server.request(reqwest::Method::GET, &format!("/v1/downloads/{id}/file")).header("range", range).send()
    };
    let whole = get("bytes=0-99999999999999999999").await.unwrap();
    assert_eq!(whole.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(whole.headers()["content-range"], "bytes 0-4095/4096");
    let past = get("bytes=99999999999999999999-").await.unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.json::<Value>().await.unwrap()["error"]["code"], "range_not_satisfiable");
    let several = get("bytes=0-1,5-6").await.unwrap();
    assert_eq!(several.status(), StatusCode::OK, "several ranges get the whole file");

    // Every failure of a signed link answers in the JSON error shape.
    let client = reqwest::Client::new();
    for path in [
        format!("/links/{id}/file"),
        format!("/links/{id}/file?account=x&expires=1&signature=00"),
        format!("/links/{id}/file?account=%zz&expires=1&signature=00"),
        "/links/not-an-id/file?account=a&expires=1&signature=00".to_owned(),
    ] {
        let response = client.get(format!("{}{path}", server.base)).send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{path}: {status}");
        let body: Value = response.json().await.unwrap_or_else(|error| panic!("{path}: not JSON: {error}"));
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}
