//! Several `haul serve` processes on one PostgreSQL database, as an operator runs them: every job done once
//! across nodes, a SIGKILLed node's download taken over where it stopped, one event stream seen on every node, a
//! database restart under load, a file on another node's disk served through any node, and (in `fence`) a node
//! cut off from the database stopping before its lease runs out. Each test starts its own PostgreSQL server,
//! origin and nodes; a failure shows every job's state and the end of each node's log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use haul_test_support::{Origin, OriginOptions, Postgres};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Lines of each node's log a failure shows.
const LOG_LINES: usize = 40;
/// How often the tests look at the cluster while they wait.
const POLL: Duration = Duration::from_millis(50);

/// A failed expectation: the message, then every job's state and the end of each node's log.
macro_rules! fail {
    ($cluster:expr, $($message:tt)*) => {
        panic!("{}\n{}", format!($($message)*), $cluster.report().await)
    };
}

/// `assert!` with the cluster's report on failure.
macro_rules! check {
    ($cluster:expr, $condition:expr, $($message:tt)*) => {
        if !$condition {
            fail!($cluster, $($message)*);
        }
    };
}

/// A node cut off from the database by a silent network (a freezing proxy) stops before its lease runs out.
#[path = "nodes/fence.rs"]
mod fence;

/// Where the nodes of a cluster keep finished files.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// One downloads directory for every node (a shared volume): any node can take a job over from its `.part`.
    Shared,
    /// Each node its own: a file is on the disk of the node that finished it.
    NodeLocal,
}

/// One `haul serve` process of a cluster.
struct Node {
    name: String,
    child: Child,
    base: String,
    token: String,
    downloads: PathBuf,
    log: PathBuf,
    /// Set once the test has killed it (or it has exited).
    exited: Option<ExitStatus>,
}

/// PostgreSQL, the nodes on one database of it, and their directories. Fields drop in order: the nodes first,
/// then the database server, then the directories.
struct Cluster {
    nodes: Vec<Node>,
    postgres: Postgres,
    database: String,
    layout: Layout,
    client: reqwest::Client,
    root: tempfile::TempDir,
}

/// A download as the list or one job's answer shows it, in one line.
fn describe(job: &Value) -> String {
    format!(
        "{} {} state={} node={} {}/{} error={}",
        job["id"].as_str().unwrap_or("?"),
        job["filename"].as_str().or(job["url"].as_str()).unwrap_or("?"),
        job["state"].as_str().unwrap_or("?"),
        job["node"],
        job["bytes_done"],
        job["size"],
        job["error"],
    )
}

impl Cluster {
    /// A PostgreSQL server with one database named after `test`; `None` (after a printed reason) when there are
    /// no PostgreSQL binaries and `HAUL_REQUIRE_POSTGRES` is not set.
    async fn start(test: &str, layout: Layout) -> Option<Cluster> {
        let postgres = Postgres::start().await.expect("PostgreSQL starts")?;
        let database = postgres.create_database(test).await.expect("a database for the test");
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
        let root = tempfile::Builder::new().prefix("haul-nodes-").tempdir().unwrap();
        Some(Cluster { nodes: Vec::new(), postgres, database, layout, client, root })
    }

    /// The shared downloads directory (a `Shared` cluster).
    fn shared_downloads(&self) -> PathBuf {
        self.root.path().join("downloads")
    }

    /// Starts node `name` on the cluster's database, listening on (and advertising) a free port of 127.0.0.1,
    /// with `extra` flags; returns once its banner says it listens as `name` on postgres.
    async fn start_node(&mut self, name: &str, extra: &[&str]) -> &Node {
        let database = self.database.clone();
        self.start_node_on(name, &database, extra).await
    }

    /// [`Cluster::start_node`] with the database at `database_url` (the cluster's, or a way to it such as a proxy).
    async fn start_node_on(&mut self, name: &str, database_url: &str, extra: &[&str]) -> &Node {
        let data_dir = self.root.path().join(name);
        let downloads = match self.layout {
            Layout::Shared => self.shared_downloads(),
            Layout::NodeLocal => data_dir.join("downloads"),
        };
        let log = self.root.path().join(format!("{name}.log"));
        for attempt in 1.. {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let listen = format!("127.0.0.1:{port}");
            let advertise = format!("http://{listen}");
            let downloads_arg = downloads.to_str().unwrap();
            let mut args = vec![
                "--database",
                database_url,
                "--node-id",
                name,
                "--downloads-dir",
                downloads_arg,
                "--advertise-url",
                &advertise,
            ];
            args.extend_from_slice(extra);
            let mut command = common::serve_command_on(&data_dir, &listen, &args);
            command.stderr(std::fs::File::create(&log).unwrap());
            let child = command.spawn().unwrap();
            let (mut child, lines) = tokio::task::spawn_blocking(move || {
                let mut child = child;
                let lines = common::banner(&mut child, 2);
                (child, lines)
            })
            .await
            .unwrap();
            if lines[0].starts_with("haul listening on ") {
                let node_line: Vec<&str> = lines[1].split_whitespace().collect();
                assert_eq!(node_line, ["node", name, "on", "postgres"], "the banner names the node: {lines:?}");
                let base = common::base_of(&lines[0]);
                assert_eq!(base, advertise, "{lines:?}");
                let node = Node {
                    name: name.to_owned(),
                    child,
                    base,
                    token: common::token_of(&data_dir),
                    downloads,
                    log,
                    exited: None,
                };
                self.nodes.push(node);
                return self.nodes.last().unwrap();
            }
            let status = child.wait().unwrap();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // Another process took the port between our look and the node's bind: try another.
            if text.contains("cannot listen on") && attempt < 5 {
                continue;
            }
            panic!("node {name} did not start ({status}); its log:\n{text}\n{}", self.report().await);
        }
        unreachable!()
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|node| node.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// SIGKILL, as a crash: no lease is given up, nothing is flushed.
    fn kill(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|node| node.name == name).unwrap();
        node.child.kill().unwrap();
        node.exited = Some(node.child.wait().unwrap());
    }

    /// `METHOD PATH` on `node` with its token: the status and the JSON answer (null when none), or why there was
    /// no answer.
    async fn try_call(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.request(method, format!("{}{path}", node.base)).bearer_auth(&node.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| format!("{} {path}: {error}", node.name))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET PATH` on `node`, expecting 200.
    async fn get(&self, node: &str, path: &str) -> Result<Value, String> {
        let node = self.node(node);
        match self.try_call(node, Method::GET, path, None).await? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("{} GET {path}: {status} {body}", node.name)),
        }
    }

    /// Adds a plain-file download of `url` through `node` (kind `file`, so no yt-dlp looks at it first), with
    /// `extra` fields; returns its id.
    async fn add(&self, node: &str, url: &str, extra: Value) -> String {
        let mut body = json!({ "url": url, "kind": "file" });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        match self.try_call(self.node(node), Method::POST, "/v1/downloads", Some(body)).await {
            Ok((201, job)) => job["id"].as_str().unwrap().to_owned(),
            other => fail!(self, "adding {url} through {node}: {other:?}"),
        }
    }

    /// Every download of the account, as `node` lists them.
    async fn jobs(&self, node: &str) -> Result<Vec<Value>, String> {
        let list = self.get(node, "/v1/downloads?limit=1000").await?;
        Ok(list["downloads"].as_array().cloned().unwrap_or_default())
    }

    /// Polls download `id` through `node` until `done` holds for it (answers other than 200 are waited out,
    /// as during a database restart); fails after `timeout`, or at once when it fails or is cancelled.
    async fn wait_job(
        &self,
        node: &str,
        id: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Err("not asked yet".to_owned());
        while Instant::now() < deadline {
            last = self.get(node, &format!("/v1/downloads/{id}")).await;
            if let Ok(job) = &last {
                if done(job) {
                    return job.clone();
                }
                if matches!(job["state"].as_str(), Some("failed" | "cancelled")) {
                    break;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        fail!(self, "download {id} (asked on {node}) did not become {what} within {timeout:?}; last answer: {last:?}")
    }

    /// Polls `node` until every download in `ids` (the account's only ones) is completed; fails after `timeout`,
    /// or as soon as one has failed or been cancelled. `sample` sees the active downloads at each look (their
    /// `node` fields), read in one query. Returns every download of `ids` as listed at the end.
    async fn wait_all_completed(
        &self,
        node: &str,
        ids: &[String],
        timeout: Duration,
        mut sample: impl FnMut(&[Value]),
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Err("not asked yet".to_owned());
        loop {
            check!(
                self,
                Instant::now() < deadline,
                "not all {} downloads completed within {timeout:?}: {last:?}",
                ids.len()
            );
            // Answers other than 200 (as while the database restarts) are waited out.
            let read = async {
                let active = self.get(node, "/v1/downloads?state=active&limit=1000").await?;
                Ok::<_, String>((active, self.get(node, "/v1/stats").await?))
            };
            last = read.await;
            if let Ok((active, stats)) = &last {
                sample(active["downloads"].as_array().map(Vec::as_slice).unwrap_or_default());
                let ended = stats["failed"].as_u64().unwrap_or(0) + stats["cancelled"].as_u64().unwrap_or(0);
                check!(self, ended == 0, "downloads failed or were cancelled: {stats}");
                if stats["completed"].as_u64() == Some(ids.len() as u64) {
                    break;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        let jobs = self.jobs(node).await.unwrap_or_else(|error| panic!("listing the downloads: {error}"));
        let listed: BTreeSet<&str> = jobs.iter().filter_map(|job| job["id"].as_str()).collect();
        let missing: Vec<&String> = ids.iter().filter(|id| !listed.contains(id.as_str())).collect();
        check!(self, missing.is_empty() && jobs.len() == ids.len(), "{} listed; missing: {missing:?}", jobs.len());
        let unfinished: Vec<String> = jobs.iter().filter(|job| job["state"] != "completed").map(describe).collect();
        check!(self, unfinished.is_empty(), "not completed: {unfinished:#?}");
        jobs
    }

    /// What a failing test shows: the downloads by state and lease owner as PostgreSQL has them (not through a
    /// node, which may be cut off), every download (from the first node that answers), each node's log tail, and
    /// PostgreSQL's.
    async fn report(&self) -> String {
        let sql = "SELECT state || ' owner=' || COALESCE(lease_owner, '-') || ': ' || count(*) || ', lease_expires=' \
                   || COALESCE(max(lease_expires)::text, '-') || ' bytes_done=' || sum(bytes_done) FROM downloads \
                   GROUP BY state, lease_owner ORDER BY 1";
        let rows = self.postgres.psql(&self.database, sql).await.unwrap_or_else(|error| format!("({error:#})"));
        let mut out = format!("--- the downloads in the database:\n{}\n--- downloads:\n", rows.trim_end());
        for node in self.nodes.iter().filter(|node| node.exited.is_none()) {
            match self.jobs(&node.name).await {
                Ok(jobs) => {
                    let _ = writeln!(out, "({} downloads, as {} lists them)", jobs.len(), node.name);
                    for job in &jobs {
                        let _ = writeln!(out, "  {}", describe(job));
                    }
                    break;
                }
                Err(error) => {
                    let _ = writeln!(out, "  ({error})");
                }
            }
        }
        if let Ok(nodes) = self.get_any("/v1/nodes").await {
            let _ = writeln!(out, "--- /v1/nodes: {nodes}");
        }
        for node in &self.nodes {
            let state = node.exited.map_or_else(|| "running".to_owned(), |status| status.to_string());
            let _ =
                writeln!(out, "--- {} ({}, {state}), log tail:\n{}", node.name, node.base, tail(&node.log, LOG_LINES));
        }
        let _ = writeln!(out, "--- postgres log tail:\n{}", self.postgres.log_tail());
        out
    }

    /// `GET PATH` on the first running node that answers 200.
    async fn get_any(&self, path: &str) -> Result<Value, String> {
        let mut errors = Vec::new();
        for node in self.nodes.iter().filter(|node| node.exited.is_none()) {
            match self.get(&node.name, path).await {
                Ok(body) => return Ok(body),
                Err(error) => errors.push(error),
            }
        }
        Err(errors.join("; "))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of a file (a node's log).
fn tail(path: &Path, lines: usize) -> String {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))))
}

/// The names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Bytes the resume record beside a partial file says are on disk.
fn recorded_bytes(record: &Path) -> u64 {
    let Ok(text) = std::fs::read(record) else { return 0 };
    let Ok(record) = serde_json::from_slice::<Value>(&text) else { return 0 };
    let ranges = record["done"].as_array().cloned().unwrap_or_default();
    ranges.iter().map(|range| range[1].as_u64().unwrap_or(0).saturating_sub(range[0].as_u64().unwrap_or(0))).sum()
}

/// Checks each `(name, size)` file in `dir` against the origin's content, on two threads; returns the names
/// whose bytes differ, with both hashes.
async fn mismatches(origin: &Origin, dir: &Path, files: Vec<(String, u64)>) -> Vec<String> {
    let halves: Vec<Vec<(String, u64)>> = files.chunks(files.len().div_ceil(2).max(1)).map(<[_]>::to_vec).collect();
    let checks = halves.into_iter().map(|half| {
        let handle = origin.handle();
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            half.into_iter()
                .filter_map(|(name, size)| {
                    let (got, want) = (sha256_of(&dir.join(&name)), handle.file_sha256(size, &name));
                    (got != want).then(|| format!("{name}: sha256 {got}, the origin's {want}"))
                })
                .collect::<Vec<_>>()
        })
    });
    futures_util::future::join_all(checks).await.into_iter().flat_map(Result::unwrap).collect()
}

/// One server-sent event of `/v1/events`.
#[derive(Clone, Debug)]
struct SseEvent {
    id: u64,
    kind: String,
    data: Value,
}

/// Reads `/v1/events` of `node` (after `last_event_id`, when given) until `done` holds for an event or
/// `timeout` passes; returns the events that came and whether `done` was reached.
async fn read_events(
    node: &Node,
    last_event_id: Option<u64>,
    timeout: Duration,
    done: impl Fn(&SseEvent) -> bool,
) -> (Vec<SseEvent>, bool) {
    // No overall timeout on this client: the stream is meant to stay open.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(format!("{}/v1/events", node.base)).bearer_auth(&node.token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /v1/events on {}", node.name);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_)) | None) | Err(_) => return (events, false),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().ok();
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = serde_json::from_str(value.trim()).ok();
                }
            }
            // Keep-alive comments carry none of these.
            if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                let event = SseEvent { id, kind, data };
                let finished = done(&event);
                events.push(event);
                if finished {
                    return (events, true);
                }
            }
        }
    }
}

/// The `(id, kind)` of each event, for comparing streams.
fn ids_and_kinds(events: &[SseEvent]) -> Vec<(u64, &str)> {
    events.iter().map(|event| (event.id, event.kind.as_str())).collect()
}

/// Three nodes with two download slots each share one queue of 300 small files: every file is fetched once,
/// lands once under its own name with the origin's bytes, no node runs more than two at a time (as the
/// database says, and as the origin saw each node's address), and every node does some of the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_complete_every_job_once() {
    let Some(mut cluster) = Cluster::start("three_nodes", Layout::Shared).await else { return };
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    // A source address per node, so the origin can tell their requests apart.
    let nodes = [("n1", "127.0.0.2"), ("n2", "127.0.0.3"), ("n3", "127.0.0.4")];
    for (name, address) in nodes {
        cluster.start_node(name, &["--max-active", "2", "--local-address", address]).await;
    }
    let files: Vec<(String, u64)> =
        (0..300u64).map(|n| (format!("f{n:03}.bin"), 32 * KIB + (n * 7919 * 13) % (512 * KIB))).collect();

    // Added round-robin through the three APIs, 24 requests at a time.
    let cluster_ref = &cluster;
    let adds = files.iter().enumerate().map(|(n, (name, size))| {
        let url = origin.url(*size, name);
        let node = nodes[n % 3].0;
        async move { cluster_ref.add(node, &url, json!({})).await }
    });
    let ids: Vec<String> = futures_util::stream::iter(adds).buffered(24).collect().await;

    // While they run: how many each node has active at once, as one read of the database shows them.
    let mut peak_active: BTreeMap<String, usize> = BTreeMap::new();
    let mut over_limit = Vec::new();
    let jobs = cluster
        .wait_all_completed("n1", &ids, Duration::from_secs(60), |jobs| {
            let mut active: BTreeMap<String, usize> = BTreeMap::new();
            for job in jobs.iter().filter(|job| job["state"] == "active") {
                *active.entry(job["node"].as_str().unwrap_or("(none)").to_owned()).or_default() += 1;
            }
            for (node, count) in active {
                if count > 2 {
                    over_limit.push(format!("{node} had {count} active"));
                }
                let peak = peak_active.entry(node).or_default();
                *peak = (*peak).max(count);
            }
        })
        .await;
    check!(cluster, over_limit.is_empty(), "a node ran more than --max-active 2: {over_limit:?}");
    check!(cluster, jobs.len() == 300, "{} of 300 downloads listed", jobs.len());
    check!(cluster, !peak_active.contains_key("(none)"), "an active download named no node: {peak_active:?}");
    let mut completed_by: BTreeMap<&str, usize> = BTreeMap::new();
    for job in &jobs {
        *completed_by.entry(job["node"].as_str().unwrap_or("(none)")).or_default() += 1;
    }
    check!(
        cluster,
        completed_by.keys().copied().eq(nodes.iter().map(|(name, _)| *name)),
        "each node finishes some, and a completed download names its node: {completed_by:?}"
    );

    // Each node lists all 300 with its own token: one account for the cluster.
    for (name, _) in nodes {
        let list = cluster.get(name, "/v1/downloads?limit=1").await.unwrap();
        check!(cluster, list["total"] == 300, "{name} lists {} downloads", list["total"]);
    }

    // Files under 1 MiB come whole in one request, so the origin's count of a node's concurrent responses is
    // that node's count of concurrent downloads.
    let clients = origin.handle().clients();
    let mut origin_seen = Vec::new();
    for (name, address) in nodes {
        let client = clients.get(&address.parse().unwrap()).copied().unwrap_or_default();
        origin_seen.push(format!("{name} ({address}): {client:?}"));
        check!(cluster, client.requests > 0, "{name} fetched nothing; the origin saw {origin_seen:?} {clients:?}");
        check!(
            cluster,
            client.peak_concurrent <= 2,
            "{name} had {} responses at once; origin per address: {clients:?}",
            client.peak_concurrent
        );
    }
    check!(cluster, clients.len() == 3, "requests from other addresses than the nodes': {clients:?}");
    // One request per file: no file was fetched by two nodes, or twice by one.
    let requests = origin.handle().stats().requests;
    check!(cluster, requests == 300, "the origin answered {requests} requests for 300 files: {origin_seen:?}");
    eprintln!(
        "completed per node: {completed_by:?}; peak active per node (database): {peak_active:?}; origin per \
         address: {origin_seen:?}"
    );

    // Exactly the 300 names in the directory: no numbered duplicates, no partial files or resume records.
    let dir = cluster.shared_downloads();
    let expected: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    let found = names_in(&dir);
    let extra: Vec<&String> = found.iter().filter(|name| !expected.contains(name)).collect();
    check!(cluster, found == expected, "the directory holds {} entries; unexpected: {extra:?}", found.len());
    for job in &jobs {
        let name = job["filename"].as_str().unwrap_or("");
        check!(cluster, job["path"] == name && expected.iter().any(|n| n == name), "{}", describe(job));
    }
    let wrong = mismatches(&origin, &dir, files).await;
    check!(cluster, wrong.is_empty(), "files differ from the origin's: {wrong:#?}");
}

/// A node killed in the middle of a large download leaves it `active` under its lease; once the lease runs
/// out, the other node takes it over, resumes from the partial file and its record in the shared directory
/// (fetching little more than what the dead node had not recorded), and finishes it with the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_download_is_taken_over_and_finished() {
    let Some(mut cluster) = Cluster::start("takeover", Layout::Shared).await else { return };
    let size = 48 * MIB;
    let origin =
        Origin::start(OriginOptions { per_connection_rate: Some(2 * MIB), ..OriginOptions::default() }).await.unwrap();
    let lease = ["--lease", "3"];
    cluster.start_node("a", &lease).await;
    // Four connections at 2 MiB/s: about six seconds for the whole file, so there is time to kill it midway.
    let id = cluster.add("a", &origin.url(size, "big.bin"), json!({ "connections": 4 })).await;
    cluster
        .wait_job("a", &id, "active on a", Duration::from_secs(20), |job| {
            job["state"] == "active" && job["node"] == "a"
        })
        .await;
    // Up before the kill, so that what it takes is the lease, not its start-up.
    cluster.start_node("b", &lease).await;
    let job = cluster
        .wait_job("b", &id, "over 30% done", Duration::from_secs(30), |job| {
            job["bytes_done"].as_u64().unwrap_or(0) > size * 3 / 10
        })
        .await;
    check!(cluster, job["node"] == "a" && job["state"] == "active", "before the kill: {}", describe(&job));

    cluster.kill("a");
    let killed = Instant::now();
    let record = cluster.shared_downloads().join("big.bin.part.haul");
    // The dead node's last word: what its resume record says is on disk, and what the origin had sent it.
    let recorded = recorded_bytes(&record);
    let sent_to_a = origin.handle().stats().body_bytes_sent;
    check!(cluster, recorded > 0, "no resume record at {} after the kill", record.display());

    let taken = cluster
        .wait_job("b", &id, "taken over by b", Duration::from_secs(20), |job| {
            job["node"] == "b" || job["state"] == "completed"
        })
        .await;
    let takeover = killed.elapsed();
    // The lease is 3 s, renewed every second: a node taking the job within a second of the kill took it while
    // the lease still held.
    check!(
        cluster,
        takeover >= Duration::from_secs(1),
        "b took the job {takeover:?} after the kill: {}",
        describe(&taken)
    );
    let done =
        cluster.wait_job("b", &id, "completed", Duration::from_secs(40), |job| job["state"] == "completed").await;
    let finished = killed.elapsed();
    check!(cluster, done["bytes_done"] == size && done["size"] == size, "{}", describe(&done));
    check!(cluster, done["node"] == "b", "the completed download names the node that holds it: {}", describe(&done));

    let dir = cluster.shared_downloads();
    check!(cluster, names_in(&dir) == ["big.bin"], "the directory holds {:?}", names_in(&dir));
    let wrong = mismatches(&origin, &dir, vec![("big.bin".to_owned(), size)]).await;
    check!(cluster, wrong.is_empty(), "{wrong:?}");
    let total = origin.handle().stats().body_bytes_sent;
    let unrecorded = sent_to_a.saturating_sub(recorded);
    let margin = 2 * MIB;
    let figures = format!(
        "origin sent {total} bytes in all: {sent_to_a} to a before the kill, of which {recorded} were recorded \
         (unrecorded {unrecorded}); {} after; file {size}; taken over {takeover:?} and finished {finished:?} after \
         the kill",
        total - sent_to_a
    );
    eprintln!("{figures}");
    check!(cluster, total <= size + unrecorded + margin, "b fetched again what a had recorded: {figures}");
}

/// A client of node a sees the events of a download that runs on node b (which a never claims: it is b's
/// before a starts), through to `completed`; a client reconnecting to node c with the `Last-Event-ID` of an
/// early event gets every later event, in order, each once, as a saw them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_job_across_nodes() {
    let Some(mut cluster) = Cluster::start("events", Layout::Shared).await else { return };
    let size = 6 * MIB;
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(512 * KIB), ..OriginOptions::default() })
        .await
        .unwrap();
    cluster.start_node("b", &[]).await;
    // Two connections at 512 KiB/s: about six seconds, several progress events.
    let id = cluster.add("b", &origin.url(size, "events.bin"), json!({ "connections": 2 })).await;
    cluster
        .wait_job("b", &id, "active on b", Duration::from_secs(20), |job| {
            job["state"] == "active" && job["node"] == "b"
        })
        .await;
    cluster.start_node("a", &[]).await;
    cluster.start_node("c", &[]).await;

    let ours = |event: &SseEvent| event.data["download"]["id"] == id.as_str();
    // From the start of the history (`Last-Event-ID: 0`), so that the events from before a started count too.
    let (seen_on_a, completed) = read_events(cluster.node("a"), Some(0), Duration::from_secs(40), |event| {
        ours(event) && event.kind == "completed"
    })
    .await;
    let seen_on_a: Vec<SseEvent> = seen_on_a.into_iter().filter(|event| ours(event)).collect();
    check!(cluster, completed, "a's stream ended before the download completed: {:?}", ids_and_kinds(&seen_on_a));
    let kinds: Vec<&str> =
        seen_on_a.iter().map(|event| event.kind.as_str()).filter(|kind| *kind != "progress").collect();
    check!(cluster, kinds == ["added", "started", "completed"], "on a: {:?}", ids_and_kinds(&seen_on_a));
    // Numbers go on from the clock (microseconds since 1970, past 2020's), as a single server's do, so a client
    // holding an id from before this database is not left waiting for the count to catch up.
    check!(
        cluster,
        seen_on_a.iter().all(|event| event.id > 1_577_836_800_000_000),
        "event ids: {:?}",
        ids_and_kinds(&seen_on_a)
    );
    let progress: Vec<&SseEvent> = seen_on_a.iter().filter(|event| event.kind == "progress").collect();
    check!(cluster, progress.len() >= 2, "a saw {} progress events: {:?}", progress.len(), ids_and_kinds(&seen_on_a));
    for event in &seen_on_a {
        check!(
            cluster,
            event.data["id"] == event.id && event.data["kind"] == event.kind.as_str(),
            "an event's data disagrees with its id or kind: {event:?}"
        );
    }
    for event in &progress {
        let download = &event.data["download"];
        check!(cluster, download["node"] == "b" && download["state"] == "active", "a progress event on a: {download}");
    }
    check!(
        cluster,
        seen_on_a.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids must increase: {:?}",
        ids_and_kinds(&seen_on_a)
    );

    // On c, after the first progress event: exactly what a saw after it.
    let early = progress[0].id;
    let (replayed, completed) = read_events(cluster.node("c"), Some(early), Duration::from_secs(20), |event| {
        ours(event) && event.kind == "completed"
    })
    .await;
    let replayed: Vec<SseEvent> = replayed.into_iter().filter(|event| ours(event)).collect();
    let expected: Vec<SseEvent> = seen_on_a.iter().filter(|event| event.id > early).cloned().collect();
    check!(
        cluster,
        completed && ids_and_kinds(&replayed) == ids_and_kinds(&expected),
        "replay on c after {early}: {:?}\nexpected (as a saw): {:?}",
        ids_and_kinds(&replayed),
        ids_and_kinds(&expected)
    );
}

/// Two nodes run 40 rate-limited downloads; PostgreSQL is restarted (a fast shutdown, then a start on the same
/// port and data) while they run. Every download completes with the origin's bytes, none fails, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_load_loses_nothing() {
    let Some(mut cluster) = Cluster::start("restart", Layout::Shared).await else { return };
    let origin = Origin::start(OriginOptions { per_connection_rate: Some(512 * KIB), ..OriginOptions::default() })
        .await
        .unwrap();
    for name in ["a", "b"] {
        cluster.start_node(name, &["--max-active", "10"]).await;
    }
    // Three seconds each at two connections of 512 KiB/s; twenty at a time.
    let files: Vec<(String, u64)> = (0..40u64).map(|n| (format!("r{n:02}.bin"), 3 * MIB + n * 1000)).collect();
    let mut ids = Vec::new();
    for (n, (name, size)) in files.iter().enumerate() {
        let node = ["a", "b"][n % 2];
        ids.push(cluster.add(node, &origin.url(*size, name), json!({ "connections": 2 })).await);
    }
    // Restart while both nodes have downloads under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = cluster.jobs("a").await.unwrap_or_default();
        let active: BTreeSet<&str> = jobs
            .iter()
            .filter(|job| job["state"] == "active" && job["bytes_done"].as_u64().unwrap_or(0) > 0)
            .filter_map(|job| job["node"].as_str())
            .collect();
        if active.len() == 2 {
            break;
        }
        check!(cluster, Instant::now() < deadline, "both nodes never had downloads under way: {active:?}");
        tokio::time::sleep(POLL).await;
    }
    // Down for two seconds: longer than a progress report's period, so renewals, progress, completions, claims
    // and events all meet the outage.
    let stopped = Instant::now();
    if let Err(error) = cluster.postgres.stop().await {
        fail!(cluster, "stopping PostgreSQL: {error:#}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Err(error) = cluster.postgres.restart().await {
        fail!(cluster, "starting PostgreSQL again: {error:#}");
    }
    eprintln!("PostgreSQL was down for {:?}", stopped.elapsed());

    let jobs = cluster.wait_all_completed("b", &ids, Duration::from_secs(60), |_| {}).await;
    check!(cluster, jobs.len() == 40, "{} of 40 listed", jobs.len());
    for name in ["a", "b"] {
        let stats = cluster.get(name, "/v1/stats").await.unwrap();
        check!(cluster, stats["completed"] == 40 && stats["total"] == 40 && stats["failed"] == 0, "{name}: {stats}");
    }
    let dir = cluster.shared_downloads();
    let expected: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    check!(cluster, names_in(&dir) == expected, "the directory holds {:?}", names_in(&dir));
    let wrong = mismatches(&origin, &dir, files).await;
    check!(cluster, wrong.is_empty(), "files differ from the origin's: {wrong:#?}");
}

/// With a downloads directory per node, a file finished on node b is on b's disk only; node a serves it
/// anyway (from b, at the URL b advertises), whole and as a range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_on_another_nodes_disk_is_served_through_it() {
    let Some(mut cluster) = Cluster::start("node_local", Layout::NodeLocal).await else { return };
    let size = 4 * MIB + 123;
    let origin = Origin::start(OriginOptions::default()).await.unwrap();
    cluster.start_node("b", &[]).await;
    let id = cluster.add("b", &origin.url(size, "held.bin"), json!({})).await;
    let done =
        cluster.wait_job("b", &id, "completed", Duration::from_secs(30), |job| job["state"] == "completed").await;
    check!(cluster, done["node"] == "b", "the completed download names the node that holds it: {}", describe(&done));
    cluster.start_node("a", &[]).await;
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    check!(cluster, b.downloads.join("held.bin").is_file(), "not on b's disk: {:?}", names_in(&b.downloads));
    check!(cluster, !a.downloads.join("held.bin").exists(), "already on a's disk");

    let url = format!("{}/v1/downloads/{id}/file", a.base);
    let response = cluster.client.get(&url).bearer_auth(&a.token).send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    check!(
        cluster,
        status == 200 && body.len() as u64 == size,
        "GET the file from a: {status}, {} bytes: {}",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let sha = hex::encode(Sha256::digest(&body));
    check!(
        cluster,
        sha == origin.handle().file_sha256(size, "held.bin"),
        "the bytes a served differ from the origin's"
    );

    let (start, end) = (MIB + 7, 3 * MIB);
    let response = cluster
        .client
        .get(&url)
        .bearer_auth(&a.token)
        .header("Range", format!("bytes={start}-{}", end - 1))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_range = response.headers().get("content-range").map(|value| value.to_str().unwrap().to_owned());
    let slice = response.bytes().await.unwrap();
    check!(
        cluster,
        status == 206 && content_range.as_deref() == Some(format!("bytes {start}-{}/{size}", end - 1).as_str()),
        "a range from a: {status}, Content-Range {content_range:?}"
    );
    check!(cluster, slice == origin.handle().file_bytes(size, "held.bin", start, end), "the slice a served is wrong");

    // A request one node passed to another is never passed on: a holder's address that leads back would loop.
    let response = cluster.client.get(&url).bearer_auth(&a.token).header("x-haul-hop", "1").send().await.unwrap();
    check!(cluster, response.status() == 404, "a passed-on request for a file a lacks: {}", response.status());

    // Its `default` rendition (the file itself, as Cloudflare Stream's downloads offer it), asked for through a
    // and served by a from b's disk.
    let rendition = format!("{}/v1/downloads/{id}/renditions/default", a.base);
    let asked = cluster.client.post(&rendition).bearer_auth(&a.token).send().await.unwrap();
    check!(cluster, asked.status().is_success(), "asking a for the default rendition: {}", asked.status());
    let response = cluster.client.get(format!("{rendition}/file")).bearer_auth(&a.token).send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    check!(
        cluster,
        status == 200 && hex::encode(Sha256::digest(&body)) == origin.handle().file_sha256(size, "held.bin"),
        "the default rendition from a: {status}, {} bytes",
        body.len()
    );

    // With b gone, a says which node holds the file instead of pretending it does not exist.
    cluster.kill("b");
    let response = cluster.client.get(&url).bearer_auth(&cluster.node("a").token).send().await.unwrap();
    let status = response.status();
    let error: Value = response.json().await.unwrap_or_default();
    check!(
        cluster,
        status == 502 && error["error"]["message"].as_str().is_some_and(|text| text.contains("on node b")),
        "the file from a with b down: {status} {error}"
    );
}

/// `haul migrate` makes a PostgreSQL database's tables (again and again, changing nothing), and a database that
/// cannot be reached is named in the error, its password masked, by `haul migrate` and `haul serve` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_a_database_that_cannot_be_reached() {
    let Some(postgres) = Postgres::start().await.expect("PostgreSQL starts") else { return };
    let database = postgres.create_database("migrate").await.expect("a database for the test");
    let haul = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_haul")).args(args).env_remove("HAUL_DATABASE").output().unwrap()
    };
    for run in 0..2 {
        let output = haul(&["migrate", "--database", &database]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "run {run}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("up to date (postgres)"), "run {run}: {stdout}");
    }
    let tables = postgres
        .psql(
            &database,
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('downloads', 'nodes', 'events')",
        )
        .await
        .unwrap();
    assert_eq!(tables.trim(), "3", "{tables}");

    // Nothing listens on port 1.
    let unreachable = "postgres://haul:hunter2@127.0.0.1:1/haul";
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let migrate = haul(&["migrate", "--database", unreachable]);
    let serve = haul(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--database", unreachable]);
    for (what, output) in [("migrate", migrate), ("serve", serve)] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what} succeeded: {stderr}");
        assert!(stderr.contains("cannot open the database postgres://***@127.0.0.1:1/haul"), "{what}: {stderr}");
        assert!(stderr.contains("that PostgreSQL runs there") && stderr.contains("refused"), "{what}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{what}: {stderr}");
    }
}

/// A playlist added on one node: its entries are claimed by both, each fetched once, and the playlist's state
/// (kept by the database's trigger as entries change on two nodes at once) ends `completed` with every entry
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlists_entries_run_on_every_node_and_it_completes_once_they_have() {
    use haul_test_support::{MediaOptions, MediaSite, media};
    let Some(mut cluster) = Cluster::start("playlist_nodes", Layout::Shared).await else { return };
    // Paced, so that entries run on both nodes at once rather than one node finishing each before the other looks.
    let site = MediaSite::start_with(MediaOptions { rate: Some(200_000), ..MediaOptions::default() }).await.unwrap();
    for name in ["n1", "n2"] {
        cluster.start_node(name, &["--max-active", "2"]).await;
    }
    let pages: Vec<String> = (1..=8).map(|n| site.muxed(&format!("Episode {n}"))).collect();
    let titles: Vec<String> = (1..=8).map(|n| format!("Episode {n}")).collect();
    let entries: Vec<(&str, &str)> = titles.iter().map(String::as_str).zip(pages.iter().map(String::as_str)).collect();
    let feed = site.feed("Series", &entries);
    let parent = cluster.add("n1", &feed, json!({"kind": "auto", "quality": "360p", "embed_metadata": false})).await;

    let done = cluster
        .wait_job("n2", &parent, "a completed playlist", Duration::from_secs(90), |job| job["state"] == "completed")
        .await;
    check!(cluster, done["kind"] == "playlist", "{done}");
    check!(
        cluster,
        done["playlist"] == json!({"entries": 8, "completed": 8, "failed": 0, "cancelled": 0}),
        "{}",
        done["playlist"]
    );
    let listed = cluster.get("n1", &format!("/v1/downloads?parent={parent}&order=oldest")).await.unwrap();
    let children = listed["downloads"].as_array().cloned().unwrap_or_default();
    let nodes: BTreeSet<&str> = children.iter().filter_map(|child| child["node"].as_str()).collect();
    check!(cluster, nodes.len() == 2, "entries completed on {nodes:?}; both nodes should take some");
    let clip = site.bytes(media::CLIP_360).unwrap();
    let dir = cluster.shared_downloads();
    for child in &children {
        check!(cluster, child["state"] == "completed", "{}", describe(child));
        let path = dir.join(child["path"].as_str().unwrap_or_default());
        let bytes = std::fs::read(&path).unwrap_or_default();
        check!(cluster, bytes == clip.to_vec(), "{} is not the 360p clip", path.display());
    }
    let total: u64 = children.iter().filter_map(|child| child["size"].as_u64()).sum();
    check!(
        cluster,
        done["bytes_done"] == total && done["size"] == total,
        "the playlist's bytes are its entries': {done}"
    );
    check!(
        cluster,
        site.requests(media::CLIP_360) == 8,
        "{} requests for 8 entries' clip",
        site.requests(media::CLIP_360)
    );
}
