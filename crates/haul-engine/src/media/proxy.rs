//! A forward proxy on loopback that yt-dlp is pointed at (`--proxy`), so that every request yt-dlp makes (the
//! page, its API calls, manifests, fragments) obeys the same destination policy as haul's own fetches.
//!
//! One proxy per yt-dlp run, started only when the policy refuses something: it listens on 127.0.0.1:0,
//! tunnels `CONNECT host:port` (HTTPS) and forwards absolute-form requests (plain HTTP) to a connection it
//! opened itself, after resolving the host and checking every address against the policy. What it refused is
//! kept, so the job's error can say which address was refused instead of yt-dlp's "HTTP Error 403".

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::destination::{DestinationPolicy, Refused};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A running proxy; it stops when dropped.
pub(crate) struct GuardProxy {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

struct Shared {
    policy: DestinationPolicy,
    /// What was refused, oldest first (a handful at most: yt-dlp gives up after a refusal).
    refused: Mutex<Vec<Refused>>,
}

impl GuardProxy {
    pub(crate) async fn start(policy: DestinationPolicy) -> std::io::Result<Self> {
        let listener = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared { policy, refused: Mutex::new(Vec::new()) });
        let stop = CancellationToken::new();
        let (accepting, stopping) = (shared.clone(), stop.clone());
        crate::task::spawn(tracing::debug_span!("yt-dlp proxy", %url), async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted?,
                    _ = stopping.cancelled() => return Ok::<(), std::io::Error>(()),
                };
                let (shared, stopping) = (accepting.clone(), stopping.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(shared.clone(), request));
                    let connection =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection.with_upgrades() => {}
                        _ = stopping.cancelled() => {}
                    }
                });
            }
        });
        Ok(Self { url, shared, stop })
    }

    /// `http://127.0.0.1:PORT`, for yt-dlp's `--proxy`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The first destination refused during this run, if any.
    pub(crate) fn first_refusal(&self) -> Option<Refused> {
        self.shared.refused.lock().first().cloned()
    }
}

impl Drop for GuardProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let answer = if request.method() == Method::CONNECT {
        tunnel(&shared, request).await
    } else {
        forward(&shared, request).await
    };
    Ok(answer.unwrap_or_else(|(status, message)| text(status, message)))
}

/// `CONNECT host:port`: a tunnel to an allowed address, for HTTPS.
async fn tunnel(shared: &Shared, request: Request<Incoming>) -> Result<Response<ProxyBody>, (StatusCode, String)> {
    let authority = request.uri().authority().cloned().ok_or_else(|| bad("CONNECT needs host:port"))?;
    let mut upstream = connect(shared, authority.host(), authority.port_u16().unwrap_or(443)).await?;
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
            Err(error) => tracing::debug!(%error, "the tunnel was not taken up"),
        }
    });
    Ok(Response::new(empty()))
}

/// `GET http://host/path`: the request, in origin form, on a connection to an allowed address.
async fn forward(shared: &Shared, request: Request<Incoming>) -> Result<Response<ProxyBody>, (StatusCode, String)> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(bad("only absolute http:// requests and CONNECT are proxied"));
    }
    let host = uri.host().ok_or_else(|| bad("the request has no host"))?.to_owned();
    let upstream = connect(shared, &host, uri.port_u16().unwrap_or(80)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, format!("{host}: {error}")))?;
    tokio::spawn(connection);

    let (mut parts, body) = request.into_parts();
    let origin_form = uri.path_and_query().map_or("/", |path| path.as_str());
    parts.uri = origin_form.parse::<Uri>().map_err(|_| bad("bad request path"))?;
    for name in ["proxy-connection", "proxy-authorization", "connection", "keep-alive"] {
        parts.headers.remove(name);
    }
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, format!("{host}: {error}")))?;
    Ok(response.map(BodyExt::boxed))
}

/// A connection to `host:port` on an address the policy allows; a refused one is recorded and answered 403.
async fn connect(shared: &Shared, host: &str, port: u16) -> Result<TcpStream, (StatusCode, String)> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let checked = match host.parse::<IpAddr>() {
        Ok(address) => shared.policy.check(host, address).map(|()| vec![SocketAddr::new(address, port)]),
        Err(_) => {
            let found = tokio::net::lookup_host((host, port))
                .await
                .map_err(|error| (StatusCode::BAD_GATEWAY, format!("{host}: {error}")))?;
            shared.policy.filter(host, found.collect())
        }
    };
    let addresses = checked.map_err(|refused| {
        let message = refused.to_string();
        shared.refused.lock().push(refused);
        (StatusCode::FORBIDDEN, message)
    })?;
    TcpStream::connect(&addresses[..]).await.map_err(|error| (StatusCode::BAD_GATEWAY, format!("{host}: {error}")))
}

fn bad(message: &str) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

fn empty() -> ProxyBody {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(message)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}
