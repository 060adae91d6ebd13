//! The foreign APIs as `haul serve` lays them out: the start-up banner, `--mount`, `--listen-dialect`,
//! `--open-dialect`, bad flags, and accounts kept apart through all five APIs at once, against the real binary
//! with keys made by `haul account` / `haul key`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use haul_test_support::{Origin, OriginOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Server {
    child: Child,
    /// The banner, one entry per line.
    banner: Vec<String>,
    base: String,
}

impl Server {
    /// Starts `haul serve` on a free port and reads its banner (`lines` lines).
    fn start(data_dir: &Path, extra: &[&str], lines: usize) -> Self {
        let mut child = common::serve_command(data_dir, extra).stderr(Stdio::piped()).spawn().unwrap();
        let banner = common::banner(&mut child, lines);
        let base = common::base_of(&banner[0]);
        Self { child, banner, base }
    }

    /// The URL the banner gives for `name`.
    fn url_of(&self, name: &str) -> Option<String> {
        self.banner.iter().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.next().unwrap().to_owned())
        })
    }

    /// Stops the server and returns what it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        log
    }
}

/// Runs a `haul` command on `data_dir` and returns its stdout; it must succeed.
fn haul(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haul")).args(args).arg("--data-dir").arg(data_dir).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn json_call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_mounts_own_listeners_and_the_open_app() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Keys first (the server creates the default account and its token on its first start; so does this).
    haul(dir.path(), &["token"]);
    let server = Server::start(dir.path(), &[], 8);
    let _ = server.stop();
    let videodb_key = haul(dir.path(), &["key", "create", "--account", "default", "--kind", "videodb"]);
    assert!(videodb_key.starts_with("sk-"), "{videodb_key}");
    let token = haul(dir.path(), &["token"]);

    let args = [
        "--mount",
        "videodb=/vdb",
        "--mount",
        "cloudflare=off",
        "--listen-dialect",
        "videodb=127.0.0.1:0",
        "--open-dialect",
        "ytdlp-app",
    ];
    let server = Server::start(dir.path(), &args, 10);
    let base = server.base.clone();
    assert_eq!(server.url_of("native"), Some(format!("{base}/v1")), "{:?}", server.banner);
    assert_eq!(server.url_of("page"), Some(format!("{base}/")), "the web page, with its weight: {:?}", server.banner);
    assert_eq!(server.url_of("ytdlp-app"), Some(format!("{base}/api")));
    assert_eq!(server.url_of("surge"), Some(base.clone()));
    assert_eq!(server.url_of("videodb"), Some(format!("{base}/vdb")));
    assert_eq!(server.url_of("cloudflare"), None, "switched off: {:?}", server.banner);
    // The node and its backend, then one line per API.
    let node = &server.banner[1];
    assert!(node.starts_with("  node") && node.ends_with(" on sqlite"), "{node}");
    let own = server.banner[7].clone();
    assert!(own.starts_with("  videodb") && own.ends_with("(own listener)"), "{own}");
    let own_base = own.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(own_base, base);
    // Which media tools were found, and where.
    let media = &server.banner[8];
    assert!(media.starts_with("  media") && media.contains("yt-dlp /") && media.contains("ffmpeg /"), "{media}");
    // Which destinations downloads may reach: public ones, and the loopback address the tests opened.
    let fetches = &server.banner[9];
    assert!(fetches.starts_with("  fetches") && fetches.contains("public addresses only"), "{fetches}");
    assert!(fetches.contains("except 127.0.0.1/32"), "{fetches}");

    let client = reqwest::Client::new();
    // VideoDB at its new mount and at the root of its own listener: one job, seen through both.
    let create = json!({"stream_link": origin.url(100_000, "clip.mp4"), "name": "A clip"});
    let (status, created) =
        json_call(client.post(format!("{base}/vdb/download")).header("x-access-token", &videodb_key).json(&create))
            .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for _ in 0..200 {
        let request = client.get(format!("{own_base}/download/{id}")).header("x-access-token", &videodb_key);
        let (status, job) = json_call(request).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["data"]["status"] == "done" {
            done = job;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The link handed out on the own listener points there and needs no key.
    let link = done["data"]["download_url"].as_str().expect("download_url once done").to_owned();
    assert!(link.starts_with(&own_base), "{link} should be on {own_base}");
    let bytes = client.get(&link).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len(), 100_000);
    // The old mount and the switched-off API answer the native 404.
    for path in ["/videodb/download", "/client/v4/accounts/x/stream"] {
        let (status, body) = json_call(client.get(format!("{base}{path}")).bearer_auth(&token)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
    }
    // The yt-dlp web app is open; everything else still wants its key.
    let (status, tasks) = json_call(client.get(format!("{base}/api/downloads"))).await;
    assert_eq!(status, StatusCode::OK, "{tasks}");
    assert_eq!(tasks[0]["id"], id.as_str(), "the open app acts for the default account");
    let (status, _) = json_call(client.get(format!("{base}/list"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = json_call(client.get(format!("{own_base}/download"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let log = server.stop();
    assert!(log.contains("yt-dlp web app API is open"), "the open app is warned about: {log}");
}

#[test]
fn bad_layout_flags_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--mount", "videodb"], "DIALECT=/path"),
        (&["--mount", "nope=/x"], "ytdlp-app, surge, videodb, cloudflare"),
        (&["--mount", "videodb=v"], "must start with /"),
        (&["--mount", "videodb=/v1"], "/v1 is haul's own"),
        (&["--mount", "videodb=/api"], "overlap"),
        (&["--open-dialect", "surge"], "only ytdlp-app"),
        (&["--listen-dialect", "videodb=nowhere"], "ADDR:PORT"),
        (&["--yt-dlp", "/nonexistent/yt-dlp"], "--yt-dlp /nonexistent/yt-dlp: no such executable file"),
        (&["--allow-net", "10.0.0.0/33"], "not an address range; expected ADDRESS/PREFIX"),
    ];
    for (args, expected) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// One account's keys for every API.
struct Keys {
    account: String,
    bearer: String,
    videodb: String,
    email: String,
    global: String,
}

impl Keys {
    fn create(dir: &Path, name: &str) -> Self {
        let email = format!("{name}@example.com");
        let line = haul(dir, &["account", "add", name, "--email", &email]);
        let account = line.split_whitespace().next().unwrap().to_owned();
        let key = |kind: &str| haul(dir, &["key", "create", "--account", name, "--kind", kind]);
        Self { account, bearer: key("bearer"), videodb: key("videodb"), email, global: key("cloudflare-global") }
    }
}

/// The ids an account sees through each of the five APIs.
async fn visible(client: &reqwest::Client, base: &str, keys: &Keys) -> [Vec<String>; 5] {
    let ids = |list: &Value, field: &str| -> Vec<String> {
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|x| x[field].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let (_, native) = json_call(client.get(format!("{base}/v1/downloads")).bearer_auth(&keys.bearer)).await;
    let (_, app) = json_call(client.get(format!("{base}/api/downloads")).bearer_auth(&keys.bearer)).await;
    let (_, surge) = json_call(client.get(format!("{base}/list")).bearer_auth(&keys.bearer)).await;
    let (_, videodb) =
        json_call(client.get(format!("{base}/videodb/download")).header("x-access-token", &keys.videodb)).await;
    let stream = format!("{base}/client/v4/accounts/{}/stream", keys.account);
    let (_, cloudflare) =
        json_call(client.get(stream).header("X-Auth-Email", &keys.email).header("X-Auth-Key", &keys.global)).await;
    // Cloudflare names a video by its 32-hex uid: the same id without hyphens.
    let uids: Vec<String> = ids(&cloudflare["result"], "uid");
    let hyphenate = |uid: &String| uuid_from_simple(uid);
    let mut cloudflare: Vec<String> = uids.iter().map(hyphenate).collect();
    cloudflare.sort();
    [
        ids(&native["downloads"], "id"),
        ids(&app, "id"),
        ids(&surge, "id"),
        ids(&videodb["data"]["downloads"], "id"),
        cloudflare,
    ]
}

fn uuid_from_simple(uid: &String) -> String {
    assert_eq!(uid.len(), 32, "{uid}");
    format!("{}-{}-{}-{}-{}", &uid[..8], &uid[8..12], &uid[12..16], &uid[16..20], &uid[20..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_see_only_their_own_jobs_through_all_five_apis() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    haul(dir.path(), &["token"]);
    let alice = Keys::create(dir.path(), "alice");
    let bob = Keys::create(dir.path(), "bob");
    let server = Server::start(dir.path(), &[], 8);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    // Alice adds through the native API and VideoDB, Bob through Surge, the yt-dlp app and Cloudflare.
    let created = |request: reqwest::RequestBuilder, pointer: &'static str| async move {
        let (status, body) = json_call(request).await;
        assert!(status.is_success(), "{status}: {body}");
        body.pointer(pointer).unwrap_or_else(|| panic!("{pointer} in {body}")).as_str().unwrap().to_owned()
    };
    let url = |name: &str| origin.url(50_000, name);
    let alice_ids = vec![
        created(
            client.post(format!("{base}/v1/downloads")).bearer_auth(&alice.bearer).json(&json!({"url": url("a1")})),
            "/id",
        )
        .await,
        created(
            client
                .post(format!("{base}/videodb/download"))
                .header("x-access-token", &alice.videodb)
                .json(&json!({"stream_link": url("a2")})),
            "/data/id",
        )
        .await,
    ];
    let bob_ids = vec![
        created(
            client.post(format!("{base}/download")).bearer_auth(&bob.bearer).json(&json!({"url": url("b1")})),
            "/id",
        )
        .await,
        created(
            client.post(format!("{base}/api/download")).bearer_auth(&bob.bearer).json(&json!({"url": url("b2")})),
            "/download_id",
        )
        .await,
        uuid_from_simple(
            &created(
                client
                    .post(format!("{base}/client/v4/accounts/{}/stream/copy", bob.account))
                    .bearer_auth(&bob.bearer)
                    .json(&json!({"url": url("b3")})),
                "/result/uid",
            )
            .await,
        ),
    ];
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let (alice_ids, bob_ids) = (sorted(alice_ids), sorted(bob_ids));
    for (keys, own) in [(&alice, &alice_ids), (&bob, &bob_ids)] {
        let seen = visible(&client, &base, keys).await;
        for (api, ids) in ["native", "ytdlp-app", "surge", "videodb", "cloudflare"].iter().zip(seen) {
            assert_eq!(&ids, own, "{api} shows exactly the caller's jobs");
        }
    }

    // Another account's id is not found through any API, and Bob cannot name Alice's Cloudflare account.
    let theirs = &alice_ids[0];
    let simple = theirs.replace('-', "");
    let stream = format!("{base}/client/v4/accounts/{}/stream", bob.account);
    let probes = [
        client.get(format!("{base}/v1/downloads/{theirs}")).bearer_auth(&bob.bearer),
        client.get(format!("{base}/api/download/{theirs}/file")).bearer_auth(&bob.bearer),
        client.delete(format!("{base}/api/downloads/{theirs}/remove")).bearer_auth(&bob.bearer),
        client.get(format!("{base}/download?id={theirs}")).bearer_auth(&bob.bearer),
        client.delete(format!("{base}/delete?id={theirs}")).bearer_auth(&bob.bearer),
        client.get(format!("{base}/videodb/download/{theirs}")).header("x-access-token", &bob.videodb),
        client.delete(format!("{base}/videodb/download?download_id={theirs}")).header("x-access-token", &bob.videodb),
        client.get(format!("{stream}/{simple}")).bearer_auth(&bob.bearer),
        client.delete(format!("{stream}/{simple}")).bearer_auth(&bob.bearer),
    ];
    for probe in probes {
        let (status, body) = json_call(probe).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let foreign = format!("{base}/client/v4/accounts/{}/stream", alice.account);
    let (status, body) = json_call(client.get(&foreign).bearer_auth(&bob.bearer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["success"], false, "{body}");
    // Nothing of Alice's was touched by the attempts.
    assert_eq!(visible(&client, &base, &alice).await[0], alice_ids);
    server.stop();
}
