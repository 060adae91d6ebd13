//! The lease fence of a node cut off from the database by a silent network: its renewals get no answer and no
//! error (a proxy between it and PostgreSQL stops forwarding bytes but keeps every socket open), and it must stop
//! writing the part file three quarters of the lease after its last renewal, before the lease can run out and
//! another node take the job over, so the two never write one part file at the same time.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haul_test_support::{Origin, OriginHandle, OriginOptions};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Cluster, Layout, MIB, describe, names_in};

/// The lease the nodes run with, in seconds.
const LEASE_SECS: u64 = 6;
/// How often the origin's counters and the part file are sampled.
const SAMPLE: Duration = Duration::from_millis(20);
/// Node a's and node b's source addresses, so that the origin tells their requests apart.
const A_ADDRESS: &str = "127.0.0.2";
const B_ADDRESS: &str = "127.0.0.3";
/// What a's log says when it stops a download it can no longer renew the lease of.
const STOPPED_LINES: [&str; 2] =
    ["no answer from the store before the lease could run out", "cannot renew the lease before it runs out"];

/// A TCP proxy to one address that can be frozen: then it forwards nothing either way (what each side sends stays
/// in the kernel's buffers, or in the proxy's for a chunk read just before) and closes nothing, as a network
/// that silently drops every packet looks to both ends. Unfrozen, it forwards what was held, as TCP delivers it
/// once the network is back.
struct Proxy {
    port: u16,
    frozen: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, _) = watch::channel(false);
        let task = tokio::spawn(accept(listener, upstream, frozen.subscribe()));
        Proxy { port, frozen, task }
    }

    fn set_frozen(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Its connections' tasks are in the accept task's set, which this drops.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, frozen: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let frozen = frozen.clone();
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(pipe(client_read, server_write, frozen.clone()), pipe(server_read, client_write, frozen));
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Waits until the proxy is (`true`) or is not (`false`) frozen; forever once the proxy is gone.
async fn until_frozen(frozen: &mut watch::Receiver<bool>, state: bool) {
    if frozen.wait_for(|now| *now == state).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One direction of a proxied connection; an end of stream is passed on (as a FIN) only while not frozen.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        until_frozen(&mut frozen, false).await;
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = until_frozen(&mut frozen, true) => continue,
        };
        // A chunk read as the freeze came is held until it ends.
        until_frozen(&mut frozen, false).await;
        match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Signed seconds from `from` to `to`, for messages.
fn secs_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// What the sampler saw at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: SystemTime,
    /// Body bytes the origin has sent in all.
    sent: u64,
    /// Node a's responses in flight, and node b's requests so far, as the origin counts them by address.
    a_in_flight: u64,
    b_requests: u64,
    /// The part file's modification time (its last write).
    part_modified: Option<SystemTime>,
}

/// Samples the origin's counters and the part file every [`SAMPLE`] until aborted.
fn sampler(origin: OriginHandle, part: PathBuf, samples: Arc<Mutex<Vec<Sample>>>) -> tokio::task::JoinHandle<()> {
    let (a, b): (IpAddr, IpAddr) = (A_ADDRESS.parse().unwrap(), B_ADDRESS.parse().unwrap());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SAMPLE);
        loop {
            ticker.tick().await;
            let clients = origin.clients();
            let sample = Sample {
                wall: SystemTime::now(),
                sent: origin.stats().body_bytes_sent,
                a_in_flight: clients.get(&a).map_or(0, |client| client.in_flight),
                b_requests: clients.get(&b).map_or(0, |client| client.requests),
                part_modified: std::fs::metadata(&part).and_then(|meta| meta.modified()).ok(),
            };
            samples.lock().unwrap().push(sample);
        }
    })
}

/// Node a downloads a large file slowly with its database connection through the proxy; node b, on the database
/// directly, is up but cannot claim the job (a's lease is live). The proxy freezes. Node a's renewals get no
/// answer, so it must stop writing within three quarters of the lease after its last renewal, before the lease
/// can run out; once it has, node b takes the job over and finishes it with the origin's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_stops_before_its_lease_runs_out() {
    let Some(mut cluster) = Cluster::start("fence", Layout::Shared).await else { return };
    // Node a's way to the database; dropped before the cluster (its connections close as the nodes are killed).
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], cluster.postgres.port()))).await;
    let proxied = format!("postgres://postgres@127.0.0.1:{}/fence", proxy.port);
    let size = 64 * MIB;
    // About sixteen seconds for the whole file, however many connections fetch it.
    let origin =
        Origin::start(OriginOptions { aggregate_rate: Some(4 * MIB), ..OriginOptions::default() }).await.unwrap();
    let lease = LEASE_SECS.to_string();
    let flags = |address| ["--lease", lease.as_str(), "--max-active", "1", "--local-address", address];
    cluster.start_node_on("a", &proxied, &flags(A_ADDRESS)).await;
    let id = cluster.add("a", &origin.url(size, "big.bin"), json!({})).await;
    cluster
        .wait_job("a", &id, "active on a with some bytes", Duration::from_secs(20), |job| {
            job["state"] == "active" && job["node"] == "a" && job["bytes_done"].as_u64().unwrap_or(0) >= 2 * MIB
        })
        .await;
    cluster.start_node("b", &flags(B_ADDRESS)).await;
    // b is up and polling the queue for a second: the job stays a's, under its live lease.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let job = cluster.get("b", &format!("/v1/downloads/{id}")).await.unwrap_or_else(|error| panic!("{error}"));
    check!(
        cluster,
        job["state"] == "active" && job["node"] == "a",
        "before the freeze, as b sees it: {}",
        describe(&job)
    );
    let b_before = origin.handle().clients().get(&B_ADDRESS.parse().unwrap()).map_or(0, |client| client.requests);
    check!(cluster, b_before == 0, "b fetched from the origin before the freeze ({b_before} requests)");

    let samples = Arc::new(Mutex::new(Vec::new()));
    let part = cluster.shared_downloads().join("big.bin.part");
    let sampling = sampler(origin.handle(), part, samples.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen_wall = SystemTime::now();
    proxy.set_frozen(true);

    // The lease as a's last renewal to get through set it (no renewal reaches PostgreSQL any more).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leased = cluster
        .postgres
        .psql(&cluster.database, "SELECT lease_expires FROM downloads WHERE state = 'active' AND lease_owner = 'a'")
        .await
        .unwrap_or_else(|error| panic!("reading the lease: {error:#}"));
    let lease_expires: i64 = match leased.trim().parse() {
        Ok(millis) => millis,
        Err(_) => fail!(cluster, "a holds no live lease 1 s after the freeze: {leased:?}"),
    };
    let lease_runs_out = UNIX_EPOCH + Duration::from_millis(u64::try_from(lease_expires).unwrap());

    let taken = cluster
        .wait_job("b", &id, "taken over by b", Duration::from_secs(20), |job| {
            job["node"] == "b" || job["state"] == "completed"
        })
        .await;
    let taken_wall = SystemTime::now();
    let done =
        cluster.wait_job("b", &id, "completed", Duration::from_secs(30), |job| job["state"] == "completed").await;
    let done_wall = SystemTime::now();
    sampling.abort();
    let samples = samples.lock().unwrap().clone();

    // b's first request to the origin ends what can be a's alone.
    let b_first = samples.iter().find(|sample| sample.b_requests > 0).copied();
    let a_only: Vec<Sample> = samples.iter().take_while(|sample| sample.b_requests == 0).copied().collect();
    let Some(a_final) = a_only.last().copied() else { fail!(cluster, "no sample before b's first request") };
    // When the origin's count last grew (the first sample to show its final value), and when a's part file was
    // last written, before b fetched anything.
    let a_last_sent = a_only.iter().find(|sample| sample.sent == a_final.sent).map_or(frozen_wall, |s| s.wall);
    let a_last_write = a_final.part_modified;
    let a_closed = a_only.iter().find(|sample| sample.wall > a_last_sent && sample.a_in_flight == 0).map(|s| s.wall);
    let at = |time: SystemTime| format!("{:+.3}s", secs_between(frozen_wall, time));
    let timings = format!(
        "after the freeze: a's last renewal holds the lease until {}; the origin's bytes to a last grew at {} \
         ({} MiB sent); a's part file last written at {}; a's responses all closed at {}; b's first request at \
         {}; b took the job over (seen) at {}; completed at {}",
        at(lease_runs_out),
        at(a_last_sent),
        a_final.sent / MIB,
        a_last_write.map_or("(none)".to_owned(), at),
        a_closed.map_or("(never)".to_owned(), at),
        b_first.map_or("(never)".to_owned(), |sample| at(sample.wall)),
        at(taken_wall),
        at(done_wall),
    );
    eprintln!("{timings}");

    // 1. a stops within the fence (3/4 of the lease after its last renewal, which was before the freeze) and a
    // margin, and before the lease can run out: before its own record of it, and before freeze + lease.
    let fence_bound = frozen_wall + Duration::from_secs(LEASE_SECS) * 3 / 4 + Duration::from_secs(2);
    let lease_bound = frozen_wall + Duration::from_secs(LEASE_SECS);
    check!(cluster, b_first.is_some(), "b never fetched from the origin: {timings}");
    check!(cluster, a_closed.is_some(), "a's responses from the origin were still open when b started: {timings}");
    let Some(a_last_write) = a_last_write else { fail!(cluster, "no part file before b started: {timings}") };
    for (what, time) in [("the origin's bytes to a", a_last_sent), ("a's part file", a_last_write)] {
        check!(cluster, time <= fence_bound, "{what} still grew after the fence and its margin: {timings}");
        check!(cluster, time < lease_bound, "{what} still grew after freeze + lease: {timings}");
        check!(cluster, time < lease_runs_out, "{what} still grew after a's lease could run out: {timings}");
    }
    // 2. b took over only once the lease ran out, after a stopped, and finished with the origin's bytes.
    let b_first = b_first.unwrap().wall;
    check!(cluster, b_first >= lease_runs_out, "b fetched before a's lease ran out: {timings}");
    check!(cluster, b_first > a_last_write && b_first > a_last_sent, "b fetched while a still did: {timings}");
    check!(cluster, taken["node"] == "b" || taken["state"] == "completed", "{}", describe(&taken));
    check!(
        cluster,
        done["node"] == "b" && done["bytes_done"] == size && done["size"] == size,
        "the completed download: {}; {timings}",
        describe(&done)
    );
    let dir = cluster.shared_downloads();
    check!(cluster, names_in(&dir) == ["big.bin"], "the directory holds {:?}", names_in(&dir));
    let file = dir.join("big.bin");
    let sha =
        tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(std::fs::read(file).unwrap()))).await.unwrap();
    check!(cluster, sha == origin.handle().file_sha256(size, "big.bin"), "big.bin differs from the origin's");
    // 3. a said why it stopped.
    let a_log = std::fs::read_to_string(&cluster.node("a").log).unwrap_or_default();
    let stopped = a_log.lines().find(|line| STOPPED_LINES.iter().any(|said| line.contains(said)));
    check!(cluster, stopped.is_some(), "a's log does not say it stopped for want of the store: {timings}");
    eprintln!("a's log: {}", stopped.unwrap());

    // The network comes back: a reaches the database again and sees b's completed download, which its late
    // writes leave as b finished it.
    proxy.set_frozen(false);
    let seen = cluster
        .wait_job("a", &id, "completed, as a sees it once back", Duration::from_secs(15), |job| {
            job["state"] == "completed"
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = cluster.get("b", &format!("/v1/downloads/{id}")).await.unwrap_or_else(|error| panic!("{error}"));
    check!(
        cluster,
        seen["node"] == "b" && after["node"] == "b" && after["bytes_done"] == size && after["state"] == "completed",
        "after the network came back: a sees {}; b sees {}",
        describe(&seen),
        describe(&after)
    );
    check!(cluster, names_in(&dir) == ["big.bin"], "the directory holds {:?}", names_in(&dir));
}
