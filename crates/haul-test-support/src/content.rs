//! Deterministic, seekable pseudo-random file content, shared by the origin (to serve it) and by
//! tests (to know what a correct download must contain).
//!
//! Byte `i` of a file with seed `s` is `block(s)[i % BLOCK_LEN]`. The block length is a prime so
//! that a segment written at the wrong offset (downloaders usually split at MiB boundaries) never
//! lines up with the same bytes and is caught by a checksum.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Length of the repeating content block (a prime, see the module docs).
pub const BLOCK_LEN: usize = 1_000_003;

/// SplitMix64 increment: consecutive block words are `mix(seed + (j + 1) * GAMMA)`, which lets
/// any byte be computed directly (see [`content_byte`]) without generating the whole block.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 output function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn block_word(seed: u64, j: u64) -> u64 {
    mix(seed.wrapping_add(j.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// Byte at `offset` of the content with the given seed. O(1), no allocation.
pub fn content_byte(seed: u64, offset: u64) -> u8 {
    let i = offset % BLOCK_LEN as u64;
    block_word(seed, i / 8).to_le_bytes()[(i % 8) as usize]
}

/// The seed of one file: a stable hash of the origin seed, the file's size and name, and the
/// origin's current version, so that bumping the version changes both content and ETag.
///
/// A SHA-256 is used (rather than `std`'s hasher) because the value must stay the same across
/// Rust releases: benchmark scripts compare against checksums printed by another process.
pub fn file_seed(origin_seed: u64, size: u64, name: &str, version: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"haul-origin/v1\0");
    h.update(origin_seed.to_le_bytes());
    h.update(size.to_le_bytes());
    h.update(version.to_le_bytes());
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The content block of one seed, stored twice in a row so that any window of up to
/// [`BLOCK_LEN`] bytes starting anywhere in the block is one contiguous, zero-copy slice.
#[derive(Clone, Debug)]
pub struct ContentBlock {
    seed: u64,
    doubled: Bytes,
}

impl ContentBlock {
    /// Generates the block (about 2 MB; takes a millisecond or two).
    pub fn new(seed: u64) -> Self {
        let mut v = vec![0u8; 2 * BLOCK_LEN];
        let (first, second) = v.split_at_mut(BLOCK_LEN);
        for (j, chunk) in first.chunks_mut(8).enumerate() {
            let word = block_word(seed, j as u64).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        second.copy_from_slice(first);
        Self { seed, doubled: Bytes::from(v) }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `len` bytes of the file starting at `offset`, without copying.
    ///
    /// # Panics
    /// If `len > BLOCK_LEN`.
    pub fn slice(&self, offset: u64, len: usize) -> Bytes {
        assert!(len <= BLOCK_LEN, "a content slice is at most one block long");
        let start = (offset % BLOCK_LEN as u64) as usize;
        self.doubled.slice(start..start + len)
    }

    /// Feeds the file's bytes `[offset, offset + len)` to `sink` in block-sized pieces.
    fn for_each_piece(&self, mut offset: u64, mut len: u64, mut sink: impl FnMut(&[u8])) {
        while len > 0 {
            let n = len.min(BLOCK_LEN as u64) as usize;
            let start = (offset % BLOCK_LEN as u64) as usize;
            sink(&self.doubled[start..start + n]);
            offset += n as u64;
            len -= n as u64;
        }
    }

    /// A copy of the file's bytes `[offset, offset + len)`.
    pub fn to_vec(&self, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(len).expect("range fits in memory"));
        self.for_each_piece(offset, len, |piece| out.extend_from_slice(piece));
        out
    }

    /// Lowercase hex SHA-256 of the first `size` bytes.
    pub fn sha256(&self, size: u64) -> String {
        let mut h = Sha256::new();
        self.for_each_piece(0, size, |piece| h.update(piece));
        hex::encode(h.finalize())
    }
}

/// Lowercase hex SHA-256 of a file of `size` bytes with the given (file) seed.
pub fn expected_sha256(seed: u64, size: u64) -> String {
    ContentBlock::new(seed).sha256(size)
}

/// The whole content of a file of `size` bytes with the given (file) seed. Meant for small files.
pub fn expected_bytes(seed: u64, size: u64) -> Vec<u8> {
    ContentBlock::new(seed).to_vec(0, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_matches_content_byte() {
        let block = ContentBlock::new(42);
        let len = BLOCK_LEN as u64;
        for offset in [0, 1, 7, 8, 999_999, len - 1, len, len + 5, 3 * len + 17, 1 << 20] {
            assert_eq!(block.slice(offset, 1)[0], content_byte(42, offset), "offset {offset}");
        }
        let window = block.slice(len - 3, 10);
        let expect: Vec<u8> = (len - 3..len + 7).map(|o| content_byte(42, o)).collect();
        assert_eq!(&window[..], &expect[..]);
    }

    #[test]
    fn sha_matches_bytes() {
        let size = 2 * BLOCK_LEN as u64 + 12_345;
        let bytes = expected_bytes(7, size);
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), expected_sha256(7, size));
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(file_seed(0, 10, "a", 0), file_seed(0, 10, "a", 1));
        assert_ne!(file_seed(0, 10, "a", 0), file_seed(0, 10, "b", 0));
        assert_ne!(file_seed(0, 10, "a", 0), file_seed(1, 10, "a", 0));
        assert_ne!(expected_bytes(1, 64), expected_bytes(2, 64));
    }
}
