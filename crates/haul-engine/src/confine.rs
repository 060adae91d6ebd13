//! Keeping every file haul writes inside its directory, even when someone who can write to that directory (a
//! shared volume) plants symlinks in it.
//!
//! Three rules, applied where files are made: the last component is never followed (`O_NOFOLLOW`, so a
//! `NAME.part` or resume record that is a symlink is an error, never a write elsewhere); the directory a file
//! goes into is resolved and must lie under the root; and after opening, the open file itself is asked where it
//! is (`/proc/self/fd`), which also catches a directory swapped for a symlink between the check and the open.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// Options that refuse to follow a symlink in the last component.
pub(crate) fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    options
}

/// Checks that `dir` (which exists) resolves to a place under `root`.
pub(crate) fn check_dir(root: &Path, dir: &Path) -> Result<(), EngineError> {
    let root = resolve(root)?;
    let resolved = resolve(dir)?;
    if resolved.starts_with(&root) {
        return Ok(());
    }
    Err(escaped(dir))
}

/// Checks that the open `file` (opened as `path`) really lies under `root`.
pub(crate) fn check_open(root: &Path, file: &File, path: &Path) -> Result<(), EngineError> {
    let Some(actual) = where_open(file) else {
        // No /proc (another system, or a sandbox without it): the directory check before the open stands.
        return Ok(());
    };
    let root = resolve(root)?;
    if actual.starts_with(&root) {
        return Ok(());
    }
    Err(escaped(path))
}

/// The path with every symlink resolved; the empty path (a bare file name's parent) is the current directory.
fn resolve(path: &Path) -> Result<PathBuf, EngineError> {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    path.canonicalize().map_err(|error| EngineError::io(path, error))
}

fn where_open(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd as _;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

fn escaped(path: &Path) -> EngineError {
    EngineError::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a symlink leads outside the downloads directory; haul does not write through it",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_of_the_root_are_caught_before_and_after_opening() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("evil")).unwrap();
        std::fs::create_dir(root.path().join("fine")).unwrap();
        assert!(check_dir(root.path(), &root.path().join("fine")).is_ok());
        assert!(check_dir(root.path(), &root.path().join("evil")).is_err());

        // The last component is never followed.
        std::os::unix::fs::symlink(outside.path().join("target"), root.path().join("x.part")).unwrap();
        let refused = no_follow().write(true).create(true).open(root.path().join("x.part"));
        assert!(refused.is_err(), "opened through a symlink");
        assert!(!outside.path().join("target").exists());

        // A file opened through a symlinked directory is found out by where it really is.
        let through = no_follow().write(true).create(true).open(root.path().join("evil/y")).unwrap();
        assert!(check_open(root.path(), &through, &root.path().join("evil/y")).is_err());
        let inside = no_follow().write(true).create(true).open(root.path().join("fine/y")).unwrap();
        assert!(check_open(root.path(), &inside, &root.path().join("fine/y")).is_ok());
    }
}
