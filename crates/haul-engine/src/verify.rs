//! Checking a finished file against the checksum the user gave, before it takes its final name.

use std::io::Read;
use std::path::Path;

use haul_core::checksum::{ChecksumAlgorithm, ChecksumSpec};
use md5::Digest as _;

use crate::error::EngineError;

/// Hash the file with the spec's algorithm, streaming (memory stays flat for any size).
pub fn digest_file(path: &Path, algorithm: ChecksumAlgorithm) -> Result<Vec<u8>, EngineError> {
    let mut file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut hasher: Box<dyn digest::DynDigest> = match algorithm {
        ChecksumAlgorithm::Sha256 => Box::new(sha2::Sha256::new()),
        ChecksumAlgorithm::Sha1 => Box::new(sha1::Sha1::new()),
        ChecksumAlgorithm::Md5 => Box::new(md5::Md5::new()),
    };
    loop {
        let n = file.read(&mut buffer).map_err(|e| EngineError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

/// `Ok` when the file matches; a [`EngineError::ChecksumMismatch`] naming both digests otherwise.
pub fn verify(path: &Path, spec: &ChecksumSpec) -> Result<(), EngineError> {
    let actual = digest_file(path, spec.algorithm)?;
    if actual == spec.expected {
        return Ok(());
    }
    Err(EngineError::ChecksumMismatch {
        path: path.to_owned(),
        algorithm: spec.algorithm.name(),
        expected: hex::encode(&spec.expected),
        actual: hex::encode(actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let cases = [
            ("sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", true),
            ("sha1=a9993e364706816aba3e25717850c26c9cd0d89d", true),
            ("md5=900150983cd24fb0d6963f7d28e17f72", true),
            ("md5=900150983cd24fb0d6963f7d28e17f73", false),
        ];
        for (spec, ok) in cases {
            let spec: ChecksumSpec = spec.parse().unwrap();
            assert_eq!(verify(&path, &spec).is_ok(), ok, "{spec}");
        }
    }
}
