//! `haul serve` as a process: the data directory and token, a SIGKILL in the middle of a download followed by a
//! restart on the same data, SIGTERM, and a load of many downloads at once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{Origin, OriginOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Server {
    /// Start `haul serve` on a free port of 127.0.0.1 and wait for its "listening" line.
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = common::serve_command(data_dir, extra).stderr(Stdio::null()).spawn().unwrap();
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

    async fn download(&self, id: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn wait_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.download(id).await;
            if body["state"] == state {
                return body;
            }
            assert!(Instant::now() < deadline, "still {} waiting for {state}: {body}", body["state"]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes the resume record next to a partial file says are on disk.
fn recorded_bytes(record: &Path) -> u64 {
    let Ok(text) = std::fs::read(record) else { return 0 };
    let Ok(record) = serde_json::from_slice::<Value>(&text) else { return 0 };
    record["done"].as_array().unwrap().iter().map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap()).sum()
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_token_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for name in ["haul.db", "downloads", "thumbnails", "token"] {
        assert!(dir.path().join(name).exists(), "{name} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token is readable by its owner only");
    }
    let printed = Command::new(env!("CARGO_BIN_EXE_haul")).args(["token", "--data-dir"]).arg(dir.path()).output();
    assert_eq!(String::from_utf8(printed.unwrap().stdout).unwrap().trim(), server.token);

    let health = reqwest::get(format!("{}/health", server.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(health, json!({"status": "ok", "port": port}), "Surge's /health shape, with the real port");
    let denied = reqwest::get(format!("{}/v1/downloads", server.base)).await.unwrap();
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_download_then_restart_completes_without_refetching() {
    let size = 16 * MIB;
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(256 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let id = server.add(&origin.url(size, "k.bin")).await;
    // Wait until the resume record beside the partial file holds real progress, then kill without warning.
    let record = dir.path().join("downloads").join("k.bin.part.haul");
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = loop {
        let done = recorded_bytes(&record);
        if done >= 4 * MIB {
            break done;
        }
        assert!(Instant::now() < deadline, "no progress recorded: {}", server.download(&id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    origin.handle().reset_stats();
    let server = Server::start(dir.path(), &[]);
    let done = server.wait_state(&id, "completed").await;
    let path = dir.path().join("downloads").join(done["path"].as_str().unwrap());
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(size, "k.bin"));
    let refetched = origin.handle().stats().body_bytes_sent;
    assert!(refetched <= size - saved + 2 * MIB, "refetched {refetched} bytes after {saved} were recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_pauses_and_no_resume_keeps_jobs_paused() {
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(256 * 1024), ..OriginOptions::default() })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let id = server.add(&origin.url(8 * MIB, "t.bin")).await;
    // Stop it once the first MiB is on disk and recorded, so the flushed progress is something to check.
    let record = dir.path().join("downloads").join("t.bin.part.haul");
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded_bytes(&record) < MIB {
        assert!(Instant::now() < deadline, "no progress recorded: {}", server.download(&id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
    drop(server);

    let server = Server::start(dir.path(), &["--no-resume"]);
    let body = server.download(&id).await;
    assert_eq!(body["state"], "paused", "{body}");
    assert!(body["bytes_done"].as_u64().unwrap() > 0, "progress was flushed at the stop: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_downloads_all_complete_with_at_most_max_active_running() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-active", "4"]);
    let mut ids = Vec::new();
    let server = &server;
    let adds = (0..500).map(|n| {
        let url = origin.url(16 * 1024 + n, &format!("f{n}.bin"));
        async move { server.add(&url).await }
    });
    for id in futures_util::future::join_all(adds).await {
        ids.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, stats) = server.call(reqwest::Method::GET, "/v1/stats", None).await;
        assert!(stats["active"].as_u64().unwrap() <= 4, "{stats}");
        if stats["completed"] == 500 {
            break;
        }
        assert!(Instant::now() < deadline, "not all done: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Small files take one connection each, so the origin never saw more than max-active bodies at once.
    assert!(origin.handle().stats().peak_concurrent <= 4, "{:?}", origin.handle().stats().peak_concurrent);
    let (_, list) = server.call(reqwest::Method::GET, "/v1/downloads?limit=1000", None).await;
    assert_eq!(list["downloads"].as_array().unwrap().len(), 500);
    for (n, id) in ids.iter().enumerate().step_by(50) {
        let body = server.download(id).await;
        let path = dir.path().join("downloads").join(body["path"].as_str().unwrap());
        assert_eq!(sha256_of(&path), origin.handle().file_sha256(16 * 1024 + n as u64, &format!("f{n}.bin")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_account_sees_only_its_own_downloads() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let haul = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_haul")).args(args).arg("--data-dir").arg(dir.path()).output();
        let output = output.unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    haul(&["account", "add", "bob"]);
    let bob_key = haul(&["key", "create", "--account", "bob"]);
    let bob = Server { child: Command::new("true").spawn().unwrap(), base: server.base.clone(), token: bob_key };

    let mine = server.add(&origin.url(MIB, "default.bin")).await;
    server.wait_state(&mine, "completed").await;
    let theirs = bob.add(&origin.url(MIB, "bob.bin")).await;
    bob.wait_state(&theirs, "completed").await;

    for (who, other_id) in [(&server, &theirs), (&bob, &mine)] {
        let (_, list) = who.call(reqwest::Method::GET, "/v1/downloads", None).await;
        assert_eq!(list["downloads"].as_array().unwrap().len(), 1, "{list}");
        for path in [format!("/v1/downloads/{other_id}"), format!("/v1/downloads/{other_id}/file")] {
            let (status, body) = who.call(reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 404, "another account's download is not found: {path} {body}");
        }
        let (status, _) = who.call(reqwest::Method::DELETE, &format!("/v1/downloads/{other_id}"), None).await;
        assert_eq!(status, 404);
    }
    let revoked = haul(&["key", "ls"]);
    let key_id = revoked.lines().find(|line| line.contains("bob")).unwrap().split_whitespace().next().unwrap();
    haul(&["key", "revoke", key_id]);
    let (status, _) = bob.call(reqwest::Method::GET, "/v1/downloads", None).await;
    assert_eq!(status, 401, "a revoked key opens nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_one_data_dir_refuses_to_start_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("HAUL_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success(), "the second server started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let expected = format!("another haul serve (process {}) is using the data directory", server.child.id());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(second.stdout.is_empty(), "it never listened: {}", String::from_utf8_lossy(&second.stdout));
    // The first goes on as before.
    assert_eq!(reqwest::get(format!("{}/health", server.base)).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_is_the_platforms_whatever_the_current_dir_and_files_can_live_elsewhere() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let current = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-net", "127.0.0.1/32", "--downloads-dir"])
        .arg(files.path())
        .current_dir(current.path())
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("HAUL_DATA_DIR")
        .env_remove("HAUL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let data = home.path().join(".local/share/haul");
    assert!(line.contains(&format!("data in {}", data.display())), "{line}");
    assert!(line.contains(&format!("files in {}", files.path().display())), "{line}");
    let server = Server { base: common::base_of(&line), token: common::token_of(&data), child };
    assert_eq!(std::fs::read_dir(current.path()).unwrap().count(), 0, "nothing in the current directory");

    let url = origin.url(100_000, "report.pdf");
    let (status, created) =
        server.call(reqwest::Method::POST, "/v1/downloads", Some(json!({"url": url, "directory": "docs"}))).await;
    assert_eq!(status, 201, "{created}");
    server.wait_state(created["id"].as_str().unwrap(), "completed").await;
    assert!(files.path().join("docs/report.pdf").is_file());
    assert!(!data.join("downloads/docs").exists());
    let (status, refused) =
        server.call(reqwest::Method::POST, "/v1/downloads", Some(json!({"url": url, "directory": "../out"}))).await;
    assert_eq!(status, 400, "a request's directory stays inside --downloads-dir: {refused}");
}

/// The origin's peak of concurrent responses while `haul serve ARGS` fetches three files of 8 MiB with 8
/// connections each.
async fn peak_connections(extra: &[&str]) -> u64 {
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(2 * 1024 * 1024), ..OriginOptions::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), extra);
    let mut ids = Vec::new();
    for n in 0..3 {
        let url = origin.url(8 * MIB, &format!("f{n}.bin"));
        let (status, body) =
            server.call(reqwest::Method::POST, "/v1/downloads", Some(json!({"url": url, "connections": 8}))).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        server.wait_state(id, "completed").await;
    }
    let stats = origin.handle().stats();
    assert_eq!(stats.responses_503, 0);
    stats.peak_concurrent
}

#[tokio::test(flavor = "multi_thread")]
async fn the_servers_downloads_share_one_connection_budget_per_host() {
    // Six connection slots for the host, and each download's first request (the probe) besides.
    let capped = peak_connections(&["--max-connections-per-host", "6"]).await;
    assert!(capped <= 6 + 3, "peak of {capped} concurrent responses under a budget of 6");
    let uncapped = peak_connections(&["--max-connections-per-host", "0"]).await;
    assert!(uncapped > 9, "without the budget the three downloads open more: {uncapped}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_fetches_https_from_an_authority_given_with_ca_cert() {
    use haul_test_support::{Origin, OriginOptions, TlsMode};
    let origin = Origin::start(OriginOptions { tls: Some(TlsMode::Valid), ..OriginOptions::default() }).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let ca = data.path().join("ca.pem");
    std::fs::write(&ca, origin.ca_pem().unwrap()).unwrap();
    // Without it the job fails at once, saying why.
    let plain = tempfile::tempdir().unwrap();
    let server = Server::start(plain.path(), &[]);
    let id = server.add(&origin.url(MIB, "a.bin")).await;
    let failed = server.wait_state(&id, "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("is not valid for it (signed by an authority"), "{failed}");
    drop(server);

    let server = Server::start(data.path(), &["--ca-cert", ca.to_str().unwrap()]);
    let id = server.add(&origin.url(MIB, "a.bin")).await;
    let done = server.wait_state(&id, "completed").await;
    let path = data.path().join("downloads").join(done["path"].as_str().unwrap());
    assert_eq!(sha256_of(&path), origin.handle().file_sha256(MIB, "a.bin"));
}

/// `--metrics-listen`: the banner names the metrics listener, which answers without a token, while `/metrics` on
/// the API's listener still wants the server's.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::serve_command(dir.path(), &["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = common::banner(&mut child, 11);
    let base = common::base_of(&banner[0]);
    let line = banner.iter().find(|line| line.trim_start().starts_with("metrics")).expect("a metrics line").clone();
    assert!(line.ends_with("/metrics (no token)"), "{line}");
    let url = line.split_whitespace().nth(1).unwrap().to_owned();
    let scraped = reqwest::get(&url).await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(text.contains("haul_jobs{state=\"queued\"} 0") && text.trim_end().ends_with("# EOF"), "{text}");
    let guarded = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(guarded.status(), 401, "the API's own /metrics wants the token");
    let _ = child.kill();
    let _ = child.wait();
}
