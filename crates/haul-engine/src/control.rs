//! The resume record kept beside a `.part` file: which byte ranges are on disk and which remote file they came from.
//!
//! **Invariant**: a range is recorded only after its bytes were handed to the kernel with a positional write,
//! and the record is replaced atomically (written beside, then renamed). A process killed at any instant
//! (SIGKILL included) therefore finds a record that never claims bytes the `.part` file lacks: the page cache
//! outlives the process. The data is not fsynced first, so after a power loss the last seconds may need a
//! re-fetch the record does not know about (see ARCHITECTURE.md, Invariants).

use std::io::Write;
use std::path::{Path, PathBuf};

use haul_core::ranges::RangeSet;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::probe::Validators;

const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ControlRecord {
    pub format: u32,
    /// The URL the user asked for (not the redirect target), so the same command finds its record again.
    pub url: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub done: RangeSet,
}

impl ControlRecord {
    pub fn new(url: &str, size: Option<u64>, validators: &Validators) -> Self {
        Self {
            format: FORMAT_VERSION,
            url: url.to_owned(),
            size,
            etag: validators.etag.clone(),
            last_modified: validators.last_modified.clone(),
            done: RangeSet::new(),
        }
    }

    /// Whether this record describes the same remote file as a fresh probe.
    ///
    /// A validator only counts when both sides have it; a size always counts. When the server offers no
    /// validator at all, the size is the only evidence and a same-size change goes unnoticed, as in every
    /// downloader.
    pub fn same_remote(&self, size: Option<u64>, validators: &Validators) -> bool {
        let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.size == size && same(&self.etag, &validators.etag) && same(&self.last_modified, &validators.last_modified)
    }
}

/// Where the record for `part_path` lives.
pub fn control_path(part_path: &Path) -> PathBuf {
    let mut name = part_path.as_os_str().to_owned();
    name.push(".haul");
    PathBuf::from(name)
}

/// Read a record; a missing file is `None`, and so is a damaged one (logged), which costs a restart, not data.
pub fn load(path: &Path) -> Option<ControlRecord> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read resume record; starting over");
            return None;
        }
    };
    match serde_json::from_slice::<ControlRecord>(&text) {
        Ok(record) if record.format == FORMAT_VERSION => Some(record),
        Ok(record) => {
            tracing::warn!(path = %path.display(), format = record.format, "unknown resume record format; starting over");
            None
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "damaged resume record; starting over");
            None
        }
    }
}

/// Replace the record atomically (write a sibling, then rename over), so a crash leaves the old or the new one.
pub fn save(path: &Path, record: &ControlRecord) -> Result<(), EngineError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let body = serde_json::to_vec(record).expect("a resume record always serialises");
    // Never through a symlink planted in the record's place.
    let mut file = crate::confine::no_follow()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| EngineError::io(&tmp, e))?;
    file.write_all(&body).map_err(|e| EngineError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))
}

pub fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove resume record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// A damaged resume record is read as nothing or as a record whose ranges are in order; never a panic.
        #[test]
        fn any_bytes_as_a_resume_record(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                                        pairs in proptest::collection::vec(proptest::prelude::any::<(u64, u64)>(), 0..12)) {
            let json_ranges = serde_json::to_string(&pairs).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.part.haul");
            let shaped = format!(
                r#"{{"format":{FORMAT_VERSION},"url":"http://h/f","size":100,"etag":null,"last_modified":null,"done":{json_ranges}}}"#
            );
            for body in [bytes.clone(), shaped.clone().into_bytes()] {
                std::fs::write(&path, &body).unwrap();
                if let Some(record) = load(&path) {
                    for pair in record.done.ranges().windows(2) {
                        proptest::prop_assert!(pair[0].1 < pair[1].0);
                    }
                    proptest::prop_assert!(record.done.ranges().iter().all(|(start, end)| start < end));
                }
            }
            proptest::prop_assert!(load(&path).is_some(), "a well-formed record loads: {shaped}");
        }
    }

    fn validators(etag: Option<&str>, last_modified: Option<&str>) -> Validators {
        Validators { etag: etag.map(str::to_owned), last_modified: last_modified.map(str::to_owned) }
    }

    #[test]
    fn same_remote_compares_what_both_sides_know() {
        let record = ControlRecord::new("http://h/f", Some(10), &validators(Some("\"a\""), Some("d1")));
        let cases = [
            (Some(10), validators(Some("\"a\""), Some("d1")), true),
            (Some(10), validators(None, None), true),
            (Some(11), validators(Some("\"a\""), Some("d1")), false),
            (Some(10), validators(Some("\"b\""), Some("d1")), false),
            (Some(10), validators(None, Some("d2")), false),
            (None, validators(Some("\"a\""), None), false),
        ];
        for (size, v, expected) in cases {
            assert_eq!(record.same_remote(size, &v), expected, "size {size:?} {v:?}");
        }
    }

    #[test]
    fn save_then_load_round_trips_and_damage_means_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.part.haul");
        let mut record = ControlRecord::new("http://h/f", Some(100), &validators(Some("\"e\""), None));
        record.done.insert(0, 40);
        record.done.insert(60, 80);
        save(&path, &record).unwrap();
        assert_eq!(load(&path), Some(record));
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(&path), None);
        remove(&path);
        assert_eq!(load(&path), None);
    }
}
