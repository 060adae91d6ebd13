//! Turning what a client asks for into a job the store keeps: every field checked once here, with a message
//! that says what was wrong and what would be accepted.

use std::path::{Component, Path};

use haul_core::checksum::ChecksumSpec;
use haul_core::job::{AccountId, JobKind};
use haul_core::labels::Labels;
use haul_core::media::{NameTemplate, Quality};
use haul_core::media_choice::{MAX_SUBTITLE_LANGS, MediaChoice};
use haul_store::NewDownload;
use url::Url;

use super::error::ServiceError;
use super::views::AddRequest;
use crate::destination::DestinationPolicy;
use crate::download;
use crate::media::MediaTools;

/// The most connections one download may ask for.
const MAX_CONNECTIONS: u32 = 256;
/// The longest display title, in characters.
const MAX_TITLE: usize = 1000;
/// The longest URL taken, in bytes: longer ones are not links people paste but attempts to fill the store.
pub(super) const MAX_URL: usize = 8 * 1024;
/// Most mirrors one download may list.
const MAX_MIRRORS: usize = 16;
/// Most extra request headers, and the longest name and value.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_LEN: usize = 8 * 1024;
/// The priorities a client may give: enough to order a queue, bounded so none can be made unreachable.
pub(super) const PRIORITIES: std::ops::RangeInclusive<i32> = -1000..=1000;

/// Headers a job may not set: the connection's own framing and routing, which the engine owns. A `Host`
/// of the user's choosing would also let a job reach a name the destination check never saw.
const FORBIDDEN_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "range",
    "if-range",
];

/// A valid [`AddRequest`] as the store's new row, or the first thing wrong with it.
pub(super) fn new_download(
    account: &AccountId,
    request: AddRequest,
    tools: &MediaTools,
    destinations: &DestinationPolicy,
) -> Result<NewDownload, ServiceError> {
    let url = check_url(&request.url, destinations)?;
    if request.mirrors.len() > MAX_MIRRORS {
        return Err(ServiceError::Invalid(format!("at most {MAX_MIRRORS} mirrors, got {}", request.mirrors.len())));
    }
    let mirrors =
        request.mirrors.iter().map(|mirror| check_url(mirror, destinations)).collect::<Result<Vec<_>, _>>()?;
    let filename = match &request.filename {
        Some(name) => Some(haul_core::filename::sanitize(name).ok_or_else(|| {
            ServiceError::Invalid(format!("filename {name:?} has nothing usable once made safe; choose another"))
        })?),
        None => None,
    };
    let directory = request.directory.as_deref().map(check_directory).transpose()?;
    if let Some(checksum) = &request.checksum {
        checksum.parse::<ChecksumSpec>().map_err(|e| ServiceError::Invalid(e.to_string()))?;
    }
    check_headers(&request.headers)?;
    if let Some(connections) = request.connections
        && !(1..=MAX_CONNECTIONS).contains(&connections)
    {
        return Err(ServiceError::Invalid(format!(
            "connections must be between 1 and {MAX_CONNECTIONS}, got {connections}"
        )));
    }
    if request.speed_limit == Some(0) {
        return Err(ServiceError::Invalid("speed_limit must be positive (bytes per second)".into()));
    }
    check_priority(request.priority)?;
    let quality = request.quality.unwrap_or(Quality::Best);
    let kind = request.kind.unwrap_or(JobKind::Auto);
    if quality == Quality::Audio {
        require("an audio-only download", tools.ffmpeg())?;
        require("an audio-only download", tools.ffprobe())?;
    }
    if kind == JobKind::Playlist {
        return Err(ServiceError::Invalid(
            "kind \"playlist\" is haul's to give once it has read the page; ask for \"media\" or \"auto\"".into(),
        ));
    }
    let playlist_items = match request.playlist_items.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(items) => Some(
            items.parse::<haul_core::playlist::PlaylistItems>().map_err(|e| ServiceError::Invalid(e.to_string()))?,
        ),
    };
    if playlist_items.is_some() && kind == JobKind::File {
        return Err(ServiceError::Invalid(
            "playlist_items selects entries of a playlist; a download of kind \"file\" is never one".into(),
        ));
    }
    if kind == JobKind::Media {
        require("a media download (kind \"file\" fetches the URL as it is)", tools.yt_dlp())?;
    }
    let title = request.title.map(check_title).transpose()?.flatten();
    let mut new = NewDownload::new(account.clone(), url);
    new.mirrors = mirrors;
    new.filename = filename;
    new.directory = directory;
    new.checksum = request.checksum;
    new.headers = request.headers;
    new.connections_limit = request.connections;
    new.speed_limit = request.speed_limit;
    new.priority = request.priority;
    new.start_paused = request.start_paused;
    new.title = title;
    new.quality = quality;
    new.kind = kind;
    new.labels = check_labels(request.labels)?;
    new.name_with_id = request.name_with_id;
    new.playlist_items = playlist_items.map(|items| items.to_string());
    new.name_template = match request.name_template.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(_) if kind == JobKind::File => {
            return Err(ServiceError::Invalid(
                "name_template names media files; a download of kind \"file\" takes filename".into(),
            ));
        }
        Some(template) => {
            template.parse::<NameTemplate>().map_err(|error| ServiceError::Invalid(error.to_string()))?;
            Some(template.to_owned())
        }
    };
    new.media = check_media_choice(request.media, quality, tools)?;
    new.check_archive = request.check_archive;
    Ok(new)
}

/// A media choice as kept: a format selector decides alone; subtitles at most [`MAX_SUBTITLE_LANGS`]
/// languages; anything that reads a page needs yt-dlp. (The selector's syntax is yt-dlp's to judge: see
/// `Engine::add`.)
fn check_media_choice(choice: MediaChoice, quality: Quality, tools: &MediaTools) -> Result<MediaChoice, ServiceError> {
    if choice.format.is_some() && (quality != Quality::Best || choice.prefer.is_some() || choice.vcodec.is_some()) {
        return Err(ServiceError::Invalid(
            "format is a whole yt-dlp selector: leave out quality, prefer and vcodec with it, or say them in the \
             selector (e.g. bv*[height<=720][vcodec^=vp9]+ba)"
                .into(),
        ));
    }
    if choice.subtitles.len() > MAX_SUBTITLE_LANGS {
        return Err(ServiceError::Invalid(format!("at most {MAX_SUBTITLE_LANGS} subtitle languages")));
    }
    if choice.format.is_some() || choice.wants_subtitles() {
        require("a format selector or subtitles", tools.yt_dlp())?;
    }
    // Metadata is embedded by default, and skipped without ffmpeg; subtitles in the file are asked for.
    if choice.embed_subtitles {
        require("embedding subtitles", tools.ffmpeg())?;
    }
    Ok(choice)
}

/// A display name as kept: trimmed, `None` when blank.
pub(super) fn check_title(title: String) -> Result<Option<String>, ServiceError> {
    let title = title.trim();
    if title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "title must be at most {MAX_TITLE} characters without control characters"
        )));
    }
    Ok(Some(title.to_owned()).filter(|title| !title.is_empty()))
}

/// Labels as kept: a blank creator is none.
pub(super) fn check_labels(mut labels: Labels) -> Result<Labels, ServiceError> {
    labels.creator = labels.creator.map(|creator| creator.trim().to_owned()).filter(|creator| !creator.is_empty());
    labels.check().map_err(|error| ServiceError::Invalid(error.to_string()))?;
    Ok(labels)
}

/// Refuses `what` when a program it needs was not found, saying which and how to get it.
pub(super) fn require(what: &str, found: Result<&Path, String>) -> Result<(), ServiceError> {
    found.map(drop).map_err(|why| ServiceError::Unsupported(format!("{what} cannot be done here: {why}")))
}

/// An absolute http(s) URL, normalised; other schemes are `UnsupportedScheme`, and a literal address the
/// destination policy refuses is `RefusedDestination` (a name is checked when it is resolved).
pub(super) fn check_url(text: &str, destinations: &DestinationPolicy) -> Result<String, ServiceError> {
    if text.len() > MAX_URL {
        return Err(ServiceError::Invalid(format!("url is {} bytes long; at most {MAX_URL} are taken", text.len())));
    }
    let url = Url::parse(text.trim()).map_err(|e| {
        let shown: String = text.chars().take(200).collect();
        ServiceError::Invalid(format!("url is not valid ({e}): {shown:?}; expected http://host/path"))
    })?;
    download::check_url(&url).map_err(|error| match url.scheme() {
        "http" | "https" => ServiceError::Invalid(error.to_string()),
        _ => ServiceError::UnsupportedScheme(error.to_string()),
    })?;
    destinations.check_url(&url).map_err(|refused| ServiceError::RefusedDestination(refused.to_string()))?;
    Ok(url.to_string())
}

/// A priority in [`PRIORITIES`].
pub(super) fn check_priority(priority: i32) -> Result<(), ServiceError> {
    if PRIORITIES.contains(&priority) {
        return Ok(());
    }
    Err(ServiceError::Invalid(format!(
        "priority must be between {} and {}, got {priority}",
        PRIORITIES.start(),
        PRIORITIES.end()
    )))
}

fn check_headers(headers: &[(String, String)]) -> Result<(), ServiceError> {
    if headers.len() > MAX_HEADERS {
        return Err(ServiceError::Invalid(format!("at most {MAX_HEADERS} headers, got {}", headers.len())));
    }
    for (name, value) in headers {
        if name.len() > MAX_HEADER_NAME || value.len() > MAX_HEADER_LEN {
            return Err(ServiceError::Invalid(format!(
                "header {name:.64} is too long: names take at most {MAX_HEADER_NAME} bytes, values {MAX_HEADER_LEN}"
            )));
        }
        if FORBIDDEN_HEADERS.iter().any(|forbidden| name.trim().eq_ignore_ascii_case(forbidden)) {
            return Err(ServiceError::Invalid(format!(
                "header {} is set by haul itself and cannot be given; leave it out",
                name.trim()
            )));
        }
    }
    crate::http::header_map(headers.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map(drop)
        .map_err(ServiceError::Invalid)
}

/// A directory under the downloads root: relative, without `..`, each part a safe name.
pub(super) fn check_directory(text: &str) -> Result<String, ServiceError> {
    let invalid =
        || ServiceError::Invalid(format!("directory must be a relative path inside downloads/, got {text:?}"));
    let mut parts = Vec::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str().ok_or_else(invalid)?;
                let safe = haul_core::filename::sanitize(part).ok_or_else(invalid)?;
                if safe != part {
                    return Err(invalid());
                }
                parts.push(safe);
            }
            Component::CurDir => {}
            _ => return Err(invalid()),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_stay_inside_the_downloads_root() {
        for (given, expected) in [("a", Some("a")), ("a/b", Some("a/b")), ("./a/./b", Some("a/b")), ("", Some(""))] {
            assert_eq!(check_directory(given).ok().as_deref(), expected, "{given}");
        }
        for hostile in ["../x", "a/../../x", "/etc", "a/\u{7}b", ".hidden"] {
            assert!(matches!(check_directory(hostile), Err(ServiceError::Invalid(_))), "{hostile}");
        }
    }

    #[test]
    fn urls_are_http_or_https_and_other_schemes_are_told_apart() {
        let any = DestinationPolicy::allow_all();
        assert_eq!(check_url(" http://h/f ", &any).unwrap(), "http://h/f");
        assert!(matches!(check_url("ftp://h/f", &any), Err(ServiceError::UnsupportedScheme(_))));
        assert!(matches!(check_url("not a url", &any), Err(ServiceError::Invalid(_))));
        let long = format!("http://h/{}", "a".repeat(MAX_URL));
        assert!(check_url(&long, &any).unwrap_err().to_string().contains("at most 8192"));
        let public = DestinationPolicy::public_only(Vec::new());
        assert!(matches!(check_url("http://127.1:80/x", &public), Err(ServiceError::RefusedDestination(_))));
        assert_eq!(check_url("http://127.1:80/x", &any).unwrap(), "http://127.0.0.1/x");
    }

    #[test]
    fn headers_that_frame_or_route_the_request_are_refused() {
        let pairs = |name: &str| vec![(name.to_owned(), "x".to_owned())];
        for name in ["Host", "content-length", "Transfer-Encoding", "Connection", " Keep-Alive", "Range"] {
            let error = check_headers(&pairs(name)).unwrap_err();
            assert!(error.to_string().contains("set by haul itself"), "{name}: {error}");
        }
        assert!(check_headers(&pairs("Cookie")).is_ok());
        assert!(check_headers(&vec![("X".to_owned(), "y".to_owned()); MAX_HEADERS + 1]).is_err());
        assert!(check_priority(1001).is_err() && check_priority(-1000).is_ok());
    }
}
