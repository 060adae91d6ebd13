//! One download from start to finish: probe, choose the destination, fetch (resuming), verify, put in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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
use crate::limiter::Limits;
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
    /// Leave a file already at the destination when it is this download finished: the remote's size, not older
    /// than its Last-Modified, and matching `checksum` if one is given. Nothing is fetched and the result says
    /// `already_complete`. `haul get` asks for this (as wget's `--no-clobber` does); the server does not, so a
    /// job never ends without having fetched its file.
    pub skip_if_complete: bool,
    /// As wget's `-N`: with `skip_if_complete`, a file at the destination is left when it is the remote's size
    /// and not older than its Last-Modified, and replaced (as with `overwrite`) when not; a remote without
    /// Last-Modified is fetched again.
    pub timestamping: bool,
    /// A fixed number of connections, or `None` to let the engine find the best count.
    pub connections: Option<usize>,
    /// The most connections the adaptive default may open.
    pub max_connections: usize,
    /// The smallest piece of a file given its own connection.
    pub min_segment: u64,
    /// Bytes per second for the whole download, shared by its connections.
    pub rate_limit: Option<u64>,
    /// Limits shared with other downloads (a server's, a host's), or this download's own where it can change
    /// while the download runs; taken from together with `rate_limit`.
    pub limits: Limits,
    pub checksum: Option<ChecksumSpec>,
    /// Extra request headers (cookies, authorization, referer).
    pub headers: HeaderMap,
    /// Consecutive failed attempts without progress before a connection gives up.
    pub max_attempts: u32,
    /// A fixed wait between attempts (`--retry-wait`, as aria2c and wget take it); growing backoff when `None`.
    /// A server's Retry-After wins either way.
    pub retry_wait: Option<std::time::Duration>,
    /// The directory no file of this download may leave (the server's downloads directory): a symlink that
    /// leads out of it is an error, never followed.
    pub root: Option<PathBuf>,
    /// Name the file `{stem}__{tag}.{ext}` rather than as offered, when the name is haul's to choose.
    pub name_tag: Option<String>,
    /// What the resume record knows this download by, when not its URL: a media format's signed URL changes
    /// at every reading of its page, and its partial file is still the same download's.
    pub record_key: Option<String>,
}

impl DownloadOptions {
    /// What the resume record knows this download by: [`record_key`](Self::record_key), else the URL.
    fn record_name(&self) -> String {
        self.record_key.clone().unwrap_or_else(|| self.url.to_string())
    }
}

impl DownloadOptions {
    pub fn new(url: Url, target: Target) -> Self {
        Self {
            url,
            mirrors: Vec::new(),
            target,
            overwrite: false,
            skip_if_complete: false,
            timestamping: false,
            connections: None,
            max_connections: 64,
            min_segment: 1 << 20,
            rate_limit: None,
            limits: Limits::default(),
            checksum: None,
            headers: HeaderMap::new(),
            max_attempts: 8,
            retry_wait: None,
            root: None,
            name_tag: None,
            record_key: None,
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
    /// The whole file was already at `path` and nothing was fetched (only with `skip_if_complete`).
    pub already_complete: bool,
    /// What identified the version fetched (empty when nothing was fetched, or the host sent none): with the
    /// size, what the download archive knows a plain file by.
    pub validators: crate::probe::Validators,
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

/// HEAD when the file may be here already (a complete copy is then left without a byte fetched, `-N` compares
/// dates, a `.part` is resumed), else a GET that fetches a small file in the same round trip.
fn probe_with(target: &Target, url: &Url, timestamping: bool) -> probe::ProbeWith {
    let here = |path: &Path| {
        let part = Paths::for_final(path.to_owned()).part;
        exists(path) || exists(&part)
    };
    let may_be_here = timestamping
        || match target {
            Target::File(path) => here(path),
            Target::Dir(dir) => filename::name_from_url(url)
                .and_then(|name| filename::sanitize(&name))
                .is_none_or(|name| here(&dir.join(name))),
        };
    if may_be_here { probe::ProbeWith::Head } else { probe::ProbeWith::Get }
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
    // Off the runtime's threads: a directory that cannot be made fails before anything is asked of the host, and
    // whether the file may be here already decides how the host is asked.
    let with = {
        let (target, url, timestamping) = (options.target.clone(), options.url.clone(), options.timestamping);
        tokio::task::spawn_blocking(move || {
            let dir = match &target {
                Target::Dir(dir) => Some(dir.as_path()),
                Target::File(path) => path.parent(),
            };
            dir.map_or(Ok(()), create_dirs)?;
            Ok::<_, EngineError>(probe_with(&target, &url, timestamping))
        })
        .await
        .map_err(|error| EngineError::InvalidRequest(format!("making the directory failed: {error}")))??
    };
    progress.set_phase(Phase::Probing);
    let mut probe = tokio::select! {
        probe = probe::probe(
            &client, &options.url, &options.headers, options.max_attempts, options.retry_wait, with,
        ) => probe?,
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    tracing::debug!(url = %options.url, final_url = %probe.final_url, size = ?probe.size, ranges = probe.ranges, "probed");
    progress.set_resumable(probe.ranges);

    // Up to 10,000 names may be looked at on a busy directory (and a finished copy hashed for a checksum): off
    // the runtime's worker threads.
    let chosen = {
        let (target, url) = (options.target.clone(), options.record_name());
        let overwrite = options.overwrite || options.timestamping;
        let last_modified = probe.validators.last_modified.as_deref().and_then(|d| httpdate::parse_http_date(d).ok());
        let offered = offered_name(&probe, &options.url);
        let name = match &options.name_tag {
            Some(tag) => filename::tagged(&offered, tag),
            None => offered,
        };
        let finished = match probe.size {
            Some(size)
                if options.skip_if_complete
                    && if options.timestamping { last_modified.is_some() } else { !options.overwrite } =>
            {
                Some(Finished { size, last_modified, checksum: options.checksum.clone() })
            }
            _ => None,
        };
        tokio::task::spawn_blocking(move || {
            // Chosen and claimed under one lock: downloads of this process starting together (`haul get -j`, a
            // server's jobs) each get a name of their own.
            let mut claims = CLAIMS.lock();
            let chosen = choose_paths(&target, &url, overwrite, &name, finished.as_ref(), &claims)?;
            let claim = match &chosen {
                Chosen::Fetch(paths, _) => Some(Claim::take(&mut claims, &paths.final_path, &url)),
                Chosen::Complete(_) => None,
            };
            Ok::<_, EngineError>((chosen, claim))
        })
        .await
        .map_err(|error| EngineError::InvalidRequest(format!("choosing a file name failed: {error}")))??
    };
    let (chosen, _claim) = chosen;
    let (paths, existing) = match chosen {
        Chosen::Fetch(paths, existing) => (paths, existing),
        Chosen::Complete(path) => {
            let size = probe.size.unwrap_or_default();
            tracing::debug!(path = %path.display(), size, "already complete; nothing to fetch");
            progress.set_destination(path.clone());
            progress.set_total(Some(size));
            progress.set_done(size);
            progress.set_phase(Phase::Done);
            return Ok(Downloaded {
                path,
                size,
                resumed_bytes: 0,
                already_complete: true,
                validators: Default::default(),
            });
        }
    };
    if let (Some(root), Some(dir)) = (&options.root, paths.final_path.parent()) {
        confine::check_dir(root, dir)?;
    }
    progress.set_destination(paths.final_path.clone());
    let part = Arc::new(PartFile::open(&paths.part, options.root.as_deref())?);
    // One run per file: a second one (another `haul get` of the same file, a server job with the same name)
    // finds the lock taken and stops without touching anything. The lock goes with the open file, so a run that
    // dies for any reason, SIGKILL included, releases it.
    if !part.try_lock()? {
        return Err(EngineError::InUse(paths.final_path));
    }
    // From here on a failure before any byte was recorded leaves nothing behind.
    let mut cleanup = RemoveIfEmpty { part: paths.part.clone(), control: paths.control.clone(), armed: true };

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
            ControlRecord::new(&options.record_name(), probe.size, &probe.validators)
        }
        None => ControlRecord::new(&options.record_name(), probe.size, &probe.validators),
    };
    // Saved at once, before any byte: another run that finds `NAME.part` then also finds whose it is (the URL)
    // and meets the lock, instead of taking it for someone else's file and choosing `name (1).ext`.
    control::save(&paths.control, &record)?;
    let resumed_bytes = record.done.covered();
    if resumed_bytes > 0 {
        // Bytes are here already: the rest is asked for, not the whole file again.
        probe.body = None;
        probe.first_bytes = None;
    }
    let limits = Limits::rate(options.rate_limit).and(options.limits.clone());

    // A changed remote restarts from a fresh probe; twice more at most, so a host that keeps changing fails.
    let mut restarts = 0;
    let size = loop {
        progress.set_total(probe.size);
        // What this run keeps from an earlier one: all of it for many connections, only a prefix for one stream,
        // and nothing from a host without Range, which sends the file from zero again.
        let many = matches!(probe.size, Some(size) if size > 0 && probe.ranges);
        let kept = match record.done.ranges().first() {
            _ if many => record.done.covered(),
            Some(&(0, end)) if probe.ranges => end,
            _ => 0,
        };
        progress.begin_run(kept.min(resumed_bytes));
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
            // A probe holding the whole file (a small one) is the download: one stream from its answer.
            Some(size) if probe.ranges && probe.body.is_none() => {
                // A disk too small fails here; with nothing recorded yet, `cleanup` removes the reservation.
                part.allocate(size)?;
                let swarm_options = SwarmOptions {
                    urls: std::iter::once(probe.final_url.clone()).chain(options.mirrors.iter().cloned()).collect(),
                    headers: crate::http::headers_after_redirect(&options.url, &probe.final_url, &options.headers),
                    size,
                    validators: probe.validators.clone(),
                    connections: options.connections,
                    max_connections: options.max_connections,
                    min_segment: options.min_segment,
                    max_attempts: options.max_attempts,
                    retry_wait: options.retry_wait,
                    limits: limits.clone(),
                };
                match swarm::run(
                    client.clone(),
                    swarm_options,
                    part.clone(),
                    record.done.clone(),
                    probe.first_bytes.take(),
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
                        progress.set_resumable(false);
                        continue;
                    }
                }
            }
            _ => {
                let single_options = SingleOptions::after_probe(
                    &options.url,
                    &options.headers,
                    &mut probe,
                    options.max_attempts,
                    options.retry_wait,
                    limits.clone(),
                );
                // One stream: "1 conn" while it runs.
                progress.set_connections(1);
                let end =
                    single::run(&client, single_options, &mut &*part, &record.done, &progress, &cancel, persist).await;
                progress.set_connections(0);
                match end? {
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
                probe = probe::probe_with_get(
                    &client,
                    &options.url,
                    &options.headers,
                    options.max_attempts,
                    options.retry_wait,
                )
                .await?;
                record = ControlRecord::new(&options.record_name(), probe.size, &probe.validators);
                part.set_len(0)?;
                control::save(&paths.control, &record)?;
            }
        }
    };

    // Every byte is here, though the record (not rewritten at the end) may say less: from now on the part file is
    // never removed as empty. A failure below leaves it for the next run, which at worst fetches again what the
    // record does not show.
    cleanup.armed = false;
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
    // As wget does: the file carries the remote's Last-Modified, which is what `-N` compares the next time.
    if let Some(remote) = probe.validators.last_modified.as_deref().and_then(|d| httpdate::parse_http_date(d).ok()) {
        // A filesystem that cannot is not a reason to fail the download.
        if let Err(error) = part.set_modified(remote) {
            tracing::warn!(%error, "cannot set the modification time from Last-Modified");
        }
    }
    put_in_place(&paths.part, &paths.final_path, options.overwrite || options.timestamping)?;
    control::remove(&paths.control);
    progress.set_phase(Phase::Done);
    // Bytes fetched again (a host that sent the file from zero) were not resumed.
    let resumed_bytes = resumed_bytes.min(progress.snapshot().resumed);
    Ok(Downloaded {
        path: paths.final_path,
        size,
        resumed_bytes,
        already_complete: false,
        validators: probe.validators,
    })
}

/// The final paths this process's downloads are writing to, each with its URL and how many downloads hold it: a
/// download choosing a name skips one another URL holds, though its `NAME.part` may not exist yet.
static CLAIMS: std::sync::LazyLock<parking_lot::Mutex<Claims>> = std::sync::LazyLock::new(Default::default);

type Claims = std::collections::HashMap<PathBuf, (String, usize)>;

/// One download's hold on its final path in [`CLAIMS`], given back when dropped.
struct Claim {
    path: PathBuf,
}

impl Claim {
    fn take(claims: &mut Claims, path: &Path, url: &str) -> Self {
        claims.entry(path.to_owned()).or_insert_with(|| (url.to_owned(), 0)).1 += 1;
        Self { path: path.to_owned() }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock();
        if let Some((_, holders)) = claims.get_mut(&self.path) {
            *holders -= 1;
            if *holders == 0 {
                claims.remove(&self.path);
            }
        }
    }
}

/// Removes a download's `NAME.part` and resume record when its run ends (in error, paused, or dropped) with no
/// byte recorded, so a first attempt that fails before any data (a full disk at reservation, a host that
/// answers nothing) leaves nothing behind. Whatever was recorded stays for the next run to resume; after a
/// success both files are already gone.
struct RemoveIfEmpty {
    part: PathBuf,
    control: PathBuf,
    /// Cleared once every byte is fetched.
    armed: bool,
}

impl Drop for RemoveIfEmpty {
    fn drop(&mut self) {
        if !self.armed
            || !self.part.exists()
            || control::load(&self.control).is_some_and(|record| !record.done.is_empty())
        {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.part)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.part.display(), %error, "cannot remove an empty partial file");
        }
        control::remove(&self.control);
    }
}

enum Ended {
    Complete(u64),
    Cancelled,
    Changed(String),
}

/// What [`choose_paths`] found at the destination.
enum Chosen {
    /// Fetch into these paths, resuming the record of an earlier run of the same URL when there is one.
    Fetch(Paths, Option<ControlRecord>),
    /// The finished file is already there (looked for only with `skip_if_complete`).
    Complete(PathBuf),
}

/// What a file on disk must be to count as this download finished. There is no record left once a download
/// is done, so this is what can be checked: the size the server gives, a modification time not older than
/// its Last-Modified (a file written after the remote last changed), and the checksum when the user gave one.
struct Finished {
    size: u64,
    last_modified: Option<SystemTime>,
    checksum: Option<ChecksumSpec>,
}

impl Finished {
    fn is_at(&self, path: &Path) -> bool {
        // symlink_metadata: only a regular file counts, never whatever a symlink points to.
        let Ok(meta) = path.symlink_metadata() else { return false };
        if !meta.is_file() || meta.len() != self.size {
            return false;
        }
        if let (Some(remote), Ok(local)) = (self.last_modified, meta.modified())
            && local < remote
        {
            return false;
        }
        self.checksum.as_ref().is_none_or(|spec| crate::verify::verify(path, spec).is_ok())
    }
}

/// Pick the final, part and record paths, and the record of an earlier run of the same URL if there is one; or
/// the finished file, when `finished` is given and one is found. `name` is what the server offers, already made
/// safe; used when the target is a directory. Missing directories are created.
fn choose_paths(
    target: &Target,
    url: &str,
    overwrite: bool,
    name: &str,
    finished: Option<&Finished>,
    claims: &Claims,
) -> Result<Chosen, EngineError> {
    let matching = |paths: &Paths| control::load(&paths.control).filter(|record| record.url == url);
    let complete = |path: &Path| finished.is_some_and(|finished| finished.is_at(path));
    match target {
        Target::File(path) => {
            if let Some(parent) = path.parent() {
                create_dirs(parent)?;
            }
            let paths = Paths::for_final(path.clone());
            if complete(&paths.final_path) {
                return Ok(Chosen::Complete(paths.final_path));
            }
            if exists(&paths.final_path) && !overwrite {
                return Err(EngineError::AlreadyExists(paths.final_path));
            }
            let existing = matching(&paths);
            Ok(Chosen::Fetch(paths, existing))
        }
        Target::Dir(dir) => {
            create_dirs(dir)?;
            for n in 0..10_000 {
                let paths = Paths::for_final(dir.join(filename::numbered(name, n)));
                // Another URL of this process is about to write there (its `NAME.part` may not exist yet).
                if claims.get(&paths.final_path).is_some_and(|(holder, _)| holder != url) {
                    continue;
                }
                // `name (1).ext` too: an earlier run may have saved it there beside a different `name.ext`.
                if complete(&paths.final_path) {
                    return Ok(Chosen::Complete(paths.final_path));
                }
                if let Some(record) = matching(&paths) {
                    return Ok(Chosen::Fetch(paths, Some(record)));
                }
                let taken = exists(&paths.final_path) && !overwrite;
                if !taken && !exists(&paths.part) {
                    return Ok(Chosen::Fetch(paths, None));
                }
            }
            Err(EngineError::InvalidRequest(format!("no free name for {name} in {}", dir.display())))
        }
    }
}

/// Creates `dir` and its missing parents (as `mkdir -p`, and curl's `--create-dirs`), with an error that says
/// what stood in the way.
fn create_dirs(dir: &Path) -> Result<(), EngineError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let Err(error) = std::fs::create_dir_all(dir) else { return Ok(()) };
    let existing = dir.ancestors().skip(1).find(|ancestor| ancestor.as_os_str().is_empty() || ancestor.exists());
    let shown = |path: &Path| if path.as_os_str().is_empty() { ".".to_owned() } else { path.display().to_string() };
    // A file where a directory should be: the system says "File exists" or "Not a directory"; name the file.
    let in_the_way = dir.ancestors().find(|path| !path.as_os_str().is_empty() && path.exists() && !path.is_dir());
    let reason = match (in_the_way, existing) {
        (Some(file), _) => format!("{} is a file, not a directory", file.display()),
        (None, Some(parent)) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("{} is not writable ({error})", shown(parent))
        }
        _ => error.to_string(),
    };
    Err(EngineError::CreateDir { path: dir.to_owned(), reason })
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
