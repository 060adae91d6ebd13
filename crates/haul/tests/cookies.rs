//! Cookie jars end to end: a real `haul serve` process, a real origin reached under two host names (127.0.0.1
//! and localhost are two cookie domains), real yt-dlp on a `MediaSite` page behind a login. Which cookies reach
//! which host, that another account's downloads never carry them, that the list masks values and the log never
//! shows them, the 400s of hostile files, and `haul cookies import|ls|clear`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{MediaOptions, MediaSite, Origin, OriginOptions};
use reqwest::Method;
use serde_json::{Value, json};

/// A value that must never be shown back or logged.
const SECRET: &str = "alice-s3cret-0f9e8d";

struct Server {
    child: Child,
    base: String,
    token: String,
    /// The server's stderr (its log, at debug level).
    log: PathBuf,
    /// The server's temporary directory, where yt-dlp's cookies files are written.
    tmp: PathBuf,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let log = data_dir.join("server.log");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = common::serve_command(data_dir, &[])
            .env("HAUL_LOG", "debug")
            .env("TMPDIR", &tmp)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let base = common::listening(&mut child);
        Self { child, base, token: common::token_of(data_dir), log, tmp }
    }

    fn haul(&self, token: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(args)
            .args(["--host", &self.base, "--token", token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        drop(input);
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        (output.status.success(), stdout, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Caller<'a> {
    server: &'a Server,
    token: String,
}

impl Caller<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        common::call(&self.server.base, &self.token, method, path, body).await
    }

    async fn put_cookies(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/cookies", self.server.base))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn add(&self, body: Value) -> String {
        let (status, download) = self.call(Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, 201, "{download}");
        download["id"].as_str().unwrap().to_owned()
    }

    async fn ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, download) = self.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
            assert_eq!(status, 200, "{download}");
            match download["state"].as_str() {
                Some("completed" | "failed" | "cancelled") => return download,
                _ if Instant::now() > deadline => panic!("download {id} did not end: {download}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

fn new_account(data_dir: &Path, name: &str) -> String {
    let haul = |args: &[&str]| {
        let output =
            Command::new(env!("CARGO_BIN_EXE_haul")).args(args).arg("--data-dir").arg(data_dir).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    haul(&["account", "add", name]);
    haul(&["key", "create", "--account", name]).trim().to_owned()
}

fn line(domain: &str, path: &str, secure: bool, name: &str, value: &str) -> String {
    let secure = if secure { "TRUE" } else { "FALSE" };
    format!("{domain}\tFALSE\t{path}\t{secure}\t0\t{name}\t{value}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_reach_only_their_domain_and_only_their_accounts_downloads() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let port = origin.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let bob_token = new_account(dir.path(), "bob");
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let bob = Caller { server: &server, token: bob_token };

    let jar = format!(
        "# Netscape HTTP Cookie File\n{}{}{}{}",
        line("127.0.0.1", "/", false, "sid", SECRET),
        line("127.0.0.1", "/elsewhere", false, "narrow", "path-only"),
        line("127.0.0.1", "/", true, "https_only", "never-over-http"),
        line("localhost", "/", false, "other", "for-localhost"),
    );
    let (ok, stdout, stderr) = server.haul(&alice.token, &["cookies", "import", "-"], Some(&jar));
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 4 cookies for 127.0.0.1, localhost");

    // The list masks every value.
    let (status, list) = alice.call(Method::GET, "/v1/cookies", None).await;
    assert_eq!(status, 200);
    let cookies = list["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 4, "{list}");
    assert!(cookies.iter().all(|cookie| cookie["value"] == "***"), "{list}");
    let sid = cookies.iter().find(|cookie| cookie["name"] == "sid").unwrap();
    assert_eq!((sid["domain"].as_str(), sid["value_length"].as_u64()), (Some("127.0.0.1"), Some(SECRET.len() as u64)));
    assert!(!list.to_string().contains(SECRET));
    let (ok, stdout, _) = server.haul(&alice.token, &["cookies", "ls"], None);
    assert!(ok && stdout.contains("sid") && stdout.contains("localhost") && !stdout.contains(SECRET), "{stdout}");
    let (status, list) = bob.call(Method::GET, "/v1/cookies", None).await;
    assert_eq!((status, list["cookies"].as_array().unwrap().len()), (200, 0), "bob's jar is his own");

    // 127.0.0.1: its `/` cookie over http, not the https-only one, not the other path's, not localhost's.
    let by_address = format!("http://127.0.0.1:{port}/data/65536/a.bin");
    let id = alice.add(json!({ "url": by_address })).await;
    assert_eq!(alice.ended(&id).await["state"], "completed");
    let by_name = format!("http://localhost:{port}/data/65536/b.bin");
    let id = alice.add(json!({ "url": by_name })).await;
    assert_eq!(alice.ended(&id).await["state"], "completed");
    let id = bob.add(json!({ "url": format!("http://127.0.0.1:{port}/data/65536/c.bin") })).await;
    assert_eq!(bob.ended(&id).await["state"], "completed");

    let seen = origin.handle().cookies_seen();
    let for_path = |path: &str| seen.iter().filter(|request| request.path.ends_with(path)).collect::<Vec<_>>();
    assert!(!for_path("a.bin").is_empty());
    for request in for_path("a.bin") {
        assert_eq!(request.host, format!("127.0.0.1:{port}"));
        assert_eq!(request.cookie.as_deref(), Some(format!("sid={SECRET}").as_str()), "{request:?}");
    }
    assert!(!for_path("b.bin").is_empty());
    for request in for_path("b.bin") {
        assert_eq!(request.host, format!("localhost:{port}"));
        assert_eq!(request.cookie.as_deref(), Some("other=for-localhost"), "{request:?}");
    }
    assert!(!for_path("c.bin").is_empty());
    assert!(for_path("c.bin").iter().all(|request| request.cookie.is_none()), "bob's download carried no cookie");

    // A job's own Cookie header is sent with the jar's, a name in both once (the job's).
    let id = alice
        .add(json!({ "url": by_address.replace("a.bin", "d.bin"), "headers": {"Cookie": "sid=given; extra=1"} }))
        .await;
    assert_eq!(alice.ended(&id).await["state"], "completed");
    for request in origin.handle().cookies_seen().iter().filter(|request| request.path.ends_with("d.bin")) {
        assert_eq!(request.cookie.as_deref(), Some("sid=given; extra=1"), "{request:?}");
    }

    // Bob cannot clear alice's cookies; alice clears one domain, then all.
    let (status, removed) = bob.call(Method::DELETE, "/v1/cookies", None).await;
    assert_eq!((status, removed["removed"].as_u64()), (200, Some(0)));
    let (ok, stdout, _) = server.haul(&alice.token, &["cookies", "clear", "--domain", ".LocalHost"], None);
    assert!(ok && stdout.contains("removed 1 cookies of .LocalHost"), "{stdout}");
    let (ok, stdout, _) = server.haul(&alice.token, &["cookies", "clear"], None);
    assert!(ok && stdout.contains("removed 3 cookies"), "{stdout}");
    let id = alice.add(json!({ "url": by_address.replace("a.bin", "e.bin") })).await;
    assert_eq!(alice.ended(&id).await["state"], "completed");
    let seen = origin.handle().cookies_seen();
    assert!(seen.iter().filter(|request| request.path.ends_with("e.bin")).all(|request| request.cookie.is_none()));

    // Never in the log, at debug level.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("cookies imported"), "the log is there: {log}");
    assert!(!log.contains(SECRET), "a cookie's value reached the log");
}

#[tokio::test]
async fn hostile_cookie_files_are_refused_with_the_line_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let good = line("example.com", "/", false, "sid", "x");
    for (body, expected) in [
        (format!("{good}not a cookie line\n").into_bytes(), "line 2: 1 fields"),
        (format!("{good}{}", line(".", "/", false, "a", "b")).into_bytes(), "line 2: the domain is empty"),
        (line("com", "/", false, "a", "b").into_bytes(), "line 1: the domain \"com\" is a top-level domain"),
        (line(".co", "/", false, "a", "b").into_bytes(), "top-level domain"),
        (line("example.com", "/", false, "a", "b;c").into_bytes(), "line 1: the value of a"),
        ([good.as_bytes(), b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01"].concat(), "line 2 is not text"),
        (b"# only comments\n\n".to_vec(), "holds no cookie"),
    ] {
        let (status, answer) = alice.put_cookies(body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message} (expected {expected})");
    }
    // Over the body limit: 413, in haul's error shape.
    let (status, answer) = alice.put_cookies(good.repeat(1024 * 1024 / good.len() + 1)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (413, Some("payload_too_large")), "{answer}");
    let (status, list) = alice.call(Method::GET, "/v1/cookies", None).await;
    assert_eq!((status, list["cookies"].as_array().unwrap().len()), (200, 0), "nothing of a refused file was kept");
    // The OpenAPI document describes the jar and the archive.
    let (status, document) = alice.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let cookies = &document["paths"]["/v1/cookies"];
    for method in ["get", "put", "delete"] {
        assert!(cookies[method].is_object(), "{method} /v1/cookies: {cookies}");
    }
    assert!(cookies["put"]["requestBody"]["content"]["text/plain"].is_object(), "{cookies}");
    assert!(cookies["put"]["responses"]["415"].is_null(), "any content type is taken: {cookies}");
    assert!(
        document["paths"]["/v1/archive"]["get"].is_object() && document["paths"]["/v1/archive"]["delete"].is_object()
    );
    assert!(document["paths"]["/v1/archive/{id}"]["delete"].is_object());
    let add = &document["paths"]["/v1/downloads"]["post"];
    assert!(add["responses"]["409"]["description"].as_str().unwrap().contains("already_downloaded"), "{add}");
    assert!(document["components"]["schemas"]["CreateDownload"]["properties"]["force"].is_object());
    let (ok, _, stderr) = server.haul(&alice.token, &["cookies", "import", "/nonexistent/cookies.txt"], None);
    assert!(!ok && stderr.contains("cannot read the cookies file /nonexistent/cookies.txt"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yt_dlp_reads_a_page_behind_a_login_with_the_accounts_cookies_only() {
    let site =
        MediaSite::start_with(MediaOptions { cookie: Some(format!("session={SECRET}")), ..MediaOptions::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bob_token = new_account(dir.path(), "bob");
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let bob = Caller { server: &server, token: bob_token };
    let (status, answer) = alice.put_cookies(line("127.0.0.1", "/", false, "session", SECRET)).await;
    assert_eq!(status, 200, "{answer}");

    let page = site.muxed("Members only");
    let id = alice.add(json!({ "url": page, "kind": "media" })).await;
    let done = alice.ended(&id).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["title"], "Members only (1)");

    // Bob has no cookie for the site: refused by it.
    let id = bob.add(json!({ "url": site.muxed("Members only"), "kind": "media" })).await;
    let failed = bob.ended(&id).await;
    assert_eq!(failed["state"], "failed", "{failed}");

    // yt-dlp's copies of the jar are gone with their runs.
    let left: Vec<_> =
        std::fs::read_dir(&server.tmp).unwrap().filter_map(Result::ok).map(|entry| entry.file_name()).collect();
    assert!(
        left.iter().all(|name| !name.to_string_lossy().contains("cookies") && !name.to_string_lossy().contains("jar")),
        "{left:?}"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(SECRET), "a cookie's value reached the log");
}
