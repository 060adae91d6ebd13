//! `GET|HEAD /v1/downloads/{id}/file`: a finished download's file, streamed from disk, with byte ranges,
//! conditional requests and a Content-Disposition that survives any file name.

use std::io::SeekFrom;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haul_core::job::JobState;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use haul_engine::service::DownloadView;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::IdPath;

/// Read size of the file stream: large enough that a fast client is not held up by syscalls, small enough that
/// a slow one does not pin much memory.
const CHUNK: usize = 64 * 1024;

/// The finished file. Supports `Range` (one range; 206, or 416 when outside the file), `If-None-Match`
/// and `If-Modified-Since` (304), and HEAD.
#[utoipa::path(get, path = "/v1/downloads/{id}/file", tag = "downloads",
    params(("id" = String, Path, format = Uuid)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified since the client's copy"),
        (status = 404, description = "Unknown download, not completed yet, or file gone from disk", body = ErrorBody),
        (status = 416, description = "Range outside the file", body = ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    method: Method,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = state.engine.get(&caller.account, id).await?;
    if view.state != JobState::Completed {
        return Err(ApiError::not_found(format!(
            "download {id} is {}; the file is served once it is completed",
            view.state.as_str()
        )));
    }
    // The engine answers `None` both when the file was removed from disk and when its recorded path leads
    // outside the downloads directory; to the client both mean there is nothing to serve.
    let gone = || ApiError::not_found(format!("the file of download {id} is no longer in the downloads directory"));
    send_download(&state, &view, None, &method, &request_headers).await?.ok_or_else(gone)
}

/// A completed download's file: from this node's downloads directory, served as `name` (else as
/// [`download_name`] says), or, when another node's directory holds it (several nodes with node-local
/// directories), from that node. `Ok(None)` when neither has it.
pub(crate) async fn send_download(
    state: &AppState,
    view: &DownloadView,
    name: Option<&str>,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    match state.engine.file_path(view).await {
        Some(path) => {
            let name = name.map_or_else(|| download_name(view, &path), str::to_owned);
            send_file(&path, &name, method, request_headers).await
        }
        None => from_holder(state, view, crate::links::FILE, method, request_headers).await,
    }
}

/// The header that marks a request passed from one node to another.
const HOP: &str = "x-haul-hop";

/// How long the link one node hands another for a file lives; it is used at once.
const HOLDER_LINK_SECS: u64 = 60;

/// Request headers passed on to the node holding a file, so ranges and conditional requests work through it.
const PASSED_ON: [header::HeaderName; 4] =
    [header::RANGE, header::IF_RANGE, header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE];
/// Response headers passed back.
const PASSED_BACK: [header::HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CONTENT_DISPOSITION,
    header::CACHE_CONTROL,
];

/// A download's `variant` (its file, its thumbnail, a rendition) from the node that holds it, streamed through:
/// asked for with a signed link (every node signs with the database's link key), so no client credential
/// crosses to the other node. `Ok(None)` when no other node holds it, or it has not either.
pub(crate) async fn from_holder(
    state: &AppState,
    view: &DownloadView,
    variant: &str,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    // A request one node passes to another is never passed on again: a holder whose advertised address leads
    // back here (a load balancer, a name that changed) would otherwise send it round without end.
    if request_headers.contains_key(HOP) {
        return Ok(None);
    }
    let Some(base) = state.engine.holder_url(view).await else { return Ok(None) };
    let holder = view.node.as_deref().unwrap_or_default();
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + HOLDER_LINK_SECS;
    let link = state.links.link_expiring(&base, &view.account, view.id, variant, expires);
    let mut request = between_nodes().request(method.clone(), &link).header(HOP, "1");
    for name in PASSED_ON {
        if let Some(value) = request_headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.map_err(|error| {
        ApiError::bad_gateway(format!(
            "the file of download {} is on node {holder}, which cannot be reached at {base} ({}); try again              when it is back",
            view.id,
            haul_engine::task::chain(&error)
        ))
    })?;
    if answer.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let mut response = Response::builder().status(answer.status());
    for name in PASSED_BACK {
        if let Some(value) = answer.headers().get(&name) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from_stream(answer.bytes_stream())).map(Some).map_err(ApiError::internal)
}

/// The client one node fetches another's files with: the nodes' own addresses, which operators configure
/// (`--advertise-url`), so no destination policy applies; no overall timeout, since a file may be large.
fn between_nodes() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .read_timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default()
    })
}

/// The name a client should save a download's file as: its title with the file's extension when it has a title
/// (`My clip.mp4`), else the stored file name (without the `__{id}` of the yt-dlp app's layout).
pub(crate) fn download_name(view: &haul_engine::service::DownloadView, path: &Path) -> String {
    let stored = view
        .filename
        .clone()
        .or_else(|| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "download".to_owned());
    let stored = if view.name_with_id { haul_core::filename::untagged(&stored, &view.id.to_string()) } else { stored };
    let Some(title) = view.title.as_deref() else { return stored };
    match Path::new(&stored).extension().map(|ext| ext.to_string_lossy()) {
        Some(ext) if !title.to_lowercase().ends_with(&format!(".{}", ext.to_lowercase())) => format!("{title}.{ext}"),
        _ => title.to_owned(),
    }
}

/// A download's thumbnail (`thumbnails/{id}.jpg|webp|png`) under its own name; `Ok(None)` when it has none.
pub(crate) async fn send_thumbnail(
    state: &AppState,
    view: &DownloadView,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    let Some(path) = state.engine.thumbnail_path(view).await else {
        // Thumbnails live in the data directory of the node that made them.
        return from_holder(state, view, crate::links::THUMBNAIL, method, request_headers).await;
    };
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    send_file(&path, &name, method, request_headers).await
}

/// The type a file is served as, from its name: the MP4 family as RFC 4337 names it (an m4a is `audio/mp4`),
/// everything else as `mime_guess` knows it.
fn content_type(name: &str) -> String {
    let ext = Path::new(name).extension().map(|ext| ext.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "m4a" => "audio/mp4".to_owned(),
        "mp4" | "m4v" => "video/mp4".to_owned(),
        _ => mime_guess::from_path(name).first_or_octet_stream().to_string(),
    }
}

/// Streams the file at `path`, offered to the client as `name`, honouring `Range` (one range; 206, or 416 when
/// outside the file), `If-None-Match` and `If-Modified-Since` (304), and HEAD. `Ok(None)` when there is no
/// file there: each API answers that in its own words.
pub(crate) async fn send_file(
    path: &Path,
    name: &str,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    // The engine resolved `path` (no symlink in it) and checked it lies under its directory; a symlink put in
    // its place since is not followed.
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    let mut file = match options.open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ApiError::internal(format!("opening {}: {error}", path.display()))),
    };
    let metadata = file.metadata().await.map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let len = metadata.len();
    let modified = metadata.modified().ok();
    let etag = entity_tag(len, modified);

    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, header_value(&etag)?);
    if let Some(modified) = modified {
        headers.insert(header::LAST_MODIFIED, header_value(&httpdate::fmt_http_date(modified))?);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // The file is behind a token or a signed link: shared caches must not keep it, the client's own cache may
    // revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));

    if not_modified(request_headers, &etag, modified) {
        return Ok(Some((StatusCode::NOT_MODIFIED, headers).into_response()));
    }

    headers.insert(header::CONTENT_TYPE, header_value(&content_type(name))?);
    headers.insert(header::CONTENT_DISPOSITION, header_value(&content_disposition(name))?);

    let range = match request_headers.get(header::RANGE).and_then(|value| value.to_str().ok()) {
        None => None,
        Some(text) => match parse_range(text, len) {
            RangeAnswer::Whole => None,
            RangeAnswer::Part(start, end) => Some((start, end)),
            RangeAnswer::Unsatisfiable => {
                let mut error = ApiError::range_not_satisfiable(format!(
                    "range {text} is outside the file {name:?}, which is {len} bytes"
                ))
                .into_response();
                error.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("bytes */{len}"))?);
                return Ok(Some(error));
            }
        },
    };
    let (status, start, count) = match range {
        Some((start, end)) => {
            headers.insert(header::CONTENT_RANGE, header_value(&format!("bytes {start}-{end}/{len}"))?);
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if method == Method::HEAD {
        return Ok(Some((status, headers).into_response()));
    }
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|error| ApiError::internal(format!("seeking {}: {error}", path.display())))?;
    }
    // `take` stops at the length announced even if the file grew; a file that shrank ends the body early and
    // the client sees a short read against Content-Length rather than made-up bytes.
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(count), CHUNK));
    Ok(Some((status, headers, body).into_response()))
}

fn header_value(text: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(text).map_err(|error| ApiError::internal(format!("header value {text:?}: {error}")))
}

/// A strong validator from the size and modification time: the engine renames a finished file into place
/// and never writes it again, so the pair changes whenever the content can have.
fn entity_tag(len: u64, modified: Option<SystemTime>) -> String {
    let nanos = modified.and_then(|time| time.duration_since(UNIX_EPOCH).ok()).map_or(0, |since| since.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

/// RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since; the ETag comparison is weak.
fn not_modified(request: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    if let Some(value) = request.get(header::IF_NONE_MATCH) {
        let Ok(text) = value.to_str() else { return false };
        let ours = etag.trim_start_matches("W/");
        return text.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    let (Some(value), Some(modified)) = (request.get(header::IF_MODIFIED_SINCE), modified) else { return false };
    let Some(since) = value.to_str().ok().and_then(|text| httpdate::parse_http_date(text).ok()) else { return false };
    // HTTP dates have whole seconds: compare at that precision or a file is always "newer" than its own date.
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    seconds(modified) <= seconds(since)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// No usable range: send the whole file (RFC 9110 lets a server ignore a Range it does not parse, and
    /// several ranges would need multipart/byteranges, which download clients do not ask for).
    Whole,
    /// Inclusive start and end.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range against a file of `len` bytes.
fn parse_range(text: &str, len: u64) -> RangeAnswer {
    let Some(spec) = text.trim().strip_prefix("bytes=") else { return RangeAnswer::Whole };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeAnswer::Whole };
    // A position past what a u64 holds is past any file: it saturates (RFC 9110 reads a last position beyond
    // the end as the end, and a first one beyond it as unsatisfiable), rather than making the range unreadable.
    let parse = |digits: &str| -> Option<u64> {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().unwrap_or(u64::MAX))
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match parse(suffix) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(suffix) => RangeAnswer::Part(len.saturating_sub(suffix), len - 1),
        },
        (first, last) => {
            let Some(start) = parse(first) else { return RangeAnswer::Whole };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match parse(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeAnswer::Whole,
                }
            };
            if start >= len { RangeAnswer::Unsatisfiable } else { RangeAnswer::Part(start, end.min(len - 1)) }
        }
    }
}

/// RFC 5987 `attr-char`: what may stand unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="fallback"; filename*=UTF-8''encoded` (RFC 6266): old clients read the ASCII
/// fallback, current ones the exact UTF-8 name.
fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let fallback = fallback.trim();
    let fallback = if fallback.is_empty() { "download" } else { fallback };
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{}", utf8_percent_encode(name, ATTR_CHAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let cases = [
            ("bytes=0-99", 1000, Part(0, 99)),
            ("bytes=900-", 1000, Part(900, 999)),
            ("bytes=900-5000", 1000, Part(900, 999)),
            ("bytes=-100", 1000, Part(900, 999)),
            ("bytes=-5000", 1000, Part(0, 999)),
            ("bytes=999-999", 1000, Part(999, 999)),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=5000-6000", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=5-1", 1000, Whole),
            ("bytes=0-1,5-6", 1000, Whole),
            ("items=0-1", 1000, Whole),
            ("bytes=a-b", 1000, Whole),
            ("bytes=+1-2", 1000, Whole),
            ("bytes=0-99999999999999999999", 1000, Part(0, 999)),
            ("bytes=99999999999999999999-", 1000, Unsatisfiable),
            ("bytes=-99999999999999999999", 1000, Part(0, 999)),
            ("bytes=18446744073709551615-18446744073709551615", 1000, Unsatisfiable),
        ];
        for (text, len, expected) in cases {
            assert_eq!(parse_range(text, len), expected, "{text} of {len}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever a client sends as Range, the answer is the whole file, a part inside it, or a 416.
        #[test]
        fn any_range_header_gives_a_part_inside_the_file(
            text in "(bytes=)?[-0-9, ]{0,40}|bytes=[0-9]{0,25}-[0-9]{0,25}",
            len in 0u64..=u64::MAX,
        ) {
            if let RangeAnswer::Part(start, end) = parse_range(&text, len) {
                proptest::prop_assert!(start <= end && end < len, "{text:?} of {len}: {start}-{end}");
            }
        }
    }

    #[test]
    fn dispositions() {
        let cases = [
            ("plain.bin", "attachment; filename=\"plain.bin\"; filename*=UTF-8''plain.bin"),
            ("a \"b\"\\c.txt", "attachment; filename=\"a bc.txt\"; filename*=UTF-8''a%20%22b%22%5Cc.txt"),
            ("résumé.pdf", "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
            ("x\r\ny.txt", "attachment; filename=\"xy.txt\"; filename*=UTF-8''x%0D%0Ay.txt"),
            ("日本", "attachment; filename=\"__\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"),
            ("\"", "attachment; filename=\"download\"; filename*=UTF-8''%22"),
        ];
        for (name, expected) in cases {
            assert_eq!(content_disposition(name), expected, "{name:?}");
            assert!(HeaderValue::from_str(expected).is_ok());
        }
    }

    #[test]
    fn conditionals() {
        let modified = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_500);
        let etag = entity_tag(10, Some(modified));
        let check = |name: header::HeaderName, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).unwrap());
            not_modified(&headers, &etag, Some(modified))
        };
        assert!(check(header::IF_NONE_MATCH, &etag));
        assert!(check(header::IF_NONE_MATCH, &format!("\"x\", W/{etag}")));
        assert!(check(header::IF_NONE_MATCH, "*"));
        assert!(!check(header::IF_NONE_MATCH, "\"other\""));
        assert!(check(header::IF_MODIFIED_SINCE, &httpdate::fmt_http_date(modified)));
        let earlier = modified - std::time::Duration::from_secs(5);
        assert!(!check(header::IF_MODIFIED_SINCE, &httpdate::fmt_http_date(earlier)));
        assert!(!check(header::IF_MODIFIED_SINCE, "not a date"));
        assert!(!not_modified(&HeaderMap::new(), &etag, Some(modified)));
    }
}
