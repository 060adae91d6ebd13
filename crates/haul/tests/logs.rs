//! What a `haul serve` process writes on stderr: one line per change of a download's state (added, started,
//! paused, resumed, completed with size, time and speed, failed with the reason, stopped with the server), no
//! colour codes into a pipe, `--log-format json`, secrets masked in both; and `haul get` quiet by default.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{Origin, OriginOptions};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
/// A query parameter the log must never show.
const SECRET: &str = "s3cret-in-the-url";

/// A running `haul serve` whose stderr is a pipe, read to the end by a thread.
struct Server {
    child: Child,
    base: String,
    token: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = common::serve_command(data_dir, extra)
            .env_remove("RUST_LOG")
            .env_remove("HAUL_LOG_FORMAT")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        });
        let base = common::listening(&mut child);
        Self { child, base, token: common::token_of(data_dir), stderr: Some(stderr) }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        common::call(&self.base, &self.token, method, path, body).await
    }

    async fn add(&self, url: &str) -> String {
        let (status, body) = self.call(reqwest::Method::POST, "/v1/downloads", Some(json!({ "url": url }))).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn act(&self, id: &str, action: &str) {
        let (status, body) = self.call(reqwest::Method::POST, &format!("/v1/downloads/{id}/{action}"), None).await;
        assert_eq!(status, 200, "{action} {id}: {body}");
    }

    /// Waits until the download is in `state` and `ready` holds for it.
    async fn wait(&self, id: &str, state: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
            assert_eq!(status, 200, "{body}");
            if body["state"] == state && ready(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "still {} waiting for {state}: {body}", body["state"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server as a service manager does (SIGTERM) and returns everything it wrote on stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
        self.stderr.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one line of `stderr` that has every one of `parts`.
fn line_with<'a>(stderr: &'a str, parts: &[&str]) -> &'a str {
    let mut found = stderr.lines().filter(|line| parts.iter().all(|part| line.contains(part)));
    let line = found.next().unwrap_or_else(|| panic!("no line with {parts:?} in:\n{stderr}"));
    assert!(found.next().is_none(), "more than one line with {parts:?} in:\n{stderr}");
    line
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// A download that runs long enough to be paused, resumed and caught running by the server's stop.
async fn slow_origin() -> Origin {
    Origin::start(OriginOptions { per_connection_rate: Some(256 * 1024), ..OriginOptions::default() }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_has_a_line_per_job_event_without_colour_or_secrets() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let slow = slow_origin().await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);

    let url = format!("{}?token={SECRET}", origin.url(4 * MIB, "report.bin"));
    let done = server.add(&url).await;
    server.wait(&done, "completed", |_| true).await;
    let missing = server.add(&format!("{}/missing.bin", origin.base_url())).await;
    let failed = server.wait(&missing, "failed", |_| true).await;
    let slow_id = server.add(&slow.url(64 * MIB, "slow.bin")).await;
    server.wait(&slow_id, "active", |body| body["bytes_done"].as_u64() > Some(0)).await;
    server.act(&slow_id, "pause").await;
    server.wait(&slow_id, "paused", |_| true).await;
    server.act(&slow_id, "resume").await;
    server.wait(&slow_id, "active", |_| true).await;
    // Past the run's first reported second, so its bytes are on record for the "stopped" line.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stderr = server.stop();

    assert!(!stderr.contains("\x1b["), "colour codes into a pipe:\n{stderr}");
    assert!(!stderr.contains(SECRET), "a URL's token in the log:\n{stderr}");
    for line in stderr.lines().filter(|line| line.contains(" (account default) ")) {
        assert!(line.contains(" INFO "), "a job line at info: {line}");
    }

    // The completed download: added (URL masked), started, completed with size, time and average speed.
    let ours = format!("download {} (account default)", short(&done));
    let added = line_with(&stderr, &[&ours, "added: "]);
    assert!(added.contains("/data/4194304/report.bin?token=***"), "{added}");
    line_with(&stderr, &[&ours, "started: "]);
    let completed = line_with(&stderr, &[&ours, "completed: report.bin, 4.0 MiB in "]);
    let speed = completed.rsplit_once('(').map(|(_, speed)| speed).unwrap();
    assert!(speed.ends_with("/s)") && !speed.starts_with("0 B/s"), "{completed}");
    let order: Vec<_> = ["added: ", "started: ", "completed: "]
        .iter()
        .map(|event| stderr.find(&format!("{ours} {event}")).unwrap())
        .collect();
    assert!(order.is_sorted(), "added, started, completed in that order:\n{stderr}");

    // The failed one names the reason the API gives.
    let reason = failed["error"].as_str().unwrap();
    assert!(reason.contains("404"), "{failed}");
    let failed_line = line_with(&stderr, &[&format!("download {} (account default) failed: ", short(&missing))]);
    assert!(failed_line.ends_with(reason), "{failed_line}\nreason: {reason}");

    // Paused where it was, queued again, started from there, and named when the server's stop interrupted it.
    let slow_line = format!("download {} (account default)", short(&slow_id));
    let paused = line_with(&stderr, &[&slow_line, "paused: slow.bin at "]);
    assert!(paused.contains(" of 64.0 MiB"), "{paused}");
    line_with(&stderr, &[&slow_line, "resumed: slow.bin"]);
    line_with(&stderr, &[&slow_line, "started: slow.bin, from "]);
    line_with(&stderr, &[&slow_line, "stopped with the server: slow.bin at "]);
    // One line per change of state, none per progress tick.
    let slow_lines = stderr.lines().filter(|line| line.contains(&slow_line)).count();
    assert_eq!(slow_lines, 6, "added, started, paused, resumed, started, stopped:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_is_one_object_per_line_with_the_job_fields() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--log-format", "json"]);

    let url = format!("{}?token={SECRET}", origin.url(2 * MIB, "data.bin"));
    let done = server.add(&url).await;
    server.wait(&done, "completed", |_| true).await;
    let missing = server.add(&format!("{}/missing.bin", origin.base_url())).await;
    let failed = server.wait(&missing, "failed", |_| true).await;
    let stderr = server.stop();

    assert!(!stderr.contains(SECRET), "a URL's token in the log:\n{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    let job = |id: &str, event: &str| -> &Value {
        let mut found = lines.iter().filter(|line| line["download"] == id && line["event"] == event);
        let line = found.next().unwrap_or_else(|| panic!("no {event} line for {id} in:\n{stderr}"));
        assert!(found.next().is_none(), "two {event} lines for {id}:\n{stderr}");
        line
    };

    let added = job(&done, "added");
    assert_eq!(added["level"], "INFO");
    assert_eq!(added["target"], "haul::jobs");
    assert_eq!(added["account"], "default");
    assert!(added["timestamp"].is_string(), "{added}");
    assert!(added["url"].as_str().unwrap().ends_with("/data/2097152/data.bin?token=***"), "{added}");
    assert!(added["message"].as_str().unwrap().starts_with(&format!("download {} ", short(&done))), "{added}");
    job(&done, "started");
    let completed = job(&done, "completed");
    assert_eq!(completed["size"], 2 * MIB, "{completed}");
    assert_eq!(completed["fetched"], 2 * MIB, "{completed}");
    assert_eq!(completed["name"], "data.bin", "{completed}");
    assert_eq!(completed["state"], "completed", "{completed}");
    assert!(completed["elapsed_ms"].is_u64(), "{completed}");
    assert!(completed["speed"].as_u64() > Some(0), "{completed}");

    let failed_line = job(&missing, "failed");
    assert_eq!(failed_line["error"], failed["error"], "{failed_line}");
    assert!(failed_line["error"].as_str().unwrap().contains("404"), "{failed_line}");
    // Fields a job line does not have are left out, not null.
    assert!(failed_line.get("speed").is_none(), "{failed_line}");
}

#[test]
fn haul_get_logs_nothing_at_info_by_default() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(Origin::start(OriginOptions::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["get", "-d"])
        .arg(dir.path())
        .arg(origin.url(MIB, "quiet.bin"))
        .env_remove("HAUL_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(" INFO "), "haul get logs at info without -v:\n{stderr}");
    assert!(dir.path().join("quiet.bin").exists());
}
