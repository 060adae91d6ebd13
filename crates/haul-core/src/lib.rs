//! haul's domain model: byte ranges, segment plans, filename rules, checksums and units, with no I/O.
//!
//! Everything here is a pure function or a plain data type so that the engine and the CLI can share
//! the rules without sharing a runtime, and so that the tricky edge cases can be tested exhaustively
//! without a network or a filesystem.

pub mod account;
pub mod checksum;
pub mod clock;
pub mod credentials;
pub mod filename;
pub mod job;
pub mod labels;
pub mod media;
pub mod media_choice;
pub mod names;
pub mod net;
pub mod plan;
pub mod playlist;
pub mod ranges;
pub mod redact;
pub mod rules;
pub mod schedule;
pub mod units;
