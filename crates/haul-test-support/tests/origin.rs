// End-to-end tests of the test origin over real HTTP (reqwest against 127.0.0.1:0): one test per
// route or knob, plus the `haul-origin` binary. Timing assertions are deliberately loose.

use std::process::Command;
use std::time::{Duration, Instant};

use haul_test_support::{Origin, OriginOptions, expected_sha256};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED,
    LOCATION, RANGE, RETRY_AFTER,
};

mod common;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

async fn start(options: OriginOptions) -> Origin {
    Origin::start(options).await.expect("origin starts")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers().get(name).map(|v| v.to_str().expect("ascii header").to_owned())
}

/// Reads a body chunk by chunk, returning what arrived and whether it ended in an error.
async fn read_all(mut resp: reqwest::Response) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

async fn get_range(origin: &Origin, size: u64, name: &str, range: &str) -> reqwest::Response {
    client().get(origin.url(size, name)).header(RANGE, range).send().await.expect("request")
}

#[tokio::test]
async fn full_get_matches_expected_sha256() {
    let origin = start(OriginOptions::default()).await;
    let handle = origin.handle();
    // Larger than two content blocks, so the block wrap-around is exercised.
    let size = 2_500_000;
    let resp = client().get(origin.url(size, "big.bin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_LENGTH).as_deref(), Some("2500000"));
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    let sha = sha256_hex(&body);
    assert_eq!(sha, handle.file_sha256(size, "big.bin"));
    assert_eq!(sha, expected_sha256(handle.file_seed(size, "big.bin"), size));
    // Another name gives other content.
    assert_ne!(sha, handle.file_sha256(size, "other.bin"));
}

#[tokio::test]
async fn single_ranges_and_unsatisfiable() {
    let origin = start(OriginOptions::default()).await;
    let handle = origin.handle();
    let size = 1_500_000;
    let expect = |a, b| handle.file_bytes(size, "r.bin", a, b);

    let resp = get_range(&origin, size, "r.bin", "bytes=1000-1999").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes 1000-1999/1500000"));
    assert_eq!(header(&resp, CONTENT_LENGTH).as_deref(), Some("1000"));
    assert_eq!(resp.bytes().await.unwrap(), expect(1000, 2000));

    let resp = get_range(&origin, size, "r.bin", "bytes=1400000-").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes 1400000-1499999/1500000"));
    assert_eq!(resp.bytes().await.unwrap(), expect(1_400_000, size));

    let resp = get_range(&origin, size, "r.bin", "bytes=-500").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes 1499500-1499999/1500000"));
    assert_eq!(resp.bytes().await.unwrap(), expect(1_499_500, size));

    // End beyond the file is clamped.
    let resp = get_range(&origin, size, "r.bin", "bytes=1499990-2000000").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), expect(1_499_990, size));

    let resp = get_range(&origin, size, "r.bin", "bytes=1500000-").await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes */1500000"));

    // Multi-range requests get the whole file.
    let resp = get_range(&origin, size, "r.bin", "bytes=0-1,5-9").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);
}

#[tokio::test]
async fn if_range_match_and_mismatch() {
    let origin = start(OriginOptions::default()).await;
    let url = origin.url(10_000, "ir.bin");
    let head = client().head(&url).send().await.unwrap();
    let etag = header(&head, ETAG).unwrap();
    let date = header(&head, LAST_MODIFIED).unwrap();

    for validator in [etag.as_str(), date.as_str()] {
        let resp = client().get(&url).header(RANGE, "bytes=100-199").header(IF_RANGE, validator).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{validator}");
        assert_eq!(resp.bytes().await.unwrap().len(), 100);
    }
    for validator in ["\"0000000000000000\"", "W/\"whatever\"", "Wed, 01 Jan 2014 00:00:00 GMT"] {
        let resp = client().get(&url).header(RANGE, "bytes=100-199").header(IF_RANGE, validator).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{validator}");
        assert_eq!(resp.bytes().await.unwrap().len(), 10_000);
    }
}

#[tokio::test]
async fn head_headers() {
    let origin = start(OriginOptions::default()).await;
    let handle = origin.handle();
    let resp = client().head(origin.url(123_456, "h.bin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_LENGTH).as_deref(), Some("123456"));
    assert_eq!(header(&resp, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(header(&resp, CONTENT_TYPE).as_deref(), Some("application/octet-stream"));
    let expected_etag = format!("\"{:016x}\"", handle.file_seed(123_456, "h.bin"));
    assert_eq!(header(&resp, ETAG), Some(expected_etag));
    let lm = header(&resp, LAST_MODIFIED).unwrap();
    assert!(httpdate::parse_http_date(&lm).is_ok(), "{lm}");
    assert_eq!(header(&resp, CONTENT_DISPOSITION), None);
    let stats = handle.stats();
    assert_eq!((stats.requests, stats.head_requests), (1, 1));
    assert_eq!(stats.body_bytes_sent, 0);
}

#[tokio::test]
async fn reject_head_gives_405() {
    let origin = start(OriginOptions { reject_head: true, ..Default::default() }).await;
    let resp = client().head(origin.url(10, "x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = client().get(origin.url(10, "x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), 10);
}

#[tokio::test]
async fn no_range_ignores_range() {
    let origin = start(OriginOptions { no_range: true, ..Default::default() }).await;
    let resp = client().head(origin.url(5000, "nr.bin")).send().await.unwrap();
    assert_eq!(header(&resp, ACCEPT_RANGES), None);
    let resp = get_range(&origin, 5000, "nr.bin", "bytes=10-19").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, ACCEPT_RANGES), None);
    assert_eq!(header(&resp, CONTENT_RANGE), None);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, origin.handle().file_bytes(5000, "nr.bin", 0, 5000));
}

#[tokio::test]
async fn max_connections_answers_503_beyond_cap() {
    let origin =
        start(OriginOptions { max_connections: Some(2), per_connection_rate: Some(64 * 1024), ..Default::default() })
            .await;
    let handle = origin.handle();
    let url = origin.url(1 << 20, "cap.bin");
    // Two slow bodies stay open (their headers have arrived, their bodies have not).
    let held1 = client().get(&url).send().await.unwrap();
    let held2 = client().get(&url).send().await.unwrap();
    assert_eq!(held1.status(), StatusCode::OK);
    assert_eq!(held2.status(), StatusCode::OK);

    let refused = client().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&refused, RETRY_AFTER).as_deref(), Some("1"));
    let stats = handle.stats();
    assert_eq!(stats.responses_503, 1);
    assert_eq!(stats.peak_concurrent, 2);

    // Once the client drops the bodies, the slots free up.
    drop((held1, held2));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = client().head(&url).send().await.unwrap();
        if resp.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client whose connections come from `local` (Linux routes all of 127.0.0.0/8 on loopback).
fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().no_proxy().local_address(std::net::IpAddr::from(local)).build().expect("client")
}

#[tokio::test]
async fn max_connections_per_ip_refuses_one_address_and_serves_another() {
    let origin = start(OriginOptions {
        max_connections_per_ip: Some(2),
        per_connection_rate: Some(64 * 1024),
        ..Default::default()
    })
    .await;
    let handle = origin.handle();
    let url = origin.url(1 << 20, "per-ip.bin");
    let (first, second) = (client_from([127, 0, 0, 1]), client_from([127, 0, 0, 2]));
    // Each address holds two slow bodies open, its cap; a third from either is refused, while the other
    // address's two were still admitted.
    let mut held = Vec::new();
    for client in [&first, &first, &second, &second] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response);
    }
    for client in [&first, &second] {
        let refused = client.get(&url).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&refused, RETRY_AFTER).as_deref(), Some("1"));
    }
    let stats = handle.stats();
    assert_eq!((stats.responses_503, stats.peak_concurrent), (2, 4), "{stats:?}");
    let clients = handle.clients();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let client = clients[&ip.parse::<std::net::IpAddr>().unwrap()];
        let expected =
            haul_test_support::ClientStats { requests: 3, responses_503: 1, in_flight: 2, peak_concurrent: 2 };
        assert_eq!(client, expected, "{ip}: {clients:?}");
    }

    // Once one address's bodies are dropped, that address is admitted again; a reset keeps what is in flight.
    held.truncate(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while second.head(&url).send().await.unwrap().status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "127.0.0.2's slots never freed: {:?}", handle.clients());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first.head(&url).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    handle.reset_stats();
    let clients = handle.clients();
    let first_ip: std::net::IpAddr = [127, 0, 0, 1].into();
    assert_eq!(clients.keys().copied().collect::<Vec<_>>(), [first_ip], "only 127.0.0.1 still holds bodies");
    assert_eq!(
        (clients[&first_ip].in_flight, clients[&first_ip].peak_concurrent, clients[&first_ip].requests),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn cut_fraction_one_cuts_every_body() {
    let origin = start(OriginOptions { cut_fraction: 1.0, ..Default::default() }).await;
    let handle = origin.handle();
    let size = 1_000_000;
    let resp = client().get(origin.url(size, "cut.bin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (got, errored) = read_all(resp).await;
    assert!(errored, "the body must end in an error");
    assert!(!got.is_empty() && (got.len() as u64) < size, "got {} bytes", got.len());
    assert_eq!(got[..], handle.file_bytes(size, "cut.bin", 0, got.len() as u64)[..]);
    let stats = handle.stats();
    assert_eq!(stats.cut_responses, 1);
    let (start, end) = stats.ranges_served[0];
    assert_eq!(start, 0);
    assert!((size / 10..=size * 9 / 10).contains(&end), "cut at {end}, outside 10%..90%");

    // A 1-byte body is never cut.
    let resp = client().get(origin.url(1, "tiny")).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn length_lie_declares_more_than_it_sends() {
    let origin = start(OriginOptions { length_lie: 1000, ..Default::default() }).await;
    let size = 50_000;
    let url = origin.url(size, "lie.bin");
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(header(&head, CONTENT_LENGTH).as_deref(), Some("51000"));

    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(header(&resp, CONTENT_LENGTH).as_deref(), Some("51000"));
    let (got, errored) = read_all(resp).await;
    assert!(errored);
    assert_eq!(got.len() as u64, size);

    // Ranges are honest.
    let resp = get_range(&origin, size, "lie.bin", "bytes=49000-").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes 49000-49999/50000"));
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    let resp = get_range(&origin, size, "lie.bin", "bytes=50000-50999").await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, CONTENT_RANGE).as_deref(), Some("bytes */50000"));
}

#[tokio::test]
async fn redirect_chain_keeps_query() {
    let origin = start(OriginOptions::default()).await;
    let no_follow = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = origin.base_url();
    let resp = no_follow.get(format!("{base}/redirect/2/data/100/r.bin?cd=x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, LOCATION).as_deref(), Some("/redirect/1/data/100/r.bin?cd=x"));
    let resp = no_follow.get(format!("{base}/redirect/0/data/100/r.bin")).send().await.unwrap();
    assert_eq!(header(&resp, LOCATION).as_deref(), Some("/data/100/r.bin"));

    let resp = client().get(format!("{base}/redirect/3/data/100/r.bin?cd=inline")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/data/100/r.bin");
    assert_eq!(header(&resp, CONTENT_DISPOSITION).as_deref(), Some("inline"));
    assert_eq!(resp.bytes().await.unwrap().len(), 100);
    // 2 unfollowed + 4 redirects + the final GET.
    assert_eq!(origin.handle().stats().requests, 2 + 4 + 1);
}

#[tokio::test]
async fn cd_query_sets_content_disposition() {
    let origin = start(OriginOptions::default()).await;
    let url = format!("{}?cd=attachment%3B%20filename%3D%22a+b%C3%A9.bin%22", origin.url(10, "x"));
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(
        resp.headers().get(CONTENT_DISPOSITION).unwrap().as_bytes(),
        "attachment; filename=\"a+bé.bin\"".as_bytes()
    );
}

#[tokio::test]
async fn set_version_changes_etag_and_content() {
    let origin = start(OriginOptions::default()).await;
    let handle = origin.handle();
    let url = origin.url(4096, "v.bin");
    let before = client().get(&url).send().await.unwrap();
    let (etag0, lm0) = (header(&before, ETAG), header(&before, LAST_MODIFIED));
    let body0 = before.bytes().await.unwrap();
    let sha0 = handle.file_sha256(4096, "v.bin");
    assert_eq!(sha256_hex(&body0), sha0);

    handle.set_version(1);
    let after = client().get(&url).send().await.unwrap();
    assert_ne!(header(&after, ETAG), etag0);
    assert_ne!(header(&after, LAST_MODIFIED), lm0);
    let body1 = after.bytes().await.unwrap();
    assert_ne!(body0, body1);
    assert_eq!(sha256_hex(&body1), handle.file_sha256(4096, "v.bin"));

    // A resume validated against the old ETag gets the whole new file.
    let resp = client().get(&url).header(RANGE, "bytes=100-").header(IF_RANGE, etag0.unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), body1);
}

#[tokio::test]
async fn per_connection_rate_paces_body() {
    let origin = start(OriginOptions { per_connection_rate: Some(4 << 20), ..Default::default() }).await;
    let started = Instant::now();
    let body = client().get(origin.url(1 << 20, "slow.bin")).send().await.unwrap().bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 1 << 20);
    // Nominally 250 ms.
    assert!(elapsed > Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn slow_fraction_uses_slow_rate() {
    // No per-connection rate: slow bodies run at 1 MiB/s / 10 = 100 KiB/s.
    let origin = start(OriginOptions { slow_fraction: 1.0, ..Default::default() }).await;
    let started = Instant::now();
    let body = client().get(origin.url(50 * 1024, "s.bin")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len(), 50 * 1024);
    let elapsed = started.elapsed();
    // Nominally 500 ms.
    assert!(elapsed > Duration::from_millis(300), "{elapsed:?}");
}

#[tokio::test]
async fn aggregate_rate_is_shared() {
    let origin = start(OriginOptions { aggregate_rate: Some(2 << 20), ..Default::default() }).await;
    let started = Instant::now();
    let fetch = |name: &'static str| {
        let url = origin.url(512 * 1024, name);
        async move { client().get(url).send().await.unwrap().bytes().await.unwrap().len() }
    };
    let (a, b) = tokio::join!(fetch("a"), fetch("b"));
    assert_eq!((a, b), (512 * 1024, 512 * 1024));
    let elapsed = started.elapsed();
    // 1 MiB in total at 2 MiB/s: nominally 500 ms.
    assert!(elapsed > Duration::from_millis(350), "{elapsed:?}");
}

#[tokio::test]
async fn first_byte_latency_delays_headers() {
    let origin = start(OriginOptions { first_byte_latency: Duration::from_millis(200), ..Default::default() }).await;
    let started = Instant::now();
    let resp = client().head(origin.url(1, "l")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(190));
}

#[tokio::test]
async fn stats_count_requests_bytes_and_ranges() {
    let origin = start(OriginOptions::default()).await;
    let handle = origin.handle();
    let size = 600_000;
    for range in ["bytes=0-99999", "bytes=300000-"] {
        let resp = get_range(&origin, size, "st.bin", range).await;
        resp.bytes().await.unwrap();
    }
    client().head(origin.url(size, "st.bin")).send().await.unwrap();
    let stats = handle.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.head_requests, 1);
    assert_eq!(stats.body_bytes_sent, 100_000 + 300_000);
    assert_eq!(stats.ranges_served, vec![(0, 100_000), (300_000, 600_000)]);
    assert_eq!(stats.peak_concurrent, 1);

    let raw = client().get(format!("{}/stats", origin.base_url())).send().await.unwrap().bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["requests"], 3);
    assert_eq!(json["body_bytes_sent"], 400_000);
    assert_eq!(json["ranges_served"][1][0], 300_000);

    handle.reset_stats();
    let stats = handle.stats();
    assert_eq!(stats.requests, 0);
    assert!(stats.ranges_served.is_empty());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let origin = start(OriginOptions::default()).await;
    let url = origin.url(10, "x");
    client().get(&url).send().await.unwrap();
    origin.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
}

#[test]
fn binary_prints_sha_and_serves() {
    let bin = env!("CARGO_BIN_EXE_haul-origin");
    let out = Command::new(bin).args(["--seed", "7", "--print-sha256", "3000", "f.bin"]).output().unwrap();
    assert!(out.status.success());
    let seed = haul_test_support::file_seed(7, 3000, "f.bin", 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), expected_sha256(seed, 3000));

    let (mut child, base) =
        common::spawn_origin(&["--listen", "127.0.0.1:0", "--seed", "7", "--per-connection-rate", "64M"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        client().get(format!("{base}/data/3000/f.bin")).send().await.unwrap().bytes().await.unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sha256_hex(&body), expected_sha256(seed, 3000));
}

#[test]
fn binary_limits_each_client_address() {
    let (mut child, base) = common::spawn_origin(&["--max-connections-per-ip", "1", "--per-connection-rate", "64K"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (statuses, stats) = rt.block_on(async {
        let url = format!("{base}/data/1048576/ip.bin");
        let (first, second) = (client_from([127, 0, 0, 1]), client_from([127, 0, 0, 3]));
        let held = first.get(&url).send().await.unwrap();
        let refused = first.get(&url).send().await.unwrap().status();
        let other = second.get(&url).send().await.unwrap();
        let stats: serde_json::Value =
            serde_json::from_str(&client().get(format!("{base}/stats")).send().await.unwrap().text().await.unwrap())
                .unwrap();
        ((held.status(), refused, other.status()), stats)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(statuses, (StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK));
    let clients = &stats["clients"];
    assert_eq!(clients["127.0.0.1"]["responses_503"], 1, "{stats}");
    assert_eq!(clients["127.0.0.1"]["peak_concurrent"], 1, "{stats}");
    assert_eq!(clients["127.0.0.3"]["requests"], 1, "{stats}");
}
