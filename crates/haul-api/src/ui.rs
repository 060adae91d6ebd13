//! The web page: the files under `crates/haul-api/ui`, embedded in the binary at build time, served at `/`
//! (`index.html`) and `/ui/...`. The page talks to `/v1` like any other client, signed in with a session
//! cookie (`crate::session`); `haul serve --ui off` leaves these routes out.
//!
//! Every answer carries a strict Content-Security-Policy (only this origin's scripts, styles, images and
//! connections; no inline code; no framing), `nosniff` and no Referer, and an ETag so a browser revalidates
//! instead of downloading the page again.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

static UI: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// What the page may load: its own files and its own API, nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Each file's ETag (a hash of its bytes), computed once.
fn etags() -> &'static HashMap<&'static str, String> {
    static ETAGS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        let mut etags = HashMap::new();
        let mut stack = vec![&UI];
        while let Some(dir) = stack.pop() {
            stack.extend(dir.dirs());
            for file in dir.files() {
                let Some(path) = file.path().to_str() else { continue };
                let digest = Sha256::digest(file.contents());
                etags.insert(path, format!("\"{}\"", hex::encode(&digest[..12])));
            }
        }
        etags
    })
}

/// The size in bytes of every file the page is made of, for the record.
pub fn weight() -> usize {
    let mut total = 0;
    let mut stack = vec![&UI];
    while let Some(dir) = stack.pop() {
        stack.extend(dir.dirs());
        total += dir.files().map(|file| file.contents().len()).sum::<usize>();
    }
    total
}

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Result<Response, ApiError> {
    serve("index.html", &headers)
}

/// `GET /ui/{*path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    serve(&path, &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("the page has no file {path:?}"));
    // include_dir keys files by their path under ui/; nothing outside it was embedded, so `..` finds nothing.
    let file = UI.get_file(path).ok_or_else(missing)?;
    let etag = etags().get(path).ok_or_else(missing)?;
    let content_type = mime_guess::from_path(path).first_or_octet_stream();
    let charset =
        if content_type.type_() == "text" || content_type.subtype() == "javascript" { "; charset=utf-8" } else { "" };
    let mut headers = HeaderMap::new();
    let value = |text: &str| HeaderValue::from_str(text).map_err(ApiError::internal);
    headers.insert(header::CONTENT_TYPE, value(&format!("{content_type}{charset}"))?);
    headers.insert(header::ETAG, value(etag)?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|sent| sent.as_bytes() == etag.as_bytes());
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Ok((headers, file.contents()).into_response())
}
