//! Turning what a client asks for into a job the store keeps: every field checked once here, with a message
//! that says what was wrong and what would be accepted.

use std::path::{Component, Path};

use haul_core::checksum::ChecksumSpec;
use haul_core::job::{AccountId, JobKind};
use haul_core::media::Quality;
use haul_store::NewDownload;
use url::Url;

use super::error::ServiceError;
use super::views::AddRequest;
use crate::download;
use crate::media::MediaTools;

/// The most connections one download may ask for.
const MAX_CONNECTIONS: u32 = 256;
/// The longest display title, in characters.
const MAX_TITLE: usize = 1000;

/// A valid [`AddRequest`] as the store's new row, or the first thing wrong with it.
pub(super) fn new_download(
    account: &AccountId,
    request: AddRequest,
    tools: &MediaTools,
) -> Result<NewDownload, ServiceError> {
    let url = check_url(&request.url)?;
    let mirrors = request.mirrors.iter().map(|mirror| check_url(mirror)).collect::<Result<Vec<_>, _>>()?;
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
    let quality = request.quality.unwrap_or(Quality::Best);
    let kind = request.kind.unwrap_or(JobKind::Auto);
    if quality == Quality::Audio {
        require("an audio-only download", tools.ffmpeg())?;
        require("an audio-only download", tools.ffprobe())?;
    }
    if kind == JobKind::Media {
        require("a media download (kind \"file\" fetches the URL as it is)", tools.yt_dlp())?;
    }
    let title = request.title.map(|title| title.trim().to_owned()).filter(|title| !title.is_empty());
    if let Some(title) = &title
        && (title.chars().count() > MAX_TITLE || title.chars().any(char::is_control))
    {
        return Err(ServiceError::Invalid(format!(
            "title must be at most {MAX_TITLE} characters without control characters"
        )));
    }
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
    Ok(new)
}

/// Refuses `what` when a program it needs was not found, saying which and how to get it.
pub(super) fn require(what: &str, found: Result<&Path, String>) -> Result<(), ServiceError> {
    found.map(drop).map_err(|why| ServiceError::Unsupported(format!("{what} cannot be done here: {why}")))
}

/// An absolute http(s) URL, normalised; other schemes are `UnsupportedScheme`.
pub(super) fn check_url(text: &str) -> Result<String, ServiceError> {
    let url = Url::parse(text.trim())
        .map_err(|e| ServiceError::Invalid(format!("url is not valid ({e}): {text:?}; expected http://host/path")))?;
    download::check_url(&url).map_err(|error| match url.scheme() {
        "http" | "https" => ServiceError::Invalid(error.to_string()),
        _ => ServiceError::UnsupportedScheme(error.to_string()),
    })?;
    Ok(url.to_string())
}

fn check_headers(headers: &[(String, String)]) -> Result<(), ServiceError> {
    crate::http::header_map(headers.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map(drop)
        .map_err(ServiceError::Invalid)
}

/// A directory under the downloads root: relative, without `..`, each part a safe name.
fn check_directory(text: &str) -> Result<String, ServiceError> {
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
        assert_eq!(check_url(" http://h/f ").unwrap(), "http://h/f");
        assert!(matches!(check_url("ftp://h/f"), Err(ServiceError::UnsupportedScheme(_))));
        assert!(matches!(check_url("not a url"), Err(ServiceError::Invalid(_))));
    }
}
