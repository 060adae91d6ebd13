//! What a client attaches to a download for its own bookkeeping: key-value metadata, who it is for, where its
//! thumbnail frame is taken and how long its links live. Cloudflare Stream's `meta`, `creator`,
//! `thumbnailTimestampPct` and `requireSignedURLs` are these; the native API can set them too.
//!
//! haul keeps them, shows them back as given, and filters lists on `creator`; it acts on `thumbnail_at` (the
//! frame) and `require_signed_urls` (link lifetime) only.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most bytes `meta` may take as JSON.
pub const MAX_META_BYTES: usize = 16 * 1024;
/// The most keys `meta` may have.
pub const MAX_META_KEYS: usize = 100;
/// The most characters of a `creator` (Cloudflare Stream's own limit).
pub const MAX_CREATOR: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// The client's key-value pairs, kept and shown back as given; empty when none.
    pub meta: Map<String, Value>,
    /// Who the client says the download is for; lists can be filtered on it.
    pub creator: Option<String>,
    /// Where a video's thumbnail frame is taken, as a fraction (0-1) of its duration; the first frame when
    /// `None`.
    pub thumbnail_at: Option<f64>,
    /// Links handed out for the download live [`SIGNED_LINK_SECS`] rather than a day: the client asked that only
    /// freshly signed links reach the file.
    pub require_signed_urls: bool,
}

/// How long a link to a download with `require_signed_urls` lives: an hour, as a Stream signed token does by
/// default.
pub const SIGNED_LINK_SECS: u64 = 60 * 60;

/// Why labels were refused; the message says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelError(String);

impl Labels {
    /// The first thing wrong with these labels, if any.
    pub fn check(&self) -> Result<(), LabelError> {
        if self.meta.len() > MAX_META_KEYS {
            return Err(LabelError(format!("meta has {} keys; at most {MAX_META_KEYS} are kept", self.meta.len())));
        }
        if let Some(key) = self.meta.keys().find(|key| key.is_empty() || key.chars().any(char::is_control)) {
            return Err(LabelError(format!("meta key {key:?} must be non-empty text without control characters")));
        }
        let bytes = serde_json::to_string(&self.meta).map_or(usize::MAX, |text| text.len());
        if bytes > MAX_META_BYTES {
            return Err(LabelError(format!("meta takes {bytes} bytes as JSON; at most {MAX_META_BYTES} are kept")));
        }
        if let Some(creator) = &self.creator
            && (creator.is_empty() || creator.chars().count() > MAX_CREATOR || creator.chars().any(char::is_control))
        {
            return Err(LabelError(format!(
                "creator must be 1 to {MAX_CREATOR} characters without control characters, got {creator:?}"
            )));
        }
        if let Some(at) = self.thumbnail_at
            && !(0.0..=1.0).contains(&at)
        {
            return Err(LabelError(format!(
                "the thumbnail's place must be a fraction of the duration from 0 to 1, got {at}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_say_what_is_wrong() {
        assert_eq!(Labels::default().check(), Ok(()));
        let with = |edit: fn(&mut Labels)| {
            let mut labels = Labels::default();
            edit(&mut labels);
            labels.check().map_err(|error| error.to_string())
        };
        assert!(with(|l| l.thumbnail_at = Some(1.5)).unwrap_err().contains("from 0 to 1"));
        assert!(with(|l| l.thumbnail_at = Some(f64::NAN)).is_err());
        assert_eq!(with(|l| l.thumbnail_at = Some(0.0)), Ok(()));
        assert_eq!(with(|l| l.thumbnail_at = Some(1.0)), Ok(()));
        assert!(with(|l| l.creator = Some("x".repeat(65))).unwrap_err().contains("creator"));
        assert!(with(|l| l.creator = Some("a\nb".into())).is_err());
        assert!(with(|l| l.creator = Some(String::new())).is_err());
        assert_eq!(with(|l| l.creator = Some("x".repeat(64))), Ok(()));
        assert!(
            with(|l| {
                l.meta.insert(String::new(), Value::Null);
            })
            .unwrap_err()
            .contains("meta key")
        );
        assert!(
            with(|l| {
                l.meta.insert("big".into(), Value::String("x".repeat(20_000)));
            })
            .unwrap_err()
            .contains("bytes")
        );
        assert!(
            with(|l| {
                for i in 0..101 {
                    l.meta.insert(format!("k{i}"), Value::Bool(true));
                }
            })
            .unwrap_err()
            .contains("keys")
        );
    }
}
