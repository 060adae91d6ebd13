//! Every shell example in the README that calls `curl` is run as written against a real `haul serve`, so that
//! none goes stale: the same paths, methods, headers and bodies. Only what cannot be literal is put in: the
//! server's address for `127.0.0.1:1700`, a loopback origin's file for each `https://example.com/...` URL, and
//! real ids for the `ID` and `UID` placeholders. `haul` on `PATH` acts on the server's data directory.
//!
//! Each `curl` reports its status; the test fails on an answer that means the example itself is wrong (400, 404,
//! 405, 415, 422: a path, method, field or body the server does not take). A 409 is an example's documented
//! answer for a job in the wrong state, so it passes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{Origin, OriginOptions};

/// The README's ```sh blocks that call curl, with the line each starts on.
fn curl_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some((number + 2, String::new())),
            (Some(_), "```") => {
                let (start, block) = current.take().unwrap();
                if block.contains("curl ") {
                    blocks.push((start, block));
                }
            }
            (Some((_, block)), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A finished download of a short video (a block's `ID`: each block may delete it; a video has what every
/// example asks of an ID, a thumbnail and an audio track included).
async fn finished_download(base: &str, token: &str, video: &str) -> String {
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/downloads"))
        .bearer_auth(token)
        // The same video for every block: `force`, or the archive would answer that it was downloaded already.
        .json(&serde_json::json!({"url": video, "force": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: serde_json::Value = client
            .get(format!("{base}/v1/downloads/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["state"] == "completed" {
            return id;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_curl_example_in_the_readme_runs_as_written() {
    if Command::new("curl").arg("--version").output().is_err() || Command::new("jq").arg("--version").output().is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "curl and jq are needed (scripts/browser-tools.sh installs them)");
        eprintln!("not run: curl or jq missing");
        return;
    }
    if !haul_test_support::media::tools_available() {
        assert!(std::env::var_os("CI").is_none(), "ffmpeg is needed to make the examples' video");
        eprintln!("not run: ffmpeg missing");
        return;
    }
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let site = haul_test_support::MediaSite::start().await.unwrap();
    let video = site.clip_url(haul_test_support::media::CLIP_360);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut child = common::serve_command(&data, &[]).stderr(Stdio::null()).spawn().unwrap();
    let base = common::listening(&mut child);
    let address = base.trim_start_matches("http://").to_owned();
    let token = common::token_of(&data);

    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let blocks = curl_blocks(&readme);
    assert!(blocks.len() >= 6, "the README's curl examples were not found: {}", blocks.len());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_haul")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let origin_base = origin.url(1, "x").split("/data/").next().unwrap().to_owned();
    for (start, block) in blocks {
        let id = finished_download(&base, &token, &video).await;
        let uid = id.replace('-', "");
        let script = block
            .replace("127.0.0.1:1700", &address)
            .replace("localhost:1700", &address)
            .replace("https://example.com/", &format!("{origin_base}/data/100000/"))
            .replace("550e8400-e29b-41d4-a716-446655440000", &id)
            .replace("/UID/", &format!("/{uid}/"))
            .replace("/ID/", &format!("/{id}/"))
            .replace("/ID\"", &format!("/{id}\""))
            .replace("/ID?", &format!("/{id}?"))
            .replace("/ID ", &format!("/{id} "))
            .replace("\"ID\"", &format!("\"{id}\""));
        // Each curl says what it got, on stderr, and never waits long (the event stream would run for ever). A
        // file is fetched once it is there, as a reader who just added its download would wait for it.
        let prelude = r#"
curl() {
    local arg
    for arg in "$@"; do
        case "$arg" in
            http*/file|http*/file\?*) for _ in $(seq 100); do
                    [ "$(command curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$arg")" = 200 ] && break
                    sleep 0.1
                done ;;
        esac
    done
    command curl --max-time 5 --write-out '%{stderr}HTTP %{http_code}\n' "$@" || [ $? -eq 28 ]
}
export TOKEN="$HAUL_TEST_TOKEN"
"#;
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("HAUL_DATA_DIR", &data)
            .env("HAUL_HOST", &base)
            .env("HAUL_TEST_TOKEN", &token)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "README block at line {start} failed:\n{script}\n{stderr}\n{stdout}");
        let statuses: Vec<u16> = stderr
            .lines()
            .filter_map(|line| line.strip_prefix("HTTP "))
            .filter_map(|code| code.trim().parse().ok())
            .collect();
        assert!(!statuses.is_empty(), "README block at line {start} reported no answers:\n{stderr}");
        for status in &statuses {
            assert!(
                !matches!(status, 0 | 400 | 404 | 405 | 415 | 422),
                "README block at line {start}: an example got {status}:\n{script}\n{stderr}\n{stdout}"
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
