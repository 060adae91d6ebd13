//! The `.part` file a download writes into: positional writes from many connections, then an atomic rename.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::confine;
use crate::error::EngineError;

/// An open `NAME.part` file.
///
/// Writes are positional (`pwrite`), so connections never share a cursor and need no lock around the file.
/// They are issued straight from the async task: a write into the page cache takes microseconds, which is
/// cheaper than a hop to the blocking pool per chunk; a disk that blocks for long shows up as slower progress.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
}

impl PartFile {
    /// Open (creating if needed) without truncating, so completed ranges survive a restart. A symlink in its
    /// place is an error, never followed; with a `root`, the file must really lie under it.
    pub fn open(path: &Path, root: Option<&Path>) -> Result<Self, EngineError> {
        let file = confine::no_follow()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| EngineError::io(path, e))?;
        if let Some(root) = root {
            confine::check_open(root, &file, path)?;
        }
        Ok(Self { file, path: path.to_owned() })
    }

    /// Gives the file a modification time through the open handle (no second open of the path).
    pub fn set_modified(&self, time: std::time::SystemTime) -> Result<(), EngineError> {
        self.file.set_modified(time).map_err(|e| EngineError::io(&self.path, e))
    }

    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), EngineError> {
        self.file.write_all_at(bytes, offset).map_err(|e| EngineError::io(&self.path, e))
    }

    /// Reserve the whole file on disk before fetching, so a disk too small fails now, with nothing fetched,
    /// rather than when it fills. Filesystems without `fallocate` just get the length set (a sparse file).
    pub fn allocate(&self, len: u64) -> Result<(), EngineError> {
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => self.set_len(len),
            Err(errno) => Err(EngineError::io(&self.path, std::io::Error::from(errno))),
        }
    }

    /// Set the length: the final size before a ranged download, or 0 to start over.
    pub fn set_len(&self, len: u64) -> Result<(), EngineError> {
        self.file.set_len(len).map_err(|e| EngineError::io(&self.path, e))
    }

    /// Takes the advisory lock that marks this file as being downloaded (`flock`, released when the file is
    /// closed, so also when the process dies). `Ok(false)` when another process holds it. A filesystem without
    /// locks (some network mounts) is not a reason to refuse the download: there it is not locked.
    pub fn try_lock(&self) -> Result<bool, EngineError> {
        match self.file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(error)) => {
                tracing::debug!(path = %self.path.display(), %error, "cannot lock the partial file; going on without");
                Ok(true)
            }
        }
    }

    pub fn len(&self) -> Result<u64, EngineError> {
        Ok(self.file.metadata().map_err(|e| EngineError::io(&self.path, e))?.len())
    }
}
