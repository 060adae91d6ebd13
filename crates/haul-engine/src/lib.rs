//! haul's download engine: probe a URL, fetch it over many connections with work stealing and adaptive
//! connection counts, resume after any interruption, verify, and put the file in place atomically.
//!
//! The entry point is [`download`]; progress is read from a shared [`Progress`].

mod confine;
mod control;
mod destination;
mod download;
mod error;
mod hosts;
mod http;
mod limiter;
mod media;
mod part_file;
mod probe;
mod progress;
pub mod service;
mod single;
mod swarm;
pub mod task;
mod to_writer;
mod verify;

pub use destination::{DestinationPolicy, Refused};
pub use download::{DownloadOptions, Downloaded, Target, check_url, download, partial_files};
pub use error::EngineError;
pub use http::{ClientOptions, HttpClient, header_map, parse_header, parse_header_line};
pub use limiter::{Limits, RateLimiter};
pub use media::{
    GET_PLAYLIST_CAP, GotMedia, MediaRequest, MediaTools, NotExecutable, check_selector, convert_audio,
    extract as media_formats, get_media,
};
pub use probe::{FIRST_REQUEST, Validators};
pub use progress::{MediaFacts, Phase, Progress, ProgressSnapshot};
pub use reqwest::header;
pub use to_writer::{WriterOptions, download_to_writer};
pub use tokio_util::sync::CancellationToken;
