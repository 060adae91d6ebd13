//! The download archive end to end: a real `haul serve` process, real yt-dlp on a `MediaSite` page and a real
//! origin for plain files. An add of what the account downloaded already is a 409 naming the earlier download
//! (and `haul add` skips it), `force` fetches it again, a job that only learns it is the same video once the page
//! is read fails before fetching anything, a changed file is fetched again, another account is unaffected, and
//! `haul archive ls|rm|clear`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{MediaSite, Origin, OriginOptions};
use reqwest::Method;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    token: String,
    _data_dir: PathBuf,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = common::serve_command(data_dir, &[]).stderr(Stdio::null()).spawn().unwrap();
        let base = common::listening(&mut child);
        Self { child, base, token: common::token_of(data_dir), _data_dir: data_dir.to_owned() }
    }

    /// `haul ARGS... --host BASE --token TOKEN`: whether it succeeded, its stdout and stderr.
    fn haul(&self, token: &str, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(args)
            .args(["--host", &self.base, "--token", token])
            .stdin(Stdio::null())
            .output()
            .unwrap();
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

/// One account's view of the server.
struct Caller<'a> {
    server: &'a Server,
    token: String,
}

impl Caller<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        common::call(&self.server.base, &self.token, method, path, body).await
    }

    async fn add(&self, body: Value) -> String {
        let (status, download) = self.call(Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, 201, "{download}");
        download["id"].as_str().unwrap().to_owned()
    }

    /// The download once it has ended (completed, failed or cancelled).
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

    async fn completed(&self, id: &str) -> Value {
        let download = self.ended(id).await;
        assert_eq!(download["state"], "completed", "{download}");
        download
    }

    async fn archive(&self) -> Vec<Value> {
        let (status, list) = self.call(Method::GET, "/v1/archive", None).await;
        assert_eq!(status, 200, "{list}");
        list["entries"].as_array().unwrap().clone()
    }
}

/// A bearer key of a new account `name` in the data directory.
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

/// The answer to an add the archive refuses: 409 `already_downloaded`, naming `earlier`.
fn assert_already(status: u16, answer: &Value, earlier: &str) {
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "already_downloaded", "{answer}");
    assert_eq!(answer["error"]["download"], earlier, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("already downloaded: ") && message.contains(earlier), "{message}");
    assert!(message.contains("force"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_already_downloaded_is_skipped_unless_forced_per_account() {
    let site = MediaSite::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bob_token = new_account(dir.path(), "bob");
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let bob = Caller { server: &server, token: bob_token };
    let page = site.muxed("Archived clip");

    let first = alice.add(json!({ "url": page })).await;
    alice.completed(&first).await;
    let entries = alice.archive().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    // yt-dlp's generic extraction names the `<video>` of a page this way, and the video id after the page.
    assert_eq!(entry["extractor"], "html5mediaembed", "{entry}");
    assert_eq!((entry["url"].as_str(), entry["download"].as_str()), (Some(page.as_str()), Some(first.as_str())));
    assert_eq!(entry["title"], "Archived clip (1)");
    assert_eq!(entry["video_id"], "muxed-1-1", "{entry}");
    let key = "html5mediaembed:muxed-1-1";

    // Again: refused at once, nothing asked of the site.
    site.reset_stats();
    let (status, answer) = alice.call(Method::POST, "/v1/downloads", Some(json!({ "url": page }))).await;
    assert_already(status, &answer, &first);
    assert_eq!(site.requests(&page), 0, "{:?}", site.all_stats());
    let (_, list) = alice.call(Method::GET, "/v1/downloads", None).await;
    assert_eq!(list["total"], 1, "no second download was made: {list}");

    // `haul add` says it skipped it, with its own flags, and does not fail.
    let (ok, stdout, stderr) = server.haul(&alice.token, &["add", &page]);
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(&format!("skipped {page}: already downloaded")), "{stderr}");
    assert!(stderr.contains("--force") && stderr.contains(&first), "{stderr}");

    // Another account has an archive of its own.
    let bobs = bob.add(json!({ "url": page })).await;
    bob.completed(&bobs).await;
    assert_eq!(bob.archive().await.len(), 1);
    assert_eq!(alice.archive().await[0]["download"], first.as_str(), "bob's download did not touch alice's entry");

    // Forced: fetched again, and the entry names the newest download.
    let forced = alice.add(json!({ "url": page, "force": true })).await;
    alice.completed(&forced).await;
    let entries = alice.archive().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["download"], forced.as_str());
    let (ok, stdout, stderr) = server.haul(&alice.token, &["add", "--force", "-q", &page]);
    assert!(ok && stdout.is_empty() && stderr.is_empty(), "{stdout}{stderr}");

    // haul archive ls shows it; bob can neither see nor remove alice's entry.
    let (ok, stdout, stderr) = server.haul(&alice.token, &["archive", "ls"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(key) && stdout.contains(&page), "{stdout}");
    let alice_entry = entries[0]["id"].as_str().unwrap().to_owned();
    let (status, answer) = bob.call(Method::DELETE, &format!("/v1/archive/{alice_entry}"), None).await;
    assert_eq!(status, 404, "{answer}");
    let (ok, _, stderr) = server.haul(&bob.token, &["archive", "rm", &alice_entry[..8]]);
    assert!(!ok && stderr.contains("no archive entry"), "{stderr}");
    assert_eq!(alice.archive().await.len(), 1);

    // Forgotten: the next add downloads it.
    let (ok, stdout, stderr) = server.haul(&alice.token, &["archive", "rm", key]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(&format!("forgot {key}")), "{stdout}");
    assert!(alice.archive().await.is_empty());
    assert_eq!(bob.archive().await.len(), 1, "bob's entry stays");
    let again = alice.add(json!({ "url": page })).await;
    alice.completed(&again).await;

    let (ok, stdout, stderr) = server.haul(&bob.token, &["archive", "clear"]);
    assert!(ok && stdout.contains("forgot 1 archive entries"), "{stdout}{stderr}");
    assert!(bob.archive().await.is_empty());
    assert_eq!(alice.archive().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finds_its_video_in_the_archive_once_read_fails_before_fetching() {
    let site = MediaSite::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let page = site.muxed("Raced");

    // Two adds before either has run: the archive knows nothing yet, so both are made.
    let first = alice.add(json!({ "url": page, "paused": true })).await;
    let second = alice.add(json!({ "url": page, "paused": true })).await;
    let (status, _) = alice.call(Method::POST, &format!("/v1/downloads/{first}/resume"), None).await;
    assert_eq!(status, 200);
    alice.completed(&first).await;
    let clip_bytes: u64 =
        site.all_stats().iter().filter(|(path, _)| path.ends_with(".mp4")).map(|(_, s)| s.bytes_sent).sum();
    assert!(clip_bytes > 0);

    site.reset_stats();
    let (status, _) = alice.call(Method::POST, &format!("/v1/downloads/{second}/resume"), None).await;
    assert_eq!(status, 200);
    let ended = alice.ended(&second).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap();
    assert!(error.starts_with("already downloaded: ") && error.contains(&first), "{error}");
    let fetched: u64 =
        site.all_stats().iter().filter(|(path, _)| path.ends_with(".mp4")).map(|(_, s)| s.bytes_sent).sum();
    assert_eq!(fetched, 0, "the video was not fetched again: {:?}", site.all_stats());
    assert_eq!(alice.archive().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_skipped_while_it_is_the_same_version() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let url = origin.url(300 * 1024, "release.iso");

    let first = alice.add(json!({ "url": url })).await;
    alice.completed(&first).await;
    let entries = alice.archive().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((entries[0]["extractor"].as_str(), entries[0]["title"].as_str()), (Some("http"), Some("release.iso")));

    let (status, answer) = alice.call(Method::POST, "/v1/downloads", Some(json!({ "url": url }))).await;
    assert_already(status, &answer, &first);

    // The file changed on its server (a new ETag and date): fetched again, and the archive knows both versions.
    origin.handle().set_version(1);
    let second = alice.add(json!({ "url": url })).await;
    let done = alice.completed(&second).await;
    assert_ne!(done["path"], alice.call(Method::GET, &format!("/v1/downloads/{first}"), None).await.1["path"]);
    assert_eq!(alice.archive().await.len(), 2);
    let (status, answer) = alice.call(Method::POST, "/v1/downloads", Some(json!({ "url": url }))).await;
    assert_already(status, &answer, &second);

    // Forced: made even though it is the same version.
    let (status, answer) = alice.call(Method::POST, "/v1/downloads", Some(json!({ "url": url, "force": true }))).await;
    assert_eq!(status, 201, "{answer}");
}
