//! Cookie jars: each account's cookies, imported from a Netscape cookies.txt (what browser extensions export and
//! yt-dlp's `--cookies` reads), for sites behind a login.
//!
//! Two consumers, each given only the account's own cookies: haul's requests go through the account's
//! [`HttpClient`] (`client_for`), which adds to each request and redirect hop the cookies whose domain, path,
//! scheme and expiry match its URL (`haul_core::credentials`); yt-dlp reads a cookies.txt of the account's
//! cookies written for the one job ([`JobCookies`]: mode 0600 in the temporary directory, removed when the job's
//! run ends, however it ends). Values are never shown back (the list masks them), never logged (the store's and
//! core's `Debug` leave them out) and never leave the account: another account's jobs fetch with their own jar.

use std::path::{Path, PathBuf};

use haul_core::credentials::{Cookie, parse_cookie_lines, write_cookies};
use haul_core::job::AccountId;
use haul_store::CookieRecord;

use super::Engine;
use super::error::ServiceError;
use crate::http::HttpClient;

/// Most cookies one account's jar keeps: a browser's whole export is a few thousand.
pub const MAX_COOKIES: usize = 10_000;

/// One cookie as its account sees it: everything but the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieView {
    pub domain: String,
    pub subdomains: bool,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// Unix seconds; `None` for a session cookie.
    pub expires: Option<u64>,
    pub name: String,
    /// How long the value is, in bytes; the value itself is never shown back.
    pub value_length: usize,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookiesImported {
    pub imported: usize,
    /// The domains the file named, whose earlier cookies it replaced.
    pub domains: Vec<String>,
}

fn to_record(cookie: Cookie) -> CookieRecord {
    let Cookie { domain, subdomains, path, secure, expires, name, value, http_only } = cookie;
    // A cookie for an address goes to that address only.
    let subdomains = subdomains && url::Host::parse(&domain).is_ok_and(|host| matches!(host, url::Host::Domain(_)));
    CookieRecord { domain, subdomains, path, secure, http_only, expires, name, value }
}

fn to_cookie(record: CookieRecord) -> Cookie {
    let CookieRecord { domain, subdomains, path, secure, http_only, expires, name, value } = record;
    Cookie { domain, subdomains, path, secure, expires, name, value, http_only }
}

impl From<CookieRecord> for CookieView {
    fn from(record: CookieRecord) -> Self {
        let CookieRecord { domain, subdomains, path, secure, http_only, expires, name, value } = record;
        Self { domain, subdomains, path, secure, http_only, expires, name, value_length: value.len() }
    }
}

/// A cookies.txt checked whole: every cookie line parsed and fit for a jar, or the first line that is not, named.
fn parse_jar(body: &[u8]) -> Result<Vec<CookieRecord>, ServiceError> {
    let invalid = |message: String| ServiceError::Invalid(format!("the cookies file: {message}"));
    let text = std::str::from_utf8(body).map_err(|error| {
        let line = body[..error.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        invalid(format!("line {line} is not text (a Netscape cookies.txt is UTF-8 text)"))
    })?;
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(invalid(format!("line {line} holds a NUL byte (a Netscape cookies.txt is text)")));
    }
    let lines = parse_cookie_lines(text).map_err(invalid)?;
    if lines.len() > MAX_COOKIES {
        return Err(invalid(format!("{} cookies; a jar keeps at most {MAX_COOKIES}", lines.len())));
    }
    lines
        .into_iter()
        .map(|(line, cookie)| {
            cookie.check().map_err(|why| invalid(format!("line {line}: {why}")))?;
            Ok(to_record(cookie))
        })
        .collect()
}

/// A domain as the jar keeps it: lowercase, without a leading dot.
fn jar_domain(domain: &str) -> String {
    domain.trim().trim_start_matches('.').to_ascii_lowercase()
}

impl Engine {
    /// Puts a cookies.txt into the account's jar: for each domain it names, the jar's cookies of that domain are
    /// replaced by the file's (a fresh export of a site's login replaces the stale one); other domains' stay.
    /// A file with a line that is not a cookie haul can keep (a bad field, a domain of `.` or a top-level domain
    /// alone, binary bytes) is refused whole, with the line named.
    pub async fn import_cookies(&self, account: &AccountId, body: &[u8]) -> Result<CookiesImported, ServiceError> {
        let cookies = parse_jar(body)?;
        if cookies.is_empty() {
            return Err(ServiceError::Invalid(
                "the cookies file holds no cookie: expected Netscape cookies.txt lines of 7 tab-separated fields"
                    .into(),
            ));
        }
        let kept = self.inner.store.cookies(account).await?;
        let mut domains: Vec<String> = cookies.iter().map(|cookie| cookie.domain.clone()).collect();
        domains.sort();
        domains.dedup();
        let after = kept.iter().filter(|cookie| !domains.contains(&cookie.domain)).count() + cookies.len();
        if after > MAX_COOKIES {
            return Err(ServiceError::Invalid(format!(
                "the jar would hold {after} cookies; it keeps at most {MAX_COOKIES}: clear some domains first"
            )));
        }
        self.inner.store.put_cookies(account, &cookies).await?;
        tracing::info!(cookies = cookies.len(), domains = domains.len(), "cookies imported");
        Ok(CookiesImported { imported: cookies.len(), domains })
    }

    /// The account's cookies without their values, by domain, path and name.
    pub async fn cookies(&self, account: &AccountId) -> Result<Vec<CookieView>, ServiceError> {
        Ok(self.inner.store.cookies(account).await?.into_iter().map(CookieView::from).collect())
    }

    /// Removes the account's cookies of `domain` (a leading dot and case ignored), or all of them; returns how
    /// many went.
    pub async fn clear_cookies(&self, account: &AccountId, domain: Option<&str>) -> Result<u64, ServiceError> {
        let domain = domain.map(jar_domain);
        Ok(self.inner.store.delete_cookies(account, domain.as_deref()).await?)
    }

    /// The account's jar as core cookies; empty when the store cannot say (the download goes on without them,
    /// as it would for an account that has none).
    async fn jar(&self, account: &AccountId) -> Vec<Cookie> {
        match self.inner.store.cookies(account).await {
            Ok(records) => records.into_iter().map(to_cookie).collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the account's cookies; fetching without them");
                Vec::new()
            }
        }
    }

    /// The HTTP client an account's downloads fetch with: the server's, sending the account's cookies where
    /// they belong.
    pub(super) async fn client_for(&self, account: &AccountId) -> HttpClient {
        self.inner.client.with_cookies(self.jar(account).await)
    }

    /// A cookies.txt of the account's cookies for yt-dlp, for one job's run; `None` when the account has none.
    pub(super) async fn cookies_file(&self, account: &AccountId) -> Result<Option<JobCookies>, crate::EngineError> {
        let jar = self.jar(account).await;
        if jar.is_empty() {
            return Ok(None);
        }
        JobCookies::write(&write_cookies(&jar)).map(Some)
    }
}

/// A job's cookies.txt: only its owner may read it (0600), in the temporary directory, removed when dropped.
pub(super) struct JobCookies {
    path: PathBuf,
}

impl JobCookies {
    fn write(text: &str) -> Result<Self, crate::EngineError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = std::env::temp_dir().join(format!("haul-jar-{}.txt", uuid::Uuid::new_v4()));
        let file = Self { path };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)
            .and_then(|mut opened| opened.write_all(text.as_bytes()))
            .map_err(|error| crate::EngineError::io(&file.path, error))?;
        Ok(file)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for JobCookies {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: &[u8]) -> String {
        parse_jar(body).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_named() {
        let good = b"# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tTRUE\t0\tsid\tabc\n";
        assert_eq!(parse_jar(good).unwrap().len(), 1);
        assert!(error(b"example.com\tFALSE\t/\tTRUE\t0\tsid\tabc\nbroken line\n").contains("line 2: 1 fields"));
        assert!(error(b"a.example\tFALSE\t/\tFALSE\t0\tx\ty\n\xff\xfe\x00binary").contains("line 2 is not text"));
        assert!(error(b"a.example\tFALSE\t/\tFALSE\t0\tx\ty\n\0\n").contains("line 2 holds a NUL byte"));
        assert!(error(b"\n\n.\tTRUE\t/\tFALSE\t0\tx\ty\n").contains("line 3: the domain is empty"));
        assert!(error(b".com\tTRUE\t/\tFALSE\t0\tx\ty\n").contains("line 1: the domain \"com\" is a top-level domain"));
    }

    #[test]
    fn an_address_gets_its_cookie_only_itself() {
        let jar = parse_jar(b".127.0.0.1\tTRUE\t/\tFALSE\t0\tx\ty\n.example.com\tTRUE\t/\tFALSE\t0\tx\ty\n").unwrap();
        assert!(!jar[0].subdomains && jar[1].subdomains);
        assert_eq!(jar_domain(" .Example.COM"), "example.com");
    }

    #[test]
    fn a_job_file_is_private_and_gone_when_dropped() {
        use std::os::unix::fs::PermissionsExt as _;
        let file = JobCookies::write("# Netscape HTTP Cookie File\n").unwrap();
        let path = file.path().to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        drop(file);
        assert!(!path.exists());
    }
}
