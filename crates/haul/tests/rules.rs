//! Rules (categories) end to end: a real `haul serve` process and a real origin; where the files land on disk, the
//! priority the downloads show, what one account's rules do to another's downloads, the 400s of rules an add
//! would refuse, and `haul rule add|ls|mv|rm`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use haul_test_support::{Origin, OriginOptions};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const SIZE: u64 = 64 * 1024;

struct Server {
    child: Child,
    base: String,
    token: String,
    data_dir: PathBuf,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = common::serve_command(data_dir, &[]).stderr(Stdio::null()).spawn().unwrap();
        let base = common::listening(&mut child);
        Self { child, base, token: common::token_of(data_dir), data_dir: data_dir.to_owned() }
    }

    /// `haul ARGS... --host BASE --token TOKEN`: whether it succeeded, its stdout and stderr.
    fn haul(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(args)
            .args(["--host", &self.base, "--token", &self.token])
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

    async fn add_rule(&self, body: Value) -> Value {
        let (status, rule) = self.call(Method::POST, "/v1/rules", Some(body)).await;
        assert_eq!(status, 201, "{rule}");
        rule
    }

    async fn add(&self, body: Value) -> String {
        let (status, download) = self.call(Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, 201, "{download}");
        download["id"].as_str().unwrap().to_owned()
    }

    /// The download once completed.
    async fn completed(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, download) = self.call(Method::GET, &format!("/v1/downloads/{id}"), None).await;
            assert_eq!(status, 200, "{download}");
            match download["state"].as_str() {
                Some("completed") => return download,
                Some("failed" | "cancelled") => panic!("download {id} ended {download}"),
                _ if Instant::now() > deadline => panic!("download {id} did not complete: {download}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
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

#[tokio::test]
async fn rules_choose_the_directory_and_priority_of_new_downloads() {
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bob_token = new_account(dir.path(), "bob");
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let bob = Caller { server: &server, token: bob_token };

    // The first rule answers with its Location.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/rules", server.base))
        .bearer_auth(&alice.token)
        .json(&json!({"name": "ISOs", "extensions": [".ISO"], "directory": "isos", "priority": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let isos: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/v1/rules/{}", isos["id"].as_str().unwrap()));
    assert_eq!((isos["position"].as_u64(), &isos["extensions"]), (Some(1), &json!(["iso"])));
    let notes = alice.add_rule(json!({"url_pattern": "http://*/data/*/NOTES-*", "directory": "notes/text"})).await;
    let images = alice
        .add_rule(json!({"host": "127.0.0.1", "extensions": ["img"], "directory": "images", "priority": -3}))
        .await;
    assert_eq!((notes["position"].as_u64(), images["position"].as_u64()), (Some(2), Some(3)));
    // Bob's rule would take every .bin; it never touches Alice's downloads.
    bob.add_rule(json!({"extensions": ["bin"], "directory": "bobs", "priority": 9})).await;

    let (status, listed) = alice.call(Method::GET, "/v1/rules", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["rules"].as_array().unwrap().iter().map(|rule| rule["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [&isos["id"], &notes["id"], &images["id"]].map(|id| id.as_str().unwrap()));

    // (name, the request's extra fields, directory, priority) for Alice's downloads.
    let cases = [
        ("ubuntu.iso", json!({}), "isos", 5),
        ("DEBIAN.ISO", json!({}), "isos", 5),
        ("notes-1.txt", json!({}), "notes/text", 0),
        ("disk.img", json!({}), "images", -3),
        ("plain.bin", json!({}), "", 0),
        // An explicit directory wins (the priority still comes from the rule); an explicit priority too.
        ("mine.iso", json!({"directory": "mine"}), "mine", 5),
        ("urgent.iso", json!({"priority": 9}), "isos", 9),
        ("root.iso", json!({"directory": ""}), "", 5),
        // The client's own file name counts as the file's type.
        ("get.php", json!({"filename": "named.iso"}), "isos", 5),
    ];
    let mut added = Vec::new();
    for (name, extra, directory, priority) in &cases {
        let mut body = json!({"url": origin.url(SIZE, name)});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        added.push((alice.add(body).await, *name, *directory, *priority));
    }
    // A query that looks like a file type does not make one.
    let query = alice.add(json!({"url": format!("{}?x=.iso", origin.url(SIZE, "page"))})).await;
    let theirs = bob.add(json!({"url": origin.url(SIZE, "bobs.iso")})).await;

    let downloads = server.data_dir.join("downloads");
    for (id, name, directory, priority) in added {
        let download = alice.completed(&id).await;
        assert_eq!(download["priority"], priority, "{name}: {download}");
        let file = download["filename"].as_str().unwrap_or(name);
        let expected = if directory.is_empty() { file.to_owned() } else { format!("{directory}/{file}") };
        assert_eq!(download["path"], expected.as_str(), "{name}: {download}");
        assert_eq!(sha256_of(&downloads.join(&expected)), origin.handle().file_sha256(SIZE, name), "{name}");
    }
    let download = alice.completed(&query).await;
    assert_eq!((download["path"].as_str(), download["priority"].as_i64()), (Some("page"), Some(0)));
    let download = bob.completed(&theirs).await;
    assert_eq!((download["path"].as_str(), download["priority"].as_i64()), (Some("bobs.iso"), Some(0)), "{download}");
    assert!(downloads.join("bobs.iso").is_file());

    // Bob neither sees nor removes Alice's rules.
    let alices = format!("/v1/rules/{}", isos["id"].as_str().unwrap());
    let (status, listed) = bob.call(Method::GET, "/v1/rules", None).await;
    assert_eq!((status, listed["rules"].as_array().unwrap().len()), (200, 1), "{listed}");
    for method in [Method::GET, Method::DELETE] {
        let (status, error) = bob.call(method.clone(), &alices, None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")), "{method} {error}");
    }
    let (status, moved) = bob.call(Method::PATCH, &alices, Some(json!({"position": 1}))).await;
    assert_eq!(status, 404, "{moved}");
    let (status, _) = alice.call(Method::GET, &alices, None).await;
    assert_eq!(status, 200);

    // Moving and removing keep the positions 1, 2, ...; a removed rule no longer applies.
    let images_path = format!("/v1/rules/{}", images["id"].as_str().unwrap());
    let (status, moved) =
        alice.call(Method::PATCH, &images_path, Some(json!({"position": 1, "name": "Disk images"}))).await;
    assert_eq!((status, moved["position"].as_u64(), moved["name"].as_str()), (200, Some(1), Some("Disk images")));
    let (status, _) = alice.call(Method::DELETE, &alices, None).await;
    assert_eq!(status, 204);
    let (_, listed) = alice.call(Method::GET, "/v1/rules", None).await;
    let order: Vec<(u64, &str)> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| (rule["position"].as_u64().unwrap(), rule["id"].as_str().unwrap()))
        .collect();
    assert_eq!(order, [(1, images["id"].as_str().unwrap()), (2, notes["id"].as_str().unwrap())]);
    let after = alice.add(json!({"url": origin.url(SIZE, "later.iso")})).await;
    let download = alice.completed(&after).await;
    assert_eq!((download["path"].as_str(), download["priority"].as_i64()), (Some("later.iso"), Some(0)));
}

#[tokio::test]
async fn rules_that_an_add_would_refuse_are_refused_when_made() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = Caller { server: &server, token: server.token.clone() };
    let refused = [
        (json!({"extensions": ["iso"], "directory": "../outside"}), "directory must be a relative path"),
        (json!({"extensions": ["iso"], "directory": "isos/../../x"}), "directory must be a relative path"),
        (json!({"extensions": ["iso"], "directory": "/etc"}), "directory must be a relative path"),
        (json!({"extensions": ["iso"], "directory": ".hidden"}), "directory must be a relative path"),
        (json!({"extensions": ["iso"], "priority": 5000}), "priority must be between -1000 and 1000"),
        (json!({"extensions": ["iso"]}), "at least one effect"),
        (json!({"directory": "isos"}), "at least one condition"),
        (json!({"host": "", "url_pattern": " ", "directory": "isos"}), "at least one condition"),
        (json!({"host": "https://example.com/", "directory": "x"}), "host must be a host name"),
        (json!({"host": "example.com:8080", "directory": "x"}), "host must be a host name"),
        (json!({"extensions": ["../iso"], "directory": "x"}), "extensions must be file types"),
        (json!({"url_pattern": "http://x/\u{0}", "directory": "x"}), "url_pattern must be"),
        (json!({"extensions": ["iso"], "directory": "x", "position": 0}), "position starts at 1"),
        (json!({"extensions": ["iso"], "directory": "x", "name": "a\u{7}"}), "name must be"),
        (json!({"extensions": ["iso"], "directory": "x", "regex": ".*"}), "regex"),
    ];
    for (body, expected) in refused {
        let (status, error) = alice.call(Method::POST, "/v1/rules", Some(body.clone())).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("bad_request")), "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (_, listed) = alice.call(Method::GET, "/v1/rules", None).await;
    assert_eq!(listed["rules"], json!([]));
    let (status, _) = alice.call(Method::GET, "/v1/rules/not-a-rule", None).await;
    assert_eq!(status, 404);
    let (status, _) = alice.call(Method::DELETE, "/v1/rules/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!(status, 404);

    // The OpenAPI document describes the routes.
    let (status, document) = alice.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = &document["paths"];
    assert!(paths["/v1/rules"]["post"].is_object() && paths["/v1/rules"]["get"].is_object(), "{paths}");
    for method in ["get", "patch", "delete"] {
        assert!(paths["/v1/rules/{id}"][method].is_object(), "{method} /v1/rules/{{id}} missing");
    }
    assert!(document["components"]["schemas"]["CreateRule"]["properties"]["url_pattern"].is_object());
}

#[tokio::test]
async fn haul_rule_adds_lists_moves_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (ok, added, stderr) =
        server.haul(&["rule", "add", "--ext", "iso,IMG", "--directory", "isos", "--priority", "5", "--name", "ISOs"]);
    assert!(ok, "{stderr}");
    assert!(added.contains("at position 1: ext=iso,img → dir=isos priority=5"), "{added}");
    let isos = added.split_whitespace().nth(1).unwrap().to_owned();
    let (ok, added, stderr) = server.haul(&["rule", "add", "--domain", "Example.com", "-d", "example"]);
    assert!(ok && added.contains("at position 2: host=example.com → dir=example"), "{added}{stderr}");
    let (ok, added, stderr) = server.haul(&["rule", "add", "--url-pattern", "*/nightly/*", "--priority", "-2"]);
    assert!(ok && added.contains("url=*/nightly/* → priority=-2"), "{added}{stderr}");

    let (ok, listed, _) = server.haul(&["rule", "ls"]);
    assert!(ok, "{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].contains("CONDITIONS") && lines.len() == 4, "{listed}");
    assert!(lines[1].contains(&isos[..8]) && lines[1].contains("ISOs"), "{listed}");
    assert!(lines[2].contains("host=example.com") && lines[3].contains("priority=-2"), "{listed}");

    let (ok, moved, stderr) = server.haul(&["rule", "mv", &isos[..8], "3"]);
    assert!(ok && moved.contains("to position 3"), "{moved}{stderr}");
    let (_, listed, _) = server.haul(&["rule", "ls"]);
    assert!(listed.lines().nth(3).unwrap().contains(&isos[..8]), "{listed}");

    let (ok, _, stderr) = server.haul(&["rule", "add", "--ext", "iso", "--directory", "../x"]);
    assert!(!ok && stderr.contains("directory must be a relative path inside downloads/"), "{stderr}");
    let (ok, removed, stderr) = server.haul(&["rule", "rm", &isos[..8]]);
    assert!(ok && removed.contains("removed rule") && removed.contains("dir=isos"), "{removed}{stderr}");
    let (ok, _, stderr) = server.haul(&["rule", "rm", &isos[..8]]);
    assert!(!ok && stderr.contains("no rule"), "{stderr}");
    let (_, listed, _) = server.haul(&["rule", "ls", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["rules"].as_array().unwrap().len(), 2, "{listed}");
}
