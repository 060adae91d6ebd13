//! Signed, expiring download links: what VideoDB's `download_url` and Cloudflare Stream's download `url` hand
//! out, so that a browser or a plain `curl` can fetch a finished file without the API's credentials.
//!
//! A link is `{base}/links/{id}/{variant}?account=A&expires=UNIX&signature=HEX`, where the signature is
//! HMAC-SHA256 under the server's link key (a random secret kept in the data directory) over every other part.
//! Changing any part, or using the link after `expires`, is a 403. The link names the account so the download
//! is looked up as that account's, exactly as an authenticated request would be.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use haul_core::job::{AccountId, DownloadId, JobState};
use haul_core::media::RenditionName;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::files::{download_name, from_holder, send_download, send_file, send_thumbnail};

/// How long the links handed out by VideoDB and Cloudflare stay valid (VideoDB documents 24 hours).
pub const LINK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The variant of a link that serves the download's own file; other variants name a rendition (`audio`) or
/// the thumbnail.
pub const FILE: &str = "file";

/// The variant of a link that serves the download's thumbnail.
pub const THUMBNAIL: &str = "thumbnail";

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks links with one secret key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(<key redacted>)")
    }
}

impl LinkSigner {
    /// A signer over `key`; at least 32 bytes of randomness are expected.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, account: &AccountId, id: DownloadId, variant: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        // Newline-separated: no part can contain a newline (hex, a UUID, a rendition name, digits).
        mac.update(format!("haul-link-v1\n{account}\n{id}\n{variant}\n{expires}").as_bytes());
        mac
    }

    /// A link to `variant` of download `id`, valid for `ttl` from now.
    pub fn link(&self, base: &str, account: &AccountId, id: DownloadId, variant: &str, ttl: Duration) -> String {
        let expires = unix_now().saturating_add(ttl.as_secs());
        self.link_expiring(base, account, id, variant, expires)
    }

    /// A link that expires at `expires` (unix seconds).
    pub fn link_expiring(
        &self,
        base: &str,
        account: &AccountId,
        id: DownloadId,
        variant: &str,
        expires: u64,
    ) -> String {
        let signature = hex::encode(self.mac(account, id, variant, expires).finalize().into_bytes());
        format!(
            "{}/links/{id}/{variant}?account={account}&expires={expires}&signature={signature}",
            base.trim_end_matches('/')
        )
    }

    /// Whether `signature` (hex) signs these parts; compared in constant time.
    fn verify(&self, account: &AccountId, id: DownloadId, variant: &str, expires: u64, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else { return false };
        self.mac(account, id, variant, expires).verify_slice(&bytes).is_ok()
    }
}

fn unix_now() -> u64 {
    haul_core::clock::unix_secs(SystemTime::now())
}

/// The base URL links are built on: the configured public URL, else the scheme-less Host the client used (so a
/// link works from wherever the client reached this server), else loopback on the listening port.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        // A Host header is the client's to choose; only a plain host[:port] is echoed into a link.
        .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    match (host, state.port) {
        (Some(host), _) => format!("http://{host}"),
        (None, Some(port)) => format!("http://127.0.0.1:{port}"),
        (None, None) => "http://127.0.0.1".to_owned(),
    }
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    account: Option<String>,
    expires: Option<String>,
    signature: Option<String>,
}

/// `GET|HEAD /links/{id}/{variant}`: a signed link's file. 403 for a link that is tampered with or expired,
/// 404 when the download or its file is gone.
pub(crate) async fn serve_link(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    QueryParams(query): QueryParams<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Taken as a `Result` so that a rejection is answered in the JSON error shape too.
    let Path((id, variant)) = path?;
    let forbidden = |why: &str| ApiError::forbidden(format!("{why}; ask the API for a fresh download link"));
    let (Some(account), Some(expires), Some(signature)) = (query.account, query.expires, query.signature) else {
        return Err(forbidden("this link is incomplete: it needs account, expires and signature"));
    };
    let (Ok(account), Ok(id), Ok(expires)) =
        (account.parse::<AccountId>(), id.parse::<DownloadId>(), expires.parse::<u64>())
    else {
        return Err(forbidden("this link is not valid"));
    };
    if !state.links.verify(&account, id, &variant, expires, &signature) {
        return Err(forbidden("this link's signature does not match"));
    }
    if expires < unix_now() {
        return Err(forbidden("this link has expired"));
    }
    let view = state.engine.get(&account, id).await?;
    let not_ready = || ApiError::not_found(format!("download {id} has no finished {variant} file yet"));
    if variant == THUMBNAIL {
        let none = || ApiError::not_found(format!("download {id} has no thumbnail"));
        return send_thumbnail(&state, &view, &method, &headers).await?.ok_or_else(none);
    }
    let path = if variant == FILE {
        if view.state != JobState::Completed {
            return Err(not_ready());
        }
        return send_download(&state, &view, None, &method, &headers).await?.ok_or_else(not_ready);
    } else {
        let name: RenditionName = variant.parse().map_err(|_| not_ready())?;
        let Some(path) = state.engine.rendition_file(&account, id, name).await? else {
            return from_holder(&state, &view, name.as_str(), &method, &headers).await?.ok_or_else(not_ready);
        };
        if name.is_derived() {
            // A rendition is its own file (`clip.audio.m4a`), offered under its own name and type.
            let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            return send_file(&path, &file_name, &method, &headers).await?.ok_or_else(not_ready);
        }
        path
    };
    let name = download_name(&view, &path);
    send_file(&path, &name, &method, &headers).await?.ok_or_else(not_ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_only_unchanged() {
        let signer = LinkSigner::new(b"k".repeat(32));
        let account = AccountId::generate();
        let id = DownloadId::new_random();
        let link = signer.link_expiring("http://h:1/", &account, id, FILE, 2_000_000_000);
        assert!(link.starts_with(&format!("http://h:1/links/{id}/file?account={account}&expires=2000000000")));
        let signature = link.rsplit_once("signature=").unwrap().1;
        assert!(signer.verify(&account, id, FILE, 2_000_000_000, signature));
        assert!(!signer.verify(&account, id, FILE, 2_000_000_001, signature));
        assert!(!signer.verify(&account, id, "audio", 2_000_000_000, signature));
        assert!(!signer.verify(&AccountId::generate(), id, FILE, 2_000_000_000, signature));
        assert!(!signer.verify(&account, DownloadId::new_random(), FILE, 2_000_000_000, signature));
        assert!(!signer.verify(&account, id, FILE, 2_000_000_000, "zz"));
        assert!(!LinkSigner::new(b"x".repeat(32)).verify(&account, id, FILE, 2_000_000_000, signature));
    }
}

/// `POST /v1/downloads/{id}/link`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// `file` (the download's file, the default), `thumbnail`, or a rendition made from it (`audio`).
    #[schema(value_type = Option<String>, pattern = "^(file|thumbnail|audio)$")]
    variant: Option<String>,
    /// How long the link works, in seconds: 60 to 604800 (a week); a day when absent.
    #[schema(minimum = 60, maximum = 604800)]
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    ttl_secs: Option<u64>,
}

/// A link that works without credentials until it expires.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SignedLink {
    url: String,
    /// Unix seconds.
    expires_at: u64,
}

/// A signed link to one of the caller's files, to hand to a player or another person: it works without
/// credentials until it expires.
#[utoipa::path(post, path = "/v1/downloads/{id}/link", tag = "downloads", request_body = LinkRequest,
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, body = SignedLink),
        (status = 400, description = "Unknown variant or lifetime out of range", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn create_link(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    crate::extract::IdPath(id): crate::extract::IdPath,
    headers: HeaderMap,
    crate::extract::JsonBody(body): crate::extract::JsonBody<LinkRequest>,
) -> Result<axum::Json<SignedLink>, ApiError> {
    const WEEK: u64 = 7 * 24 * 60 * 60;
    let variant = body.variant.unwrap_or_else(|| FILE.to_owned());
    let known =
        variant == FILE || variant == THUMBNAIL || variant.parse::<RenditionName>().is_ok_and(|name| name.is_derived());
    if !known {
        return Err(ApiError::bad_request(format!("unknown variant {variant:?}; expected file, thumbnail or audio")));
    }
    let ttl = body.ttl_secs.unwrap_or(LINK_TTL.as_secs());
    if !(60..=WEEK).contains(&ttl) {
        return Err(ApiError::bad_request(format!("ttl_secs must be between 60 and {WEEK}, got {ttl}")));
    }
    // The download must be the caller's; whether its file is there yet is the link's to answer.
    state.engine.get(&caller.account, id).await?;
    let expires_at = unix_now().saturating_add(ttl);
    let url = state.links.link_expiring(&base_url(&state, &headers), &caller.account, id, &variant, expires_at);
    Ok(axum::Json(SignedLink { url, expires_at }))
}
