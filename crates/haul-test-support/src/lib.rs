//! Dev-only test origin: an HTTP (or HTTPS) server with deterministic content of any size and fault knobs
//! (rate limits, latency, connection caps, slow and cut responses, missing range support,
//! lying lengths), used in-process by haul's integration tests and as the `haul-origin` binary
//! by benchmarks; and a real PostgreSQL server per test (`postgres`).

mod body;
mod content;
pub mod media;
mod options;
mod pacing;
pub mod postgres;
mod range;
mod server;
mod stats;
mod tls;

pub use content::{BLOCK_LEN, ContentBlock, content_byte, expected_bytes, expected_sha256, file_seed};
pub use media::{MediaOptions, MediaSite, PathStats, codec_types, ffprobe, missing_tools, tools_available};
pub use options::{OriginOptions, SLOW_BASE_RATE, parse_byte_size};
pub use postgres::Postgres;
pub use server::{ClientStats, CookieSeen, Origin, OriginHandle};
pub use stats::OriginStats;
pub use tls::{LOOPBACK_NAMES, TestCa, TlsMode, WRONG_HOST_NAME};
