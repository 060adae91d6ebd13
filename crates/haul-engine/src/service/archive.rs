//! The download archive: per account, what was downloaded, so that adding it again is skipped unless forced
//! (yt-dlp's `--download-archive`, MeTube's archive, for a server with accounts).
//!
//! A video is known by its extractor and id (`youtube dQw4w9WgXcQ`, lowercased as yt-dlp writes its archive), a
//! plain file by a digest of its URL, its validator (ETag, else Last-Modified) and its length, so that a file that
//! changed on its server is fetched again. An entry is recorded when a download completes (every API's), and
//! outlives the download, as a line of yt-dlp's archive outlives the file.
//!
//! Where the check happens: an add that asks for it ([`AddRequest::check_archive`], the native API's default)
//! looks up the URL it was given, which costs one indexed read (and, for a plain file already in the archive
//! under that URL, one HEAD to compare validators): a hit is [`ServiceError::AlreadyDownloaded`], a 409 naming
//! the earlier download. A page's extractor and id are known only once yt-dlp has read it, so the job checks
//! again then, before fetching anything: another URL of the same video (`youtu.be/...`), or two adds racing,
//! end the job `failed` with the same message instead of downloading it twice.
//!
//! [`AddRequest::check_archive`]: super::AddRequest::check_archive

use haul_core::job::{AccountId, DownloadId, JobKind};
use haul_core::media::MediaInfo;
use haul_store::{ArchiveRecord, NewArchiveEntry, NewDownload};
use sha2::Digest as _;

use super::Engine;
use super::error::ServiceError;
use crate::probe::Validators;

/// The extractor name plain files are archived under.
pub const FILE_EXTRACTOR: &str = "http";
/// Longest extractor name and video id kept; a page naming longer ones is not archived (real ids are short).
const MAX_EXTRACTOR: usize = 100;
const MAX_VIDEO_ID: usize = 500;
/// Most entries one page of `GET /v1/archive` holds.
pub const MAX_ARCHIVE_PAGE: u32 = 1000;

/// One archive entry as clients see it. Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveView {
    pub id: String,
    /// `youtube`, `generic`, ...; `http` for a plain file.
    pub extractor: String,
    /// The video's id on its site; for a plain file, a digest of its URL, validator and length.
    pub video_id: String,
    pub url: String,
    pub title: Option<String>,
    /// The download that fetched it; it may have been removed since.
    pub download: Option<DownloadId>,
    pub created_at: i64,
}

impl From<ArchiveRecord> for ArchiveView {
    fn from(record: ArchiveRecord) -> Self {
        let ArchiveRecord { id, account: _, extractor, video_id, url, title, download, created_at } = record;
        Self { id, extractor, video_id, url, title, download, created_at }
    }
}

/// What names one video or file in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveKey {
    pub extractor: String,
    pub video_id: String,
}

impl ArchiveKey {
    /// A video as yt-dlp names it: its extractor (`extractor_key`, lowercased) and id. `None` when either is
    /// missing, blank or unreasonably long.
    pub fn media(extractor: &str, video_id: &str) -> Option<Self> {
        let extractor = extractor.trim().to_ascii_lowercase();
        let video_id = video_id.trim();
        let fits = |text: &str, max: usize| !text.is_empty() && text.len() <= max && !text.contains(char::is_control);
        (fits(&extractor, MAX_EXTRACTOR) && fits(video_id, MAX_VIDEO_ID) && extractor != FILE_EXTRACTOR)
            .then(|| Self { extractor, video_id: video_id.to_owned() })
    }

    /// What yt-dlp's reading of a page names.
    pub fn of_page(info: &MediaInfo) -> Option<Self> {
        Self::media(info.extractor_key.as_deref()?, info.id.as_deref()?)
    }

    /// A plain file: a digest of its URL, its validator (ETag, else Last-Modified) and its length. `None` without
    /// a validator or a length: nothing then tells one version of the file from the next.
    pub fn file(url: &str, validators: &Validators, size: Option<u64>) -> Option<Self> {
        let validator = validators.etag.as_deref().or(validators.last_modified.as_deref())?;
        let size = size?;
        let digest = sha2::Sha256::digest(format!("{url}\n{validator}\n{size}").as_bytes());
        Some(Self { extractor: FILE_EXTRACTOR.to_owned(), video_id: hex::encode(&digest[..16]) })
    }
}

/// The message of an archive hit: which earlier download, and how to fetch it again anyway.
fn already(entry: &ArchiveRecord) -> ServiceError {
    let what = match &entry.title {
        Some(title) => format!("{title:?} ({} {})", entry.extractor, entry.video_id),
        None if entry.extractor == FILE_EXTRACTOR => format!("{} (the same version)", entry.url),
        None => format!("{} {}", entry.extractor, entry.video_id),
    };
    let by = match entry.download {
        Some(download) => format!("by download {download}"),
        None => "before".to_owned(),
    };
    ServiceError::AlreadyDownloaded {
        download: entry.download,
        message: format!(
            "already downloaded: {what} was downloaded {by}; add it with force to download it again, or forget it \
             with DELETE /v1/archive/{}",
            entry.id
        ),
    }
}

impl Engine {
    /// Whether the account has downloaded the video `extractor`/`video_id` (as yt-dlp names them; the extractor in
    /// any case): its archive entry, or `None`. The playlist code asks this for each entry of a flat playlist
    /// before making a child job of it.
    pub async fn archive_contains(
        &self,
        account: &AccountId,
        extractor: &str,
        video_id: &str,
    ) -> Result<Option<ArchiveView>, ServiceError> {
        let Some(key) = ArchiveKey::media(extractor, video_id) else { return Ok(None) };
        Ok(self.inner.store.archive_entry(account, &key.extractor, &key.video_id).await?.map(ArchiveView::from))
    }

    /// Records that the account has downloaded `key` from `url` (by `download`, when a download did): what a
    /// completed media or file download records itself, and what the playlist code may call for entries it
    /// completes some other way. A second recording of a key replaces its URL, title and download.
    pub async fn record_archive(
        &self,
        account: &AccountId,
        key: &ArchiveKey,
        url: &str,
        title: Option<&str>,
        download: Option<DownloadId>,
    ) -> Result<ArchiveView, ServiceError> {
        let new = NewArchiveEntry {
            account: account.clone(),
            extractor: key.extractor.clone(),
            video_id: key.video_id.clone(),
            url: url.to_owned(),
            title: title.map(str::to_owned),
            download,
        };
        Ok(self.inner.metrics.timed("record_archive", self.inner.store.record_archive(&new)).await?.into())
    }

    /// The account's archive, newest first, a page at a time, with the number of entries.
    pub async fn archive(
        &self,
        account: &AccountId,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<ArchiveView>, u64), ServiceError> {
        let limit = limit.clamp(1, MAX_ARCHIVE_PAGE);
        let entries = self.inner.store.list_archive(account, limit, offset).await?;
        let total = self.inner.store.count_archive(account).await?;
        Ok((entries.into_iter().map(ArchiveView::from).collect(), total))
    }

    /// Forgets one of the account's archive entries, so its video or file is downloaded again when added.
    pub async fn forget_archived(&self, account: &AccountId, id: &str) -> Result<ArchiveView, ServiceError> {
        Ok(self.inner.store.delete_archive_entry(account, id).await?.into())
    }

    /// Forgets the account's whole archive; returns how many entries went.
    pub async fn clear_archive(&self, account: &AccountId) -> Result<u64, ServiceError> {
        Ok(self.inner.store.clear_archive(account).await?)
    }

    /// At add time: a hit for the URL the add names, when the add asked for the check. A page archived under
    /// this URL is a hit (unless the add wants the URL as a plain file); a file archived under it is one only
    /// if the file there now has the same validator and length, which one HEAD tells.
    pub(super) async fn check_archive_on_add(&self, new: &NewDownload) -> Result<(), ServiceError> {
        if !new.check_archive {
            return Ok(());
        }
        let entries = self.inner.store.archive_by_url(&new.account, &new.url).await?;
        if let Some(page) = entries.iter().find(|entry| entry.extractor != FILE_EXTRACTOR && new.kind != JobKind::File)
        {
            return Err(already(page));
        }
        if entries.iter().any(|entry| entry.extractor == FILE_EXTRACTOR)
            && let Some(hit) = self.archived_file(&new.account, &new.url, &new.headers, &entries).await
        {
            return Err(already(&hit));
        }
        Ok(())
    }

    /// At run time, once yt-dlp has named the video: the entry of another download of it, when the job asked for
    /// the check. A store that cannot answer does not stop the download.
    pub(super) async fn archived_page(
        &self,
        account: &AccountId,
        id: DownloadId,
        info: &MediaInfo,
    ) -> Option<ServiceError> {
        let key = ArchiveKey::of_page(info)?;
        match self.inner.store.archive_entry(account, &key.extractor, &key.video_id).await {
            Ok(Some(entry)) if entry.download != Some(id) => Some(already(&entry)),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot read the download archive; downloading");
                None
            }
        }
    }

    /// At run time, before a plain file is fetched: the entry of an earlier download of the same version, when
    /// the archive holds the URL at all (otherwise nothing is asked of the host).
    pub(super) async fn archived_file_at_run(
        &self,
        account: &AccountId,
        id: DownloadId,
        url: &str,
        headers: &[(String, String)],
    ) -> Option<ServiceError> {
        let entries = match self.inner.store.archive_by_url(account, url).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "cannot read the download archive; downloading");
                return None;
            }
        };
        let others: Vec<ArchiveRecord> = entries
            .into_iter()
            .filter(|entry| entry.extractor == FILE_EXTRACTOR && entry.download != Some(id))
            .collect();
        if others.is_empty() {
            return None;
        }
        self.archived_file(account, url, headers, &others).await.map(|hit| already(&hit))
    }

    /// The entry among `entries` whose key is the file at `url` as it is now (one HEAD, with the job's headers
    /// and the account's cookies); `None` when none is, or the host cannot tell.
    async fn archived_file(
        &self,
        account: &AccountId,
        url: &str,
        headers: &[(String, String)],
        entries: &[ArchiveRecord],
    ) -> Option<ArchiveRecord> {
        let parsed: url::Url = url.parse().ok()?;
        let headers =
            crate::http::header_map(headers.iter().map(|(name, value)| (name.as_str(), value.as_str()))).ok()?;
        let client = self.client_for(account).await;
        let probe = crate::probe::probe(&client, &parsed, &headers, 1, None, crate::probe::ProbeWith::Head).await;
        let probe = match probe {
            Ok(probe) => probe,
            Err(error) => {
                tracing::debug!(%error, "cannot ask whether an archived file changed; downloading");
                return None;
            }
        };
        let key = ArchiveKey::file(url, &probe.validators, probe.size)?;
        entries.iter().find(|entry| entry.extractor == key.extractor && entry.video_id == key.video_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videos_are_named_as_yt_dlp_archives_them() {
        let key = ArchiveKey::media("Youtube", " dQw4w9WgXcQ ").unwrap();
        assert_eq!((key.extractor.as_str(), key.video_id.as_str()), ("youtube", "dQw4w9WgXcQ"));
        assert_eq!(ArchiveKey::media("", "x"), None);
        assert_eq!(ArchiveKey::media("Generic", " "), None);
        assert_eq!(ArchiveKey::media("Generic", &"x".repeat(MAX_VIDEO_ID + 1)), None);
        assert_eq!(ArchiveKey::media("Generic", "a\nb"), None);
        assert_eq!(ArchiveKey::media("HTTP", "x"), None, "the files' extractor is not a site's");
        let info = MediaInfo { extractor_key: Some("Generic".into()), id: Some("clip".into()), ..MediaInfo::default() };
        assert_eq!(ArchiveKey::of_page(&info), ArchiveKey::media("generic", "clip"));
        assert_eq!(ArchiveKey::of_page(&MediaInfo::default()), None);
    }

    #[test]
    fn files_are_named_by_url_validator_and_length() {
        let etag =
            Validators { etag: Some("\"v1\"".into()), last_modified: Some("Wed, 01 Jan 2020 00:00:00 GMT".into()) };
        let date = Validators { etag: None, last_modified: etag.last_modified.clone() };
        let key = ArchiveKey::file("http://h/f.iso", &etag, Some(10)).unwrap();
        assert_eq!(key.extractor, "http");
        assert_eq!(key.video_id.len(), 32);
        assert_eq!(ArchiveKey::file("http://h/f.iso", &etag, Some(10)), Some(key.clone()));
        for other in [
            ArchiveKey::file("http://h/g.iso", &etag, Some(10)),
            ArchiveKey::file("http://h/f.iso", &etag, Some(11)),
            ArchiveKey::file("http://h/f.iso", &date, Some(10)),
        ] {
            assert_ne!(other.unwrap(), key);
        }
        assert_eq!(ArchiveKey::file("http://h/f.iso", &Validators::default(), Some(10)), None);
        assert_eq!(ArchiveKey::file("http://h/f.iso", &etag, None), None);
    }
}
