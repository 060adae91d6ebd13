//! What the user expects a downloaded file to hash to, parsed from text such as `sha256=HEX`.
//!
//! Hashing itself happens in the engine; this module only names the algorithms and validates the
//! expected digest up front, so a typo is reported before any bytes are downloaded.

use std::fmt;
use std::str::FromStr;

/// A hash algorithm haul can verify downloads with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha1,
    Md5,
}

impl ChecksumAlgorithm {
    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
            Self::Md5 => 16,
        }
    }

    /// The canonical lowercase name, as used in `sha256=HEX`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha1 => "sha1",
            Self::Md5 => "md5",
        }
    }

    /// Looks an algorithm up by name, ignoring case and the '-' or '_' people often write
    /// ("SHA-256", "sha_1").
    fn from_name(name: &str) -> Option<Self> {
        let normalised: String =
            name.chars().filter(|c| !matches!(c, '-' | '_')).map(|c| c.to_ascii_lowercase()).collect();
        [Self::Sha256, Self::Sha1, Self::Md5].into_iter().find(|a| a.name() == normalised)
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expected digest: which algorithm, and the raw digest bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumSpec {
    pub algorithm: ChecksumAlgorithm,
    pub expected: Vec<u8>,
}

/// Why a checksum given by the user could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumParseError {
    #[error("checksum must look like sha256=HEX, got {0:?}")]
    MissingSeparator(String),
    #[error("unknown checksum algorithm {0:?}; use sha256, sha1 or md5")]
    UnknownAlgorithm(String),
    #[error("{algorithm} checksum {value:?} is not hexadecimal; use only the digits 0-9 and a-f")]
    NotHex { algorithm: ChecksumAlgorithm, value: String },
    #[error(
        "{algorithm} checksum must be {expected} hex digits, got {got}; check that it was copied whole and matches the algorithm"
    )]
    WrongLength { algorithm: ChecksumAlgorithm, expected: usize, got: usize },
}

impl FromStr for ChecksumSpec {
    type Err = ChecksumParseError;

    /// Parses `ALGORITHM=HEX` (`sha256=…`, `SHA-256=…`, `sha1=…`, `md5=…`). The algorithm name and
    /// the hex digits are case-insensitive and surrounding whitespace is ignored, since values are
    /// often pasted from web pages.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, hex_digits) =
            text.split_once('=').ok_or_else(|| ChecksumParseError::MissingSeparator(text.to_string()))?;
        let (name, hex_digits) = (name.trim(), hex_digits.trim());
        if name.is_empty() {
            return Err(ChecksumParseError::MissingSeparator(text.to_string()));
        }
        let algorithm =
            ChecksumAlgorithm::from_name(name).ok_or_else(|| ChecksumParseError::UnknownAlgorithm(name.to_string()))?;
        if !hex_digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ChecksumParseError::NotHex { algorithm, value: hex_digits.to_string() });
        }
        // Checking the length before decoding gives a clearer message than hex's odd-length error.
        let expected_len = algorithm.digest_len() * 2;
        if hex_digits.len() != expected_len {
            return Err(ChecksumParseError::WrongLength { algorithm, expected: expected_len, got: hex_digits.len() });
        }
        let expected = hex::decode(hex_digits)
            .map_err(|_| ChecksumParseError::NotHex { algorithm, value: hex_digits.to_string() })?;
        Ok(Self { algorithm, expected })
    }
}

impl fmt::Display for ChecksumSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.algorithm, hex::encode(&self.expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SHA1_EMPTY: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    const MD5_EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";

    /// Parses `text`; on success the spec must display as `expected` and round-trip through it.
    fn check(text: &str, expected: Result<&str, ChecksumParseError>) {
        let got = text.parse::<ChecksumSpec>();
        match (&got, &expected) {
            (Ok(spec), Ok(display)) => {
                assert_eq!(spec.to_string(), *display, "{text:?}");
                assert_eq!(spec.expected.len(), spec.algorithm.digest_len());
                assert_eq!(display.parse::<ChecksumSpec>().as_ref(), Ok(spec));
            }
            (Err(err), Err(want)) => assert_eq!(err, want, "{text:?}"),
            _ => panic!("{text:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parsing() {
        use ChecksumAlgorithm::*;
        use ChecksumParseError::*;
        let sha256 = format!("sha256={SHA256_EMPTY}");
        let sha1 = format!("sha1={SHA1_EMPTY}");
        let md5 = format!("md5={MD5_EMPTY}");
        let cases: Vec<(String, Result<&str, ChecksumParseError>)> = vec![
            (sha256.clone(), Ok(&sha256)),
            (format!("sha-256={SHA256_EMPTY}"), Ok(&sha256)),
            (format!("SHA256={}", SHA256_EMPTY.to_uppercase()), Ok(&sha256)),
            (format!("  Sha_256 = {SHA256_EMPTY}\n"), Ok(&sha256)),
            (format!("SHA1={SHA1_EMPTY}"), Ok(&sha1)),
            (format!("sha-1={SHA1_EMPTY}"), Ok(&sha1)),
            (format!("md5={MD5_EMPTY}"), Ok(&md5)),
            (format!("MD-5={MD5_EMPTY}"), Ok(&md5)),
            ("xyz".into(), Err(MissingSeparator("xyz".into()))),
            (SHA256_EMPTY.into(), Err(MissingSeparator(SHA256_EMPTY.into()))),
            ("=abcd".into(), Err(MissingSeparator("=abcd".into()))),
            ("crc32=abcd".into(), Err(UnknownAlgorithm("crc32".into()))),
            ("sha512=abcd".into(), Err(UnknownAlgorithm("sha512".into()))),
            ("md5=zz".into(), Err(NotHex { algorithm: Md5, value: "zz".into() })),
            (format!("sha256={}", &SHA256_EMPTY[1..]), Err(WrongLength { algorithm: Sha256, expected: 64, got: 63 })),
            (format!("sha1={SHA256_EMPTY}"), Err(WrongLength { algorithm: Sha1, expected: 40, got: 64 })),
            ("sha256=".into(), Err(WrongLength { algorithm: Sha256, expected: 64, got: 0 })),
        ];
        for (text, expected) in cases {
            check(&text, expected);
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let cases = [
            ("xyz", "checksum must look like sha256=HEX, got \"xyz\""),
            ("crc=00", "unknown checksum algorithm \"crc\"; use sha256, sha1 or md5"),
            ("md5=0g", "md5 checksum \"0g\" is not hexadecimal"),
            ("md5=00", "md5 checksum must be 32 hex digits, got 2"),
        ];
        for (text, prefix) in cases {
            let message = text.parse::<ChecksumSpec>().unwrap_err().to_string();
            assert!(message.starts_with(prefix), "{message}");
        }
    }

    #[test]
    fn algorithms() {
        use ChecksumAlgorithm::*;
        for (algorithm, len, name) in [(Sha256, 32, "sha256"), (Sha1, 20, "sha1"), (Md5, 16, "md5")] {
            assert_eq!(algorithm.digest_len(), len);
            assert_eq!(algorithm.name(), name);
            let json = serde_json::to_string(&algorithm).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ChecksumAlgorithm>(&json).unwrap(), algorithm);
        }
    }
}
