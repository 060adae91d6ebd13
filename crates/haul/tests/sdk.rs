//! haul driven only through the official SDKs its foreign APIs stand in for, at pinned versions: the Python
//! scripts in `tests/sdk/` run in the virtual environment `scripts/sdk-venv.sh` makes (test.sh makes it first),
//! against a real `haul serve` and a real origin. A test without that environment says so and does not run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;

use haul_test_support::{Origin, OriginOptions};
use sha2::{Digest, Sha256};

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = common::serve_command(dir.path(), &[]).stderr(Stdio::null()).spawn().unwrap();
        let base = common::listening(&mut child);
        Self { child, base, dir }
    }

    /// `haul ARGS --data-dir DIR`'s output.
    fn haul(&self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
        let output = command.args(args).arg("--data-dir").arg(self.dir.path()).output().unwrap();
        assert!(output.status.success(), "haul {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDKs' Python, when the environment exists.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/sdk-venv/bin/python");
    venv.is_file().then_some(venv)
}

/// Runs `tests/sdk/SCRIPT` with `args`; panics with its output unless it succeeds.
fn run_flow(python: &Path, script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(script);
    let output = Command::new(python).arg(path).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{text}");
    // The flow's last line: a script that stopped early without an error has not passed.
    assert!(text.contains("flow: ok"), "{script} did not finish:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_videodb_sdk_downloads_polls_lists_and_deletes() {
    let Some(python) = python() else {
        eprintln!("not run: no SDK environment (scripts/sdk-venv.sh makes target/sdk-venv)");
        return;
    };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start();
    let key = server.haul(&["key", "create", "--account", "default", "--kind", "videodb"]);
    server.haul(&["account", "add", "other"]);
    let other_key = server.haul(&["key", "create", "--account", "other", "--kind", "videodb"]);
    let size = 1024 * 1024 + 3;
    let url = origin.url(size, "clip.mp4");
    let sha256 = hex::encode(Sha256::digest(reqwest::get(&url).await.unwrap().bytes().await.unwrap()));
    let failing = format!("{}/missing", url.rsplit_once('/').unwrap().0.replace("/data/", "/nothing/"));
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        run_flow(&python, "videodb_flow.py", &[&base, &key, &other_key, &url, &sha256, &failing]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cloudflare_sdk_copies_downloads_lists_and_deletes() {
    let Some(python) = python() else {
        eprintln!("not run: no SDK environment (scripts/sdk-venv.sh makes target/sdk-venv)");
        return;
    };
    if !haul_test_support::media::tools_available() {
        eprintln!("not run: ffmpeg and ffprobe are needed to make the test video");
        return;
    }
    let site = haul_test_support::MediaSite::start().await.unwrap();
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let server = Server::start();
    let token = std::fs::read_to_string(server.dir.path().join("token")).unwrap().trim().to_owned();
    let account = std::fs::read_to_string(server.dir.path().join("account")).unwrap().trim().to_owned();
    let other = server.haul(&["account", "add", "other"]).split_whitespace().next().unwrap().to_owned();
    let other_token = server.haul(&["key", "create", "--account", "other"]);
    let video = site.clip_url(haul_test_support::media::CLIP_360);
    let sha256 = hex::encode(Sha256::digest(site.bytes(haul_test_support::media::CLIP_360).unwrap()));
    let failing = origin.url(1000, "x").replace("/data/", "/nothing/");
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        let args = [base.as_str(), &token, &account, &other_token, &other, &video, &sha256, &failing];
        run_flow(&python, "cloudflare_flow.py", &args);
    })
    .await
    .unwrap();
}
