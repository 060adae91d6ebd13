//! Playlists and channels: which entries of a playlist become jobs (`--playlist-items 1-5,8`, a cap on the
//! number) and what each child job fetches.
//!
//! A playlist read with `yt-dlp -J --flat-playlist` lists its entries either as links to their own pages
//! (`_type` `url` / `url_transparent`: a feed, a channel) or as videos read in place (a page showing several
//! videos). A child of the first kind fetches its link like any media page; one of the second kind fetches the
//! playlist's page again and takes its N-th entry ([`Entry::item`]).

use std::fmt;
use std::str::FromStr;

use crate::media::MediaInfo;

/// Which entries of a playlist to take, by position from 1: `1-5,8,12-` (yt-dlp's `--playlist-items` without
/// negative positions or steps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistItems {
    /// Inclusive ranges; `None` as the end runs to the playlist's end.
    ranges: Vec<(u32, Option<u32>)>,
}

/// What is wrong with a `--playlist-items` text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("playlist items `{text}`: {reason}; write positions from 1 and ranges, such as `1-5,8,12-`")]
pub struct ItemsError {
    pub text: String,
    pub reason: String,
}

/// At most this many parts in one selection, so a request cannot make every check slow.
const MAX_PARTS: usize = 100;

impl FromStr for PlaylistItems {
    type Err = ItemsError;

    fn from_str(text: &str) -> Result<Self, ItemsError> {
        let error = |reason: String| ItemsError { text: text.to_owned(), reason };
        let position = |part: &str| -> Result<u32, ItemsError> {
            let part = part.trim();
            match part.parse::<u32>() {
                Ok(0) => Err(error("positions start at 1".into())),
                Ok(n) => Ok(n),
                Err(_) => Err(error(format!("`{part}` is not a position"))),
            }
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(error("an empty part".into()));
            }
            let range = match part.split_once('-') {
                Some((start, "")) => (position(start)?, None),
                Some((start, end)) => {
                    let (start, end) = (position(start)?, position(end)?);
                    if end < start {
                        return Err(error(format!("`{part}` ends before it starts")));
                    }
                    (start, Some(end))
                }
                None => {
                    let n = position(part)?;
                    (n, Some(n))
                }
            };
            ranges.push(range);
        }
        if ranges.len() > MAX_PARTS {
            return Err(error(format!("more than {MAX_PARTS} parts")));
        }
        Ok(Self { ranges })
    }
}

impl fmt::Display for PlaylistItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match end {
                Some(end) if end == start => write!(f, "{start}")?,
                Some(end) => write!(f, "{start}-{end}")?,
                None => write!(f, "{start}-")?,
            }
        }
        Ok(())
    }
}

impl PlaylistItems {
    pub fn contains(&self, position: u32) -> bool {
        self.ranges.iter().any(|&(start, end)| position >= start && end.is_none_or(|end| position <= end))
    }
}

/// One entry of a playlist that becomes a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its position in the playlist, from 1.
    pub index: u32,
    /// The page the child reads.
    pub url: String,
    /// Set when `url` is the playlist's own page: the child is that page's entry at this position.
    pub item: Option<u32>,
    pub title: Option<String>,
    pub thumbnail: Option<String>,
    /// The extractor and the video's id, when the playlist already names them (a video read in place; a link
    /// of a site that lists its ids): what a download archive knows it by.
    pub video: Option<(String, String)>,
}

/// The entries of a playlist that become jobs, and how many it has in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub entries: Vec<Entry>,
    /// Entries in the playlist, selected or not.
    pub total: usize,
    /// Entries that were selected but left out by the cap.
    pub over_cap: usize,
}

/// The entries of the playlist `info` (read from `page`) that `items` selects (all when `None`), at most `cap`
/// of them, in playlist order. An entry yt-dlp could not read (neither a link nor a video) is left out.
pub fn plan(info: &MediaInfo, page: &str, items: Option<&PlaylistItems>, cap: usize) -> Planned {
    let mut entries = Vec::new();
    let mut over_cap = 0;
    for (position, entry) in info.entries.iter().enumerate() {
        let index = u32::try_from(position + 1).unwrap_or(u32::MAX);
        if items.is_some_and(|items| !items.contains(index)) {
            continue;
        }
        let link = matches!(entry.kind.as_deref(), Some("url" | "url_transparent"));
        let (url, item) = match &entry.url {
            Some(url) if link => (url.clone(), None),
            _ if !entry.formats.is_empty() => (page.to_owned(), Some(index)),
            _ => continue,
        };
        if entries.len() >= cap {
            over_cap += 1;
            continue;
        }
        let extractor = entry.extractor_key.as_ref().or(entry.ie_key.as_ref());
        let video = extractor.zip(entry.id.as_ref()).map(|(extractor, id)| (extractor.clone(), id.clone()));
        entries.push(Entry { index, url, item, title: entry.title.clone(), thumbnail: entry.thumbnail.clone(), video });
    }
    Planned { entries, total: info.entries.len(), over_cap }
}

/// The video a child fetches from its reading of the page: the reading itself, or for a child that is the
/// page's `item`-th entry, that entry.
pub fn entry_of(mut info: MediaInfo, item: Option<u32>) -> Result<MediaInfo, String> {
    match item {
        Some(item) if info.is_playlist() => {
            let position = usize::try_from(item).unwrap_or(usize::MAX).saturating_sub(1);
            let count = info.entries.len();
            if position >= count {
                return Err(format!("the playlist has {count} entries now; entry {item} is gone"));
            }
            let entry = info.entries.swap_remove(position);
            if entry.formats.is_empty() {
                return Err(format!("entry {item} of the playlist has no video yt-dlp can fetch"));
            }
            Ok(entry)
        }
        Some(_) => Ok(info),
        None if info.is_playlist() => Err("this entry is itself a playlist; add its page on its own".into()),
        None => Ok(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Format;

    #[test]
    fn items_parse_and_print_back() {
        for (text, shown) in [("1-5,8", "1-5,8"), (" 3 , 7-7 ", "3,7"), ("12-", "12-"), ("2-4,1", "2-4,1")] {
            let items: PlaylistItems = text.parse().unwrap();
            assert_eq!(items.to_string(), shown, "{text}");
            assert_eq!(items.to_string().parse::<PlaylistItems>().unwrap(), items);
        }
        let items: PlaylistItems = "1-3,8,10-".parse().unwrap();
        let taken: Vec<u32> = (1..=12).filter(|&n| items.contains(n)).collect();
        assert_eq!(taken, [1, 2, 3, 8, 10, 11, 12]);
    }

    #[test]
    fn items_errors_say_what_is_wrong() {
        for (text, says) in [
            ("0", "positions start at 1"),
            ("5-2", "`5-2` ends before it starts"),
            ("1,,2", "an empty part"),
            ("", "an empty part"),
            ("a-3", "`a` is not a position"),
            ("-3", "`` is not a position"),
            ("1:5", "`1:5` is not a position"),
        ] {
            let error = text.parse::<PlaylistItems>().unwrap_err();
            assert!(error.to_string().contains(says), "{text}: {error}");
            assert!(error.to_string().contains("such as `1-5,8,12-`"), "{error}");
        }
        let many = vec!["1"; 101].join(",");
        assert!(many.parse::<PlaylistItems>().unwrap_err().reason.contains("more than 100"));
    }

    fn link(url: &str, title: &str) -> MediaInfo {
        MediaInfo {
            kind: Some("url_transparent".into()),
            url: Some(url.into()),
            title: Some(title.into()),
            ..MediaInfo::default()
        }
    }

    fn video(title: &str) -> MediaInfo {
        MediaInfo {
            title: Some(title.into()),
            formats: vec![Format { format_id: "0".into(), url: Some("http://h/v.mp4".into()), ..Format::default() }],
            ..MediaInfo::default()
        }
    }

    #[test]
    fn plan_takes_links_and_videos_in_place_selected_and_capped() {
        let info = MediaInfo {
            kind: Some("playlist".into()),
            entries: vec![link("http://h/a", "A"), video("B"), MediaInfo::default(), link("http://h/d", "D")],
            ..MediaInfo::default()
        };
        let planned = plan(&info, "http://h/list", None, 10);
        let got: Vec<(u32, &str, Option<u32>)> =
            planned.entries.iter().map(|e| (e.index, e.url.as_str(), e.item)).collect();
        assert_eq!(got, [(1, "http://h/a", None), (2, "http://h/list", Some(2)), (4, "http://h/d", None)]);
        assert_eq!((planned.total, planned.over_cap), (4, 0));

        let items = "2-".parse().unwrap();
        let planned = plan(&info, "http://h/list", Some(&items), 1);
        assert_eq!(planned.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [2]);
        assert_eq!(planned.over_cap, 1);
    }

    #[test]
    fn a_child_takes_its_entry_or_says_why_not() {
        let page =
            MediaInfo { kind: Some("playlist".into()), entries: vec![video("A"), video("B")], ..MediaInfo::default() };
        assert_eq!(entry_of(page.clone(), Some(2)).unwrap().title.as_deref(), Some("B"));
        assert!(entry_of(page.clone(), Some(3)).unwrap_err().contains("has 2 entries now; entry 3 is gone"));
        assert!(entry_of(page, None).unwrap_err().contains("itself a playlist"));
        assert_eq!(entry_of(video("V"), None).unwrap().title.as_deref(), Some("V"));
    }

    #[test]
    fn null_entries_keep_positions() {
        let info: MediaInfo = serde_json::from_str(
            r#"{"_type": "playlist", "entries": [null, {"_type": "url", "url": "http://h/b", "title": "B"}]}"#,
        )
        .unwrap();
        let planned = plan(&info, "http://h/list", None, 10);
        assert_eq!(planned.entries[0].index, 2);
    }
}
