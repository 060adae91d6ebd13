//! One download from start to finish: probe, choose the destination, fetch (resuming), verify, put in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use haul_core::checksum::ChecksumSpec;
use haul_core::filename;
use haul_core::ranges::RangeSet;
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::confine;
use crate::control::{self, ControlRecord};
use crate::error::EngineError;
use crate::http::HttpClient;
use crate::limiter::RateLimiter;
use crate::part_file::PartFile;
use crate::probe::{self, Probe};
use crate::progress::{Phase, Progress};
use crate::single::{self, SingleEnd, SingleOptions};
use crate::swarm::{self, SwarmEnd, SwarmOptions};

/// Where the file goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// Into this directory, under the name the server offers (made safe, never replacing a file).
    Dir(PathBuf),
    /// At exactly this path, chosen by the user.
    File(PathBuf),
}

/// Everything one download needs to know; built by the caller from flags or an API request.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    pub url: Url,
    /// Other URLs serving the same file; they share the segments.
    pub mirrors: Vec<Url>,
    pub target: Target,
    /// Replace an existing file instead of choosing `name (1).ext`.
    pub overwrite: bool,
    /// A fixed number of connections, or `None` to let the engine find the best count.
    pub connections: Option<usize>,
    /// The most connections the adaptive default may open.
    pub max_connections: usize,
    /// The smallest piece of a file given its own connection.
    pub min_segment: u64,
    /// Bytes per second for the whole download, shared by its connections.
    pub rate_limit: Option<u64>,
    pub checksum: Option<ChecksumSpec>,
    /// Extra request headers (cookies, authorization, referer).
    pub headers: HeaderMap,
    /// Consecutive failed attempts without progress before a connection gives up.
    pub max_attempts: u32,
    /// The directory no file of this download may leave (the server's downloads directory): a symlink that
    /// leads out of it is an error, never followed.
    pub root: Option<PathBuf>,
    /// Name the file `{stem}__{tag}.{ext}` rather than as offered, when the name is haul's to choose.
    pub name_tag: Option<String>,
}

impl DownloadOptions {
    pub fn new(url: Url, target: Target) -> Self {
        Self {
            url,
            mirrors: Vec::new(),
            target,
            overwrite: false,
            connections: None,
            max_connections: 64,
            min_segment: 1 << 20,
            rate_limit: None,
            checksum: None,
            headers: HeaderMap::new(),
            max_attempts: 8,
            root: None,
            name_tag: None,
        }
    }
}

/// A finished download.
#[derive(Clone, Debug)]
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    /// Bytes that were already on disk from an earlier run and not fetched again.
    pub resumed_bytes: u64,
}

/// Paths that belong to one download.
struct Paths {
    final_path: PathBuf,
    part: PathBuf,
    control: PathBuf,
}

impl Paths {
    fn for_final(final_path: PathBuf) -> Self {
        let mut part = final_path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let control = control::control_path(&part);
        Self { final_path, part, control }
    }
}

/// The files a download leaves beside `final_path` while incomplete: `NAME.part` and its resume record.
pub fn partial_files(final_path: &Path) -> [PathBuf; 2] {
    let paths = Paths::for_final(final_path.to_owned());
    [paths.part, paths.control]
}

/// Check that a URL is something the engine can fetch, with an error a person can act on.
pub fn check_url(url: &Url) -> Result<(), EngineError> {
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        "http" | "https" => Err(EngineError::InvalidRequest(format!("url has no host: {url}"))),
        scheme => Err(EngineError::InvalidRequest(format!("url must be http or https, not {scheme}: {url}"))),
    }
}

/// Run one download to completion, resuming whatever an earlier run left for the same URL and destination.
///
/// Cancelling `cancel` pauses: completed ranges are saved, `Err(EngineError::Cancelled)` is returned, and
/// the same call later continues where this one stopped.
pub async fn download(
    client: HttpClient,
    options: DownloadOptions,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Downloaded, EngineError> {
    check_url(&options.url)?;
    for mirror in &options.mirrors {
        check_url(mirror)?;
    }
    progress.set_phase(Phase::Probing);
    let mut probe = tokio::select! {
        probe = probe::probe(&client, &options.url, &options.headers, options.max_attempts) => probe?,
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    tracing::debug!(url = %options.url, final_url = %probe.final_url, size = ?probe.size, ranges = probe.ranges, "probed");

    // Up to 10,000 names may be looked at on a busy directory: off the runtime's worker threads.
    let (paths, existing) = {
        let (target, url, overwrite) = (options.target.clone(), options.url.to_string(), options.overwrite);
        let offered = offered_name(&probe, &options.url);
        let name = match &options.name_tag {
            Some(tag) => filename::tagged(&offered, tag),
            None => offered,
        };
        tokio::task::spawn_blocking(move || choose_paths(&target, &url, overwrite, &name))
            .await
            .map_err(|error| EngineError::InvalidRequest(format!("choosing a file name failed: {error}")))??
    };
    if let (Some(root), Some(dir)) = (&options.root, paths.final_path.parent()) {
        confine::check_dir(root, dir)?;
    }
    progress.set_destination(paths.final_path.clone());
    let part = Arc::new(PartFile::open(&paths.part, options.root.as_deref())?);

    let mut record = match existing {
        Some(mut record) if record.same_remote(probe.size, &probe.validators) => {
            // Never trust a record beyond what the part file holds (it may have been truncated by hand).
            record.done.clamp(part.len()?);
            record
        }
        Some(_) => {
            tracing::info!(url = %options.url, "the remote file changed since the last run; starting over");
            progress.note("the remote file changed since the last run; starting over".into());
            part.set_len(0)?;
            ControlRecord::new(options.url.as_str(), probe.size, &probe.validators)
        }
        None => ControlRecord::new(options.url.as_str(), probe.size, &probe.validators),
    };
    let resumed_bytes = record.done.covered();
    let limiter = options.rate_limit.map(|rate| Arc::new(RateLimiter::new(rate)));

    // A changed remote restarts from a fresh probe; twice more at most, so a host that keeps changing fails.
    let mut restarts = 0;
    let size = loop {
        progress.set_total(probe.size);
        progress.set_done(record.done.covered());
        progress.set_phase(Phase::Downloading);
        let persist = |done: &RangeSet| {
            let mut snapshot = record.clone();
            snapshot.done = done.clone();
            control::save(&paths.control, &snapshot)
        };
        let end = match probe.size {
            Some(0) => {
                part.set_len(0)?;
                Ended::Complete(0)
            }
            Some(size) if probe.ranges => {
                if let Err(error) = part.allocate(size) {
                    if record.done.is_empty() {
                        let _ = std::fs::remove_file(&paths.part);
                    }
                    return Err(error);
                }
                let swarm_options = SwarmOptions {
                    urls: std::iter::once(probe.final_url.clone()).chain(options.mirrors.iter().cloned()).collect(),
                    headers: options.headers.clone(),
                    size,
                    validators: probe.validators.clone(),
                    connections: options.connections,
                    max_connections: options.max_connections,
                    min_segment: options.min_segment,
                    max_attempts: options.max_attempts,
                    limiter: limiter.clone(),
                };
                match swarm::run(
                    client.clone(),
                    swarm_options,
                    part.clone(),
                    record.done.clone(),
                    progress.clone(),
                    cancel.clone(),
                    persist,
                )
                .await?
                {
                    SwarmEnd::Complete => Ended::Complete(size),
                    SwarmEnd::Cancelled => Ended::Cancelled,
                    SwarmEnd::RemoteChanged(why) => Ended::Changed(why),
                    SwarmEnd::RangeIgnored => {
                        tracing::info!(url = %options.url, "the host ignores Range; continuing with one connection");
                        probe.ranges = false;
                        continue;
                    }
                }
            }
            _ => {
                let single_options = SingleOptions {
                    url: probe.final_url.clone(),
                    headers: options.headers.clone(),
                    size: probe.size,
                    ranges: probe.ranges,
                    validators: probe.validators.clone(),
                    max_attempts: options.max_attempts,
                    limiter: limiter.clone(),
                    first_response: probe.body.take(),
                };
                match single::run(&client, single_options, &part, &record.done, &progress, &cancel, persist).await? {
                    SingleEnd::Complete(size) => Ended::Complete(size),
                    SingleEnd::Cancelled => Ended::Cancelled,
                }
            }
        };
        match end {
            Ended::Complete(size) => break size,
            Ended::Cancelled => return Err(EngineError::Cancelled),
            Ended::Changed(why) => {
                restarts += 1;
                if restarts > 2 {
                    return Err(EngineError::Protocol {
                        url: options.url.to_string(),
                        message: format!("{why}; it kept changing, giving up"),
                    });
                }
                tracing::warn!(url = %options.url, %why, "starting over");
                progress.note(format!("{why}; starting over"));
                // HEAD may be what lied: ask with a ranged GET this time.
                probe = probe::probe_with_get(&client, &options.url, &options.headers, options.max_attempts).await?;
                record = ControlRecord::new(options.url.as_str(), probe.size, &probe.validators);
                part.set_len(0)?;
                control::save(&paths.control, &record)?;
            }
        }
    };

    progress.set_total(Some(size));
    progress.set_done(size);
    if let Some(spec) = &options.checksum {
        progress.set_phase(Phase::Verifying);
        let path = paths.part.clone();
        let spec = spec.clone();
        let verdict = tokio::task::spawn_blocking(move || crate::verify::verify(&path, &spec))
            .await
            .expect("checksum task panicked");
        if let Err(error) = verdict {
            // The bytes are wrong; keeping them would only make the next run "resume" into the same failure.
            let _ = std::fs::remove_file(&paths.part);
            control::remove(&paths.control);
            return Err(error);
        }
    }
    put_in_place(&paths.part, &paths.final_path, options.overwrite)?;
    control::remove(&paths.control);
    progress.set_phase(Phase::Done);
    Ok(Downloaded { path: paths.final_path, size, resumed_bytes })
}

enum Ended {
    Complete(u64),
    Cancelled,
    Changed(String),
}

/// Pick the final, part and record paths, and the record of an earlier run of the same URL if there is one.
/// `name` is what the server offers, already made safe; used when the target is a directory.
fn choose_paths(
    target: &Target,
    url: &str,
    overwrite: bool,
    name: &str,
) -> Result<(Paths, Option<ControlRecord>), EngineError> {
    let matching = |paths: &Paths| control::load(&paths.control).filter(|record| record.url == url);
    match target {
        Target::File(path) => {
            let paths = Paths::for_final(path.clone());
            if exists(&paths.final_path) && !overwrite {
                return Err(EngineError::AlreadyExists(paths.final_path));
            }
            let existing = matching(&paths);
            Ok((paths, existing))
        }
        Target::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
            for n in 0..10_000 {
                let paths = Paths::for_final(dir.join(filename::numbered(name, n)));
                if let Some(record) = matching(&paths) {
                    return Ok((paths, Some(record)));
                }
                let taken = exists(&paths.final_path) && !overwrite;
                if !taken && !exists(&paths.part) {
                    return Ok((paths, None));
                }
            }
            Err(EngineError::InvalidRequest(format!("no free name for {name} in {}", dir.display())))
        }
    }
}

/// The name the server offers, made safe: Content-Disposition, else the URL, else where redirects led.
fn offered_name(probe: &Probe, url: &Url) -> String {
    let from_header = probe.content_disposition.as_deref().and_then(filename::parse_content_disposition);
    from_header
        .and_then(|name| filename::sanitize(&name))
        .or_else(|| filename::name_from_url(url).and_then(|name| filename::sanitize(&name)))
        .or_else(|| filename::name_from_url(&probe.final_url).and_then(|name| filename::sanitize(&name)))
        .unwrap_or_else(|| filename::DEFAULT_FILENAME.to_owned())
}

fn exists(path: &Path) -> bool {
    // symlink_metadata: a dangling or hostile symlink counts as taken, never as a place to write through.
    path.symlink_metadata().is_ok()
}

/// Rename the finished part file into place: atomically, and without replacing a file unless allowed.
fn put_in_place(part: &Path, final_path: &Path, overwrite: bool) -> Result<(), EngineError> {
    if overwrite {
        return std::fs::rename(part, final_path).map_err(|e| EngineError::io(final_path, e));
    }
    // A hard link fails if the name is taken, which a plain rename would silently replace.
    match std::fs::hard_link(part, final_path) {
        Ok(()) => std::fs::remove_file(part).map_err(|e| EngineError::io(part, e)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(EngineError::AlreadyExists(final_path.to_owned()))
        }
        // Filesystems without hard links: fall back to rename after a last check.
        Err(_) if !exists(final_path) => std::fs::rename(part, final_path).map_err(|e| EngineError::io(final_path, e)),
        Err(error) => Err(EngineError::io(final_path, error)),
    }
}
