// The origin's HTTPS mode over real TLS on loopback: reqwest (rustls) trusting the test CA, or not; the
// certificates that must be refused; handshakes that do not hold up others; and the `haul-origin --tls` binary
// with curl.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haul_test_support::{Origin, OriginHandle, OriginOptions, TestCa, TlsMode, expected_sha256, file_seed};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::io::AsyncWriteExt as _;

mod common;
use common::spawn_origin;

async fn start(mode: TlsMode) -> Origin {
    Origin::start(OriginOptions { tls: Some(mode), ..Default::default() }).await.expect("origin starts")
}

/// A client that trusts `ca_pem` besides its built-in roots.
fn trusting(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder().no_proxy().add_root_certificate(ca).build().expect("client")
}

/// A client with the built-in roots only.
fn untrusting() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The error and its causes on one line, to match on what rustls said.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Waits (up to 5 s) until the origin has counted `n` failed handshakes: the server notices a refusal just
/// after the client does.
async fn await_failures(handle: &OriginHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.stats().tls_handshake_failures < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.stats().tls_handshake_failures, n, "{:?}", handle.stats());
}

#[tokio::test]
async fn https_get_matches_sha256_and_ranges_work() {
    let origin = start(TlsMode::Valid).await;
    let handle = origin.handle();
    assert!(origin.base_url().starts_with("https://127.0.0.1:"), "{}", origin.base_url());
    assert!(origin.url(10, "x").starts_with("https://127.0.0.1:"));
    let ca = origin.ca_pem().expect("an HTTPS origin has a CA");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(handle.ca_pem().as_deref(), Some(ca.as_str()));
    assert!(handle.is_tls());
    let client = trusting(&ca);

    let size = 2_500_000;
    let resp = client.get(origin.url(size, "tls.bin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), handle.file_sha256(size, "tls.bin"));

    let resp = client.get(origin.url(size, "tls.bin")).header(RANGE, "bytes=1000-1999").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()[CONTENT_RANGE], "bytes 1000-1999/2500000");
    assert_eq!(resp.bytes().await.unwrap(), handle.file_bytes(size, "tls.bin", 1000, 2000));

    // By name too, and over TLS 1.2.
    let port = origin.addr().port();
    let body = client.get(format!("https://localhost:{port}/data/3000/n.bin")).send().await.unwrap();
    assert_eq!(body.bytes().await.unwrap(), handle.file_bytes(3000, "n.bin", 0, 3000));
    let tls12 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(tls12.head(origin.url(5, "v")).send().await.unwrap().status(), StatusCode::OK);

    let stats = handle.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.tls_handshake_failures, 0);
    // One connection for the first client's IP-address requests, one by name, one for the TLS 1.2 client.
    assert_eq!(stats.tls_handshakes, 3, "{stats:?}");
    handle.reset_stats();
    assert_eq!(handle.stats().tls_handshakes, 0);
}

#[tokio::test]
async fn a_client_without_the_ca_fails_the_handshake_and_it_is_counted() {
    let origin = start(TlsMode::Valid).await;
    let handle = origin.handle();
    let error = untrusting().get(origin.url(1000, "a.bin")).send().await.expect_err("the test CA is not trusted");
    let text = chain(&error);
    assert!(text.contains("UnknownIssuer") || text.contains("unknown issuer"), "{text}");
    await_failures(&handle, 1).await;
    let stats = handle.stats();
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.tls_handshakes, 0);

    // The origin goes on serving clients that trust it.
    let resp = trusting(&origin.ca_pem().unwrap()).get(origin.url(1000, "a.bin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(handle.stats().tls_handshake_failures, 1);
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_by_a_client_that_trusts_the_ca() {
    let origin = start(TlsMode::WrongHost).await;
    let handle = origin.handle();
    let error = trusting(&origin.ca_pem().unwrap())
        .get(origin.url(1000, "w.bin"))
        .send()
        .await
        .expect_err("the certificate names another host");
    let text = chain(&error);
    assert!(text.contains("NotValidForName") || text.contains("not valid for name"), "{text}");
    await_failures(&handle, 1).await;
    assert_eq!(handle.stats().requests, 0);
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_by_a_client_that_trusts_the_ca() {
    let origin = start(TlsMode::SelfSigned).await;
    let handle = origin.handle();
    let served = origin.cert_pem().unwrap();
    assert_ne!(served, origin.ca_pem().unwrap());
    let error = trusting(&origin.ca_pem().unwrap())
        .get(origin.url(1000, "s.bin"))
        .send()
        .await
        .expect_err("the certificate is not the CA's");
    let text = chain(&error);
    assert!(text.contains("UnknownIssuer") || text.contains("unknown issuer"), "{text}");
    await_failures(&handle, 1).await;
}

#[tokio::test]
async fn a_stalled_or_broken_handshake_does_not_hold_up_other_connections() {
    let origin = start(TlsMode::Valid).await;
    let handle = origin.handle();
    // A client that connects and says nothing, and one that speaks plain HTTP to the TLS port.
    let _stalled = tokio::net::TcpStream::connect(origin.addr()).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(origin.addr()).await.unwrap();
    plain.write_all(b"GET /data/10/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();

    let started = Instant::now();
    let client = trusting(&origin.ca_pem().unwrap());
    let body = client.get(origin.url(5000, "ok.bin")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body, handle.file_bytes(5000, "ok.bin", 0, 5000));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    await_failures(&handle, 1).await;

    // Shutdown does not wait for the stalled handshake.
    let url = origin.url(10, "x");
    let started = Instant::now();
    origin.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn origins_of_a_process_share_one_ca_and_plain_ones_have_none() {
    let a = start(TlsMode::Valid).await;
    let b = start(TlsMode::Valid).await;
    assert_eq!(a.ca_pem(), b.ca_pem());
    assert_eq!(a.ca_pem().as_deref(), Some(TestCa::shared().unwrap().cert_pem()));
    assert_ne!(a.cert_pem(), b.cert_pem());
    let client = trusting(&a.ca_pem().unwrap());
    for origin in [&a, &b] {
        assert_eq!(client.head(origin.url(1, "x")).send().await.unwrap().status(), StatusCode::OK);
    }
    // Another CA is another CA.
    let stranger = trusting(TestCa::new().unwrap().cert_pem());
    assert!(stranger.head(a.url(1, "x")).send().await.is_err());

    let plain = Origin::start(OriginOptions::default()).await.unwrap();
    assert!(plain.base_url().starts_with("http://"));
    assert_eq!(plain.ca_pem(), None);
    assert_eq!(plain.cert_pem(), None);
    assert!(!plain.handle().is_tls());
}

#[test]
fn binary_serves_https_with_the_ca_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (mut child, base) =
        spawn_origin(&["--listen", "127.0.0.1:0", "--seed", "7", "--tls", "--write-ca", ca.to_str().unwrap()]);
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    // Written before the line was printed.
    let pem = std::fs::read_to_string(&ca).unwrap();
    let url = format!("{base}/data/300000/f.bin");
    let expected = expected_sha256(file_seed(7, 300_000, "f.bin", 0), 300_000);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async { trusting(&pem).get(&url).send().await.unwrap().bytes().await.unwrap() });
    assert_eq!(sha256_hex(&body), expected);

    match Command::new("curl").args(["--version"]).output() {
        Ok(out) if out.status.success() => {
            let out = Command::new("curl")
                .args(["-sS", "--fail", "--noproxy", "*", "--cacert", ca.to_str().unwrap(), &url])
                .output()
                .unwrap();
            assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(sha256_hex(&out.stdout), expected);
            // Without the CA, curl refuses the certificate.
            let out = Command::new("curl").args(["-sS", "--fail", "--noproxy", "*", "-o", "/dev/null", &url]).output();
            assert!(!out.unwrap().status.success());
        }
        _ => eprintln!("skipping the curl part of binary_serves_https_with_the_ca_it_writes: no curl on PATH"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn binary_refuses_write_ca_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_haul-origin"))
        .args(["--write-ca", ca.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!ca.exists());
}
