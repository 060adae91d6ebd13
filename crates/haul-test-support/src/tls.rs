//! HTTPS for the test origin: a test certificate authority and the server certificates it issues, made in
//! memory with rcgen when an origin starts, and the listener that serves TLS (rustls, ALPN `http/1.1` only)
//! over the origin's numbered TCP connections.
//!
//! Handshakes run in their own tasks, so a slow or failing one never holds up the accept loop; the finished
//! ones are handed to axum through a channel, numbered in TCP accept order as plain connections are (so a
//! failed handshake uses up its number, as far as `slow_fraction` is concerned).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::server::{ConnId, CountingListener, Shared};

/// The names of [`TlsMode::Valid`]'s certificate (and [`TlsMode::SelfSigned`]'s): the origin is on loopback.
/// `127.0.0.1` is an IP-address SAN (and, for axel, a DNS-name SAN too).
pub const LOOPBACK_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The one name of [`TlsMode::WrongHost`]'s certificate.
pub const WRONG_HOST_NAME: &str = "other.example";

/// A handshake not finished in this long counts as failed and its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for axum to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Which certificate an HTTPS origin presents. Whatever the mode, [`crate::Origin::ca_pem`] is the test CA's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// A certificate for `localhost` and `127.0.0.1` (an IP SAN) issued by the test CA: a client that trusts
    /// the CA accepts it.
    #[default]
    Valid,
    /// A certificate issued by the test CA for [`WRONG_HOST_NAME`] only: a client that trusts the CA refuses it
    /// for `127.0.0.1` (not valid for that name).
    WrongHost,
    /// A self-signed certificate for `localhost` and `127.0.0.1`, not issued by the test CA: a client that
    /// trusts the CA refuses it (unknown issuer).
    SelfSigned,
}

/// A test certificate authority, in memory. Cheap to clone.
///
/// Origins issue their certificates from [`TestCa::shared`], one CA per process, so a test that starts
/// several HTTPS origins trusts them all with one PEM file; [`TestCa::new`] makes another, for a client that
/// should trust the wrong CA.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<CaInner>,
}

struct CaInner {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA (ECDSA P-256, valid 2020 to 2100) named "haul test CA".
    pub fn new() -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "haul test CA");
        params.distinguished_name.push(DnType::OrganizationName, "haul-test-support");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params);
        let key = KeyPair::generate().context("generating the test CA's key")?;
        let issuer = CertifiedIssuer::self_signed(params, key).context("signing the test CA's certificate")?;
        let pem = issuer.pem();
        Ok(TestCa { inner: Arc::new(CaInner { issuer, pem }) })
    }

    /// The process's CA, made on first use; every HTTPS origin of the process is issued its certificate by it.
    pub fn shared() -> anyhow::Result<TestCa> {
        static SHARED: OnceLock<TestCa> = OnceLock::new();
        if let Some(ca) = SHARED.get() {
            return Ok(ca.clone());
        }
        let ca = TestCa::new()?;
        Ok(SHARED.get_or_init(|| ca).clone())
    }

    /// The CA's certificate, PEM (`-----BEGIN CERTIFICATE-----`): what a client is told to trust
    /// (`haul get --ca-cert FILE`, `SSL_CERT_FILE`, `curl --cacert`, `aria2c --ca-certificate`).
    pub fn cert_pem(&self) -> &str {
        &self.inner.pem
    }

    /// A server certificate for `names` (DNS names or IP addresses) issued by this CA.
    pub(crate) fn issue(&self, names: &[&str]) -> anyhow::Result<ServerCert> {
        let key = KeyPair::generate().context("generating a server key")?;
        let cert = leaf_params(names, "haul test origin")?
            .signed_by(&key, &self.inner.issuer)
            .context("issuing a server certificate")?;
        Ok(ServerCert { chain: vec![cert.der().clone()], pem: cert.pem(), key })
    }
}

/// A server's certificate and key.
pub(crate) struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    pem: String,
    key: KeyPair,
}

impl ServerCert {
    /// A certificate for `names` signed by its own key.
    pub(crate) fn self_signed(names: &[&str]) -> anyhow::Result<ServerCert> {
        let key = KeyPair::generate().context("generating a server key")?;
        let cert = leaf_params(names, "haul test origin, self-signed")?
            .self_signed(&key)
            .context("self-signing a server certificate")?;
        Ok(ServerCert { chain: vec![cert.der().clone()], pem: cert.pem(), key })
    }

    /// The rustls server configuration presenting this certificate: TLS 1.2 and 1.3, ALPN `http/1.1` only.
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        // The provider is named rather than taken from the process default, which another crate may not have set.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing the TLS versions")?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .context("loading the server certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn set_validity(params: &mut CertificateParams) {
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2100, 1, 1);
}

/// A server certificate's parameters: `names` become DNS-name SANs, or IP-address SANs for addresses. An address
/// is a DNS-name SAN too, for clients that match the URL's host against DNS names only (axel 2.17, which also
/// refuses single-label names such as `localhost`); clients that know IP SANs (rustls, OpenSSL, GnuTLS) use
/// only those for an address, and skip a DNS name that is one.
///
/// The subject is `common_name`, never a host name: a self-signed certificate's issuer is its subject, and a
/// machine's own `CN=localhost` certificate (Debian's snakeoil) in the system store would then be tried as its
/// issuer, changing the error a client reports.
fn leaf_params(names: &[&str], common_name: &str) -> anyhow::Result<CertificateParams> {
    let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).with_context(|| format!("certificate names {names:?}"))?;
    for name in &names {
        if name.parse::<IpAddr>().is_ok() {
            let dns = name.clone().try_into().with_context(|| format!("{name:?} as a DNS name"))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

/// What an HTTPS origin serves with: made by [`TlsServer::new`] before the origin listens.
pub(crate) struct TlsServer {
    acceptor: TlsAcceptor,
    /// The test CA's certificate, PEM.
    pub ca_pem: String,
    /// The served certificate, PEM.
    pub cert_pem: String,
}

impl TlsServer {
    pub(crate) fn new(mode: TlsMode) -> anyhow::Result<TlsServer> {
        let ca = TestCa::shared()?;
        let cert = match mode {
            TlsMode::Valid => ca.issue(&LOOPBACK_NAMES)?,
            TlsMode::WrongHost => ca.issue(&[WRONG_HOST_NAME])?,
            TlsMode::SelfSigned => ServerCert::self_signed(&LOOPBACK_NAMES)?,
        };
        let acceptor = TlsAcceptor::from(Arc::new(cert.server_config()?));
        Ok(TlsServer { acceptor, ca_pem: ca.cert_pem().to_owned(), cert_pem: cert.pem })
    }

    /// The listener axum serves from, and the accept loop that feeds it (to be run until shutdown).
    pub(crate) fn listen(
        &self,
        tcp: CountingListener,
        shared: Arc<Shared>,
    ) -> (TlsListener, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
        let local = tcp.addr();
        (TlsListener { incoming: rx, local }, accept_loop(tcp, self.acceptor.clone(), tx, shared))
    }
}

type Accepted = (TlsStream<TcpStream>, ConnId);

/// Accepts TCP connections (numbered, `TCP_NODELAY`) and starts a handshake task for each, until shutdown.
async fn accept_loop(
    mut tcp: CountingListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Accepted>,
    shared: Arc<Shared>,
) {
    loop {
        let (io, conn) = tokio::select! {
            accepted = Listener::accept(&mut tcp) => accepted,
            () = shared.shutdown.cancelled() => return,
        };
        tokio::spawn(handshake(io, conn, acceptor.clone(), tx.clone(), Arc::clone(&shared)));
    }
}

/// One connection's handshake; a finished one is handed to axum, a failed one counted and dropped.
async fn handshake(
    io: TcpStream,
    conn: ConnId,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Accepted>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => outcome,
        () = shared.shutdown.cancelled() => return,
    };
    match outcome {
        Ok(Ok(stream)) => {
            counters.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tx.send((stream, conn)) => {}
                () = shared.shutdown.cancelled() => {}
            }
        }
        Ok(Err(e)) => {
            counters.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?conn, "TLS handshake failed: {e}");
        }
        Err(_) => {
            counters.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?conn, "TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
        }
    }
}

/// The TLS connections whose handshake finished, in the order they finished.
pub(crate) struct TlsListener {
    incoming: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = ConnId;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accept loop has stopped (shutdown): no connection will come any more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnId::listener(self.local))
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ConnId {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_ca_is_one_per_process_and_new_is_another() {
        let a = TestCa::shared().unwrap();
        let b = TestCa::shared().unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(TestCa::new().unwrap().cert_pem(), a.cert_pem());
    }

    #[test]
    fn every_mode_builds_a_server() {
        for mode in [TlsMode::Valid, TlsMode::WrongHost, TlsMode::SelfSigned] {
            let server = TlsServer::new(mode).unwrap();
            assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{mode:?}");
            assert_ne!(server.cert_pem, server.ca_pem);
        }
    }
}
