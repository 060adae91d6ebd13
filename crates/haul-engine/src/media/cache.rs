//! Recent page readings (`yt-dlp -J`), so that a client that asks about a page and then downloads it (the
//! yt-dlp web app's `/api/info` then `/api/download`), a retry, or two jobs of one page started together run
//! yt-dlp once: each reading costs a second or more of CPU (Python, yt-dlp's 1,700 extractors' patterns, the
//! generic extractor's embed search), where handing out a kept one costs nothing.
//!
//! **Invariant**: a reading is handed out only to a request with the same key, and the key is everything the
//! yt-dlp run depended on: the page URL, every header sent with it (a `Cookie` or `Authorization` among them),
//! the contents of the cookies file, the yt-dlp program and the destination policy it ran behind. A reading made
//! with someone's login is therefore never handed to a request without that same login, whichever account asks;
//! and one made without the guard proxy is never handed to a server that would have put it behind one.
//!
//! Readings live [`TTL`] (stream URLs in them expire, often within hours, sometimes sooner), at most
//! [`CAPACITY`] at a time, and a media job whose fetch fails forgets its page's, so its retry reads the page
//! afresh. Failed readings are not kept. Requests for a page being read wait for that reading instead of
//! starting another one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use haul_core::media::MediaInfo;
use parking_lot::Mutex;
use sha2::Digest as _;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long a reading is handed out again.
pub(crate) const TTL: Duration = Duration::from_secs(180);
/// How many readings are kept at most (a reading is a few kB to a few hundred kB for a page with hundreds of
/// formats).
pub(crate) const CAPACITY: usize = 64;

/// Everything a page reading depended on, hashed (the cache holds no login in the clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PageKey([u8; 32]);

/// What goes into a [`PageKey`].
pub(crate) struct KeyParts<'a> {
    pub(crate) program: &'a std::path::Path,
    /// The destination policy's full description (every range it opens).
    pub(crate) policy: &'a str,
    pub(crate) url: &'a str,
    pub(crate) headers: &'a [(String, String)],
    /// The cookies file's bytes.
    pub(crate) cookies: Option<&'a [u8]>,
}

impl PageKey {
    pub(crate) fn new(parts: &KeyParts<'_>) -> Self {
        let mut hash = sha2::Sha256::new();
        // Each field with its length before it, so no two different sets of fields hash the same bytes.
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(parts.program.as_os_str().as_encoded_bytes());
        field(parts.policy.as_bytes());
        field(parts.url.as_bytes());
        field(&(parts.headers.len() as u64).to_le_bytes());
        for (name, value) in parts.headers {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        match parts.cookies {
            Some(cookies) => {
                field(b"cookies");
                field(cookies);
            }
            None => field(b"no cookies"),
        }
        Self(hash.finalize().into())
    }
}

/// The readings of one set of media tools (one server, or one `haul get`); clones share them.
#[derive(Clone, Default)]
pub struct PageCache {
    entries: Arc<Mutex<HashMap<PageKey, Entry>>>,
}

struct Entry {
    /// Empty while the page is being read (or after a reading failed: the next request reads it).
    reading: Arc<OnceCell<Reading>>,
    added: Instant,
}

struct Reading {
    info: MediaInfo,
    at: Instant,
}

impl PageCache {
    /// The kept reading of `key` if it is younger than [`TTL`], else the one `read` makes (kept if it succeeds).
    /// A request that comes while another reads the same page waits for that reading; if it fails or is
    /// cancelled, the next waiter reads the page itself. The second value says whether the page was read.
    pub(crate) async fn get_or_read<E, F>(&self, key: PageKey, read: F) -> Result<(MediaInfo, bool), E>
    where
        F: Future<Output = Result<MediaInfo, E>>,
    {
        let cell = self.cell(key);
        let mut read_now = false;
        let reading = cell
            .get_or_try_init(|| {
                read_now = true;
                async { read.await.map(|info| Reading { info, at: Instant::now() }) }
            })
            .await?;
        Ok((reading.info.clone(), read_now))
    }

    /// Whether a request for `key` now would be handed a reading without reading the page itself: one is kept,
    /// or being made.
    pub(crate) fn has(&self, key: PageKey) -> bool {
        let now = Instant::now();
        self.entries.lock().get(&key).is_some_and(|entry| match entry.reading.get() {
            Some(reading) => now.duration_since(reading.at) < TTL,
            // Being read: the reader holds the cell too (a failed reader has let go of it).
            None => Arc::strong_count(&entry.reading) > 1,
        })
    }

    /// Forgets the reading of `key`, so the next request reads the page again.
    pub(crate) fn forget(&self, key: PageKey) {
        self.entries.lock().remove(&key);
    }

    /// The cell of `key`: the kept one unless it expired, else a new empty one. Makes room first.
    fn cell(&self, key: PageKey) -> Arc<OnceCell<Reading>> {
        let now = Instant::now();
        let fresh = |entry: &Entry| entry.reading.get().is_none_or(|reading| now.duration_since(reading.at) < TTL);
        let mut entries = self.entries.lock();
        entries.retain(|_, entry| fresh(entry));
        if let Some(entry) = entries.get(&key) {
            return entry.reading.clone();
        }
        if entries.len() >= CAPACITY
            && let Some(oldest) = entries.iter().min_by_key(|(_, entry)| entry.added).map(|(key, _)| *key)
        {
            // A request waiting on an evicted reading still gets it; only later ones read again.
            entries.remove(&oldest);
        }
        let reading = Arc::new(OnceCell::new());
        entries.insert(key, Entry { reading: reading.clone(), added: now });
        reading
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache").field("entries", &self.entries.lock().len()).finish()
    }
}

/// A cache is not part of what a set of media tools is: two sets with the same programs and policy are equal.
impl PartialEq for PageCache {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn key(url: &str, headers: &[(&str, &str)], cookies: Option<&[u8]>) -> PageKey {
        let headers: Vec<(String, String)> =
            headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        let parts =
            KeyParts { program: Path::new("/usr/bin/yt-dlp"), policy: "public", url, headers: &headers, cookies };
        PageKey::new(&parts)
    }

    fn info(title: &str) -> MediaInfo {
        MediaInfo { title: Some(title.to_owned()), ..MediaInfo::default() }
    }

    async fn read(cache: &PageCache, key: PageKey, title: &str) -> (Option<String>, bool) {
        let (info, read) = cache.get_or_read(key, async { Ok::<_, ()>(info(title)) }).await.unwrap();
        (info.title, read)
    }

    #[test]
    fn the_key_covers_everything_the_reading_depended_on() {
        let plain = key("http://h/watch/1", &[], None);
        assert_eq!(plain, key("http://h/watch/1", &[], None));
        let different = [
            key("http://h/watch/2", &[], None),
            key("http://h/watch/1", &[("Cookie", "session=alice")], None),
            key("http://h/watch/1", &[("Cookie", "session=bob")], None),
            key("http://h/watch/1", &[("Authorization", "Bearer a")], None),
            key("http://h/watch/1", &[], Some(b"h\tFALSE\t/\tFALSE\t0\tsession\talice\n")),
            key("http://h/watch/1", &[], Some(b"h\tFALSE\t/\tFALSE\t0\tsession\tbob\n")),
            key("http://h/watch/1", &[], Some(b"")),
            // A header's name and value cannot trade bytes.
            key("http://h/watch/1", &[("X-A", "bc")], None),
            key("http://h/watch/1", &[("X-Ab", "c")], None),
        ];
        for (index, one) in different.iter().enumerate() {
            assert_ne!(*one, plain, "{index}");
            for (other_index, other) in different.iter().enumerate().skip(index + 1) {
                assert_ne!(one, other, "{index} and {other_index}");
            }
        }
        let headers = Vec::new();
        let base = KeyParts {
            program: Path::new("/usr/bin/yt-dlp"),
            policy: "public",
            url: "u",
            headers: &headers,
            cookies: None,
        };
        let other_program = KeyParts { program: Path::new("/opt/yt-dlp"), ..base };
        let other_policy = KeyParts { policy: "everything", ..base };
        let base_key = PageKey::new(&base);
        assert_ne!(PageKey::new(&other_program), base_key);
        assert_ne!(PageKey::new(&other_policy), base_key);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_is_handed_out_until_it_expires() {
        let cache = PageCache::default();
        let page = key("http://h/watch/1", &[], None);
        assert_eq!(read(&cache, page, "first").await, (Some("first".into()), true));
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert_eq!(read(&cache, page, "second").await, (Some("first".into()), false));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(read(&cache, page, "third").await, (Some("third".into()), true));
        cache.forget(page);
        assert_eq!(read(&cache, page, "fourth").await, (Some("fourth".into()), true));
    }

    #[tokio::test]
    async fn failed_readings_are_not_kept() {
        let cache = PageCache::default();
        let page = key("http://h/watch/1", &[], None);
        let failed = cache.get_or_read(page, async { Err::<MediaInfo, _>("yt-dlp failed") }).await;
        assert_eq!(failed.err(), Some("yt-dlp failed"));
        assert_eq!(read(&cache, page, "again").await, (Some("again".into()), true));
    }

    #[tokio::test]
    async fn a_request_during_a_reading_waits_for_it() {
        let cache = PageCache::default();
        let page = key("http://h/watch/1", &[], None);
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = cache.get_or_read(page, async {
            wait.await.unwrap();
            Ok::<_, ()>(info("first"))
        });
        let second = async {
            tokio::task::yield_now().await;
            read(&cache, page, "second").await
        };
        let releasing = async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            release.send(()).unwrap();
        };
        let (first, second, ()) = tokio::join!(first, second, releasing);
        let (first, first_read) = first.unwrap();
        assert_eq!((first.title, first_read), (Some("first".into()), true));
        assert_eq!(second, (Some("first".into()), false));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_capacity_readings_are_kept_and_the_oldest_goes_first() {
        let cache = PageCache::default();
        let pages: Vec<PageKey> = (0..=CAPACITY).map(|n| key(&format!("http://h/watch/{n}"), &[], None)).collect();
        for (n, page) in pages.iter().enumerate() {
            read(&cache, *page, &format!("{n}")).await;
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert_eq!(cache.len(), CAPACITY);
        assert_eq!(read(&cache, pages[CAPACITY], "new").await, (Some(format!("{CAPACITY}")), false));
        assert_eq!(read(&cache, pages[0], "new").await, (Some("new".into()), true));
    }
}
