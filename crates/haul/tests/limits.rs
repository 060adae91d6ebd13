//! Bandwidth at runtime on a real `haul serve`: the server's limit, a host's and a download's own, each changed
//! with the CLI while a download runs, and measured on that download; and the settings outliving a restart.

mod common;

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{call, listening, serve_command, token_of};
use haul_test_support::{Origin, OriginOptions};
use reqwest::Method;
use serde_json::json;

const MIB: u64 = 1 << 20;

struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = serve_command(data, extra).spawn().unwrap();
    let base = listening(&mut child);
    Server { child, base, token: token_of(data) }
}

/// `haul ARGS` against the server, which must succeed.
fn haul(server: &Server, args: &[&str]) -> String {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(args)
        .args(["--host", &server.base, "--token", &server.token])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "haul {args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

async fn bytes_done(server: &Server, id: &str) -> u64 {
    let (status, download) = call(&server.base, &server.token, Method::GET, &format!("/v1/downloads/{id}"), None).await;
    assert_eq!(status, 200, "{download}");
    assert_eq!(download["state"], "active", "the download stopped running: {download}");
    download["bytes_done"].as_u64().unwrap()
}

/// The download's speed from half a second to two and a half seconds after a change: the limit must hold within
/// two seconds of it.
async fn speed_after_change(server: &Server, id: &str, changed: Instant) -> f64 {
    tokio::time::sleep_until((changed + Duration::from_millis(500)).into()).await;
    let (from, start) = (bytes_done(server, id).await, Instant::now());
    tokio::time::sleep_until((changed + Duration::from_millis(2500)).into()).await;
    let to = bytes_done(server, id).await;
    (to - from) as f64 / start.elapsed().as_secs_f64()
}

fn assert_near(measured: f64, limit: u64, what: &str) {
    let ratio = measured / limit as f64;
    eprintln!("{what}: {:.0} KiB/s against a limit of {} KiB/s ({ratio:.3})", measured / 1024.0, limit / 1024);
    assert!((0.9..=1.1).contains(&ratio), "{what}: {measured:.0} B/s is not within 10% of {limit} B/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_changed_at_runtime_hold_on_a_running_download_within_two_seconds() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &["--speed-limit", "8M"]);
    let url = origin.url(64 * MIB, "limited.bin");
    let (status, added) =
        call(&server.base, &server.token, Method::POST, "/v1/downloads", Some(json!({ "url": url }))).await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, download) = call(&server.base, &server.token, Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if download["bytes_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started: {download}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The server's limit, lowered from the 8M it started with.
    let shown = haul(&server, &["limit", "2M"]);
    let changed = Instant::now();
    assert!(shown.contains("speed limit  2.0 MiB/s"), "{shown}");
    assert_near(speed_after_change(&server, &id, changed).await, 2 * MIB, "server limit 2M");

    // The download's own limit, lower still.
    haul(&server, &["set", &id[..8], "--speed-limit", "1M"]);
    let changed = Instant::now();
    assert_near(speed_after_change(&server, &id, changed).await, MIB, "download limit 1M");

    // The host's limit binds once the download's own is lifted (the server's is 2M).
    let shown = haul(&server, &["limit", "1536K", "--for", "127.0.0.1"]);
    haul(&server, &["set", &id[..8], "--speed-limit", "off"]);
    let changed = Instant::now();
    assert!(shown.contains("host limit   127.0.0.1  1.5 MiB/s"), "{shown}");
    assert_near(speed_after_change(&server, &id, changed).await, 3 * MIB / 2, "host limit 1.5M");

    // Every limit lifted: the rest comes at once, and the file is whole.
    haul(&server, &["limit", "off", "--for", "127.0.0.1"]);
    let shown = haul(&server, &["limit", "off"]);
    assert!(shown.contains("speed limit  unlimited") && shown.contains("now          unlimited"), "{shown}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let download = loop {
        let (_, download) = call(&server.base, &server.token, Method::GET, &format!("/v1/downloads/{id}"), None).await;
        if download["state"] == "completed" {
            break download;
        }
        assert!(Instant::now() < deadline, "the download did not finish once unlimited: {download}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let path = data.path().join("downloads").join(download["filename"].as_str().unwrap());
    let digest = <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(path).unwrap());
    assert_eq!(hex::encode(digest), origin.handle().file_sha256(64 * MIB, "limited.bin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked_kept_across_a_restart_and_the_operators_alone() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &["--host-limit", "example.com=3M"]);
    let (base, token) = (server.base.clone(), server.token.clone());
    let (status, settings) = call(
        &base,
        &token,
        Method::PATCH,
        "/v1/settings",
        Some(json!({"speed_limit": "10M", "schedule": "mon-fri 08:00-18:00 2M; sat,sun 00:00-24:00 pause"})),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["speed_limit"], 10 * MIB);
    assert_eq!(settings["host_limits"]["example.com"], 3 * MIB);
    assert_eq!(settings["schedule"], "mon-fri 08:00-18:00 2M; sat,sun 00:00-24:00 pause");

    // Mistakes are 400s that say what to write, and change nothing.
    for (body, needle) in [
        (json!({"speed_limit": 0}), "speed_limit must be above 0"),
        (json!({"speed_limit": "fast"}), "speed_limit: invalid rate"),
        (json!({"host_limits": {"http://example.com/": "1M"}}), "is not a host name"),
        (json!({"schedule": "weekdays 9-5 1M"}), "unknown day \"weekdays\""),
        (json!({"limit": "1M"}), "unknown field"),
    ] {
        let (status, answer) = call(&base, &token, Method::PATCH, "/v1/settings", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }

    // Another account's key can neither read nor change the server's settings.
    let key = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["account", "add", "guest", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key = Command::new(env!("CARGO_BIN_EXE_haul"))
        .args(["key", "create", "--account", "guest", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let guest = String::from_utf8_lossy(&key.stdout).split_whitespace().last().unwrap().to_owned();
    for method in [Method::GET, Method::PATCH] {
        let body = (method == Method::PATCH).then(|| json!({"speed_limit": null}));
        let (status, answer) = call(&base, &guest, method.clone(), "/v1/settings", body).await;
        assert_eq!(status, 403, "{method} by another account: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("server's own token"), "{answer}");
    }

    // Stored: a restart without flags keeps them.
    drop(server);
    let server = start(data.path(), &[]);
    let (status, settings) = call(&server.base, &server.token, Method::GET, "/v1/settings", None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["speed_limit"], 10 * MIB);
    assert_eq!(settings["host_limits"]["example.com"], 3 * MIB);
    assert_eq!(settings["schedule"], "mon-fri 08:00-18:00 2M; sat,sun 00:00-24:00 pause");
    // A flag given at start wins over what was stored; "off" removes the schedule.
    drop(server);
    let server = start(data.path(), &["--speed-limit", "0", "--schedule", "off"]);
    let shown = haul(&server, &["limit"]);
    assert!(shown.contains("speed limit  unlimited"), "{shown}");
    assert!(shown.contains("host limit   example.com  3.0 MiB/s"), "{shown}");
    assert!(shown.contains("schedule     none"), "{shown}");
}
