//! `haul serve` and `haul token`: the data directory, the API token, and the server's life from start to a
//! graceful stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_engine::ClientOptions;
use haul_engine::service::{Engine, EngineOptions, WebhookOptions};

use haul_api::Dialect;

use crate::cli::{LogFormat, ServeArgs, StoreArgs, TokenArgs};
use crate::signals::interrupted;

/// How long a stopping server waits for downloads to flush their progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Names of the values every node sharing a database takes from it (`Store::shared_value`).
const DEFAULT_ACCOUNT: &str = "default-account";
const LINK_KEY: &str = "link-key";
/// The node name of a server on SQLite, unless `--node-id` gives another.
const SINGLE_NODE: &str = "local";

/// The files of a data directory.
pub struct DataDir {
    root: PathBuf,
    /// `--downloads-dir`, when it is not `root/downloads`.
    downloads: Option<PathBuf>,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root, downloads: None }
    }

    /// The data directory for the commands that manage one (`haul token`, `account`, `key`): they never make a
    /// new one where the user did not mean it. A directory that does not exist is an error that says where
    /// haul looked; an existing empty directory is taken as the user's choice and set up; a directory holding
    /// something else than haul's data is refused.
    pub fn existing(root: PathBuf) -> anyhow::Result<Self> {
        let looked = || {
            format!(
                "no haul data directory at {}: `haul serve` makes it on its first start; or point at yours with \
                 --data-dir DIR (or HAUL_DATA_DIR)",
                root.display()
            )
        };
        let mut entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(looked()),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", root.display())),
        };
        let empty = entries.next().is_none();
        if !empty && !root.join("haul.db").exists() && !root.join("token").exists() {
            bail!("{} is not a haul data directory (it has no haul.db or token); {}", root.display(), looked());
        }
        Ok(Self::new(root))
    }

    /// With finished files in `downloads` rather than `root/downloads`.
    pub fn with_downloads(mut self, downloads: Option<PathBuf>) -> Self {
        self.downloads = downloads;
        self
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join("serve.lock")
    }

    /// Holds the data directory for this process: a second `haul serve` on it would run every download
    /// twice. The lock is the operating system's (it goes with the process, however it ends); the file holds
    /// the holder's process id, for the message.
    pub fn lock(&self) -> anyhow::Result<std::fs::File> {
        self.create()?;
        let path = self.lock_path();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() { "another process".to_owned() } else { format!("process {holder}") };
                bail!(
                    "another haul serve ({who}) is using the data directory {}; stop it first, or give this one \
                     its own --data-dir",
                    self.root.display()
                );
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        use std::io::{Seek as _, Write as _};
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(file)
    }

    pub fn token_path(&self) -> PathBuf {
        self.root.join("token")
    }

    fn account_path(&self) -> PathBuf {
        self.root.join("account")
    }

    fn link_key_path(&self) -> PathBuf {
        self.root.join("link.key")
    }

    pub fn thumbnails(&self) -> PathBuf {
        self.root.join("thumbnails")
    }

    /// The secret that signs download links, created on first use (readable by its owner only). Deleting it
    /// invalidates every link handed out so far.
    async fn link_key(&self, store: &dyn haul_store::Store) -> anyhow::Result<Vec<u8>> {
        self.create()?;
        let text = read_or_create(&self.link_key_path(), || format!("{}{}", uuid_hex(), uuid_hex()))?;
        if !store.shared_by_nodes() {
            // One node: the file is the key, and deleting it revokes every link.
            return Ok(text.into_bytes());
        }
        // Every node sharing the database signs with one key, so a link made by one works on all.
        Ok(store.shared_value(LINK_KEY, &text).await?.into_bytes())
    }

    pub fn downloads(&self) -> PathBuf {
        self.downloads.clone().unwrap_or_else(|| self.root.join("downloads"))
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.root.join("haul.db").display())
    }

    /// The data directory and its parts. The directory itself is its owner's alone (0700): it holds the
    /// database, the token and the link key.
    fn create(&self) -> anyhow::Result<()> {
        for dir in [self.root.clone(), self.downloads(), self.thumbnails()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private to its owner", self.root.display()))?;
        }
        Ok(())
    }

    /// The API token, created on first use (readable by its owner only).
    pub fn token(&self) -> anyhow::Result<String> {
        self.create()?;
        read_or_create(&self.token_path(), || {
            // Two v4 UUIDs: 244 random bits from the operating system's generator.
            format!("{}{}", uuid_hex(), uuid_hex())
        })
    }

    pub async fn open_store(&self, database: Option<&str>) -> anyhow::Result<std::sync::Arc<dyn haul_store::Store>> {
        self.create()?;
        let database = database.map(str::to_owned).unwrap_or_else(|| self.database_url());
        let shown = haul_store::shown_url(&database);
        haul_store::open(&database).await.with_context(|| format!("cannot open the database {shown}"))
    }

    /// The name this node goes by in a shared database when `--node-id` is not given: the host name and a
    /// hash of the data directory, so two servers on one machine differ and a restart keeps its name.
    pub fn default_node_id(&self) -> String {
        // Linux's; elsewhere the hash alone tells data directories apart.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '-' })
            .take(48)
            .collect();
        let root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        let digest = haul_store::hash_secret(&root.to_string_lossy());
        format!("{}-{}", if host.is_empty() { "haul" } else { host.as_str() }, &digest[..6])
    }

    /// The data directory's default account, and its token registered as that account's bearer key.
    pub async fn ensure_default_account(&self, store: &dyn haul_store::Store) -> anyhow::Result<AccountId> {
        // The database's default account: this directory's, unless another node sharing the database was first.
        let account = store.shared_value(DEFAULT_ACCOUNT, self.account()?.as_str()).await?;
        let account: AccountId =
            account.parse().map_err(|e| anyhow::anyhow!("the database's default account is damaged: {e}"))?;
        store.ensure_account(&account, "default").await?;
        let token = self.token()?;
        let hash = haul_store::hash_secret(&token);
        if store.account_for_key(&hash, &[KeyKind::Bearer]).await?.is_none() {
            match store.create_key(&account, KeyKind::Bearer, &hash, &haul_store::key_prefix(&token)).await {
                // Revoked: the token file is stale; the operator revoked it on purpose.
                Ok(_) | Err(haul_store::StoreError::Duplicate(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(account)
    }

    /// The account the token belongs to.
    fn account(&self) -> anyhow::Result<AccountId> {
        let text = read_or_create(&self.account_path(), || AccountId::generate().to_string())?;
        text.parse().map_err(|e| {
            anyhow::anyhow!("{} is damaged ({e}); delete it to start afresh", self.account_path().display())
        })
    }
}

fn uuid_hex() -> String {
    AccountId::generate().to_string()
}

/// Read a one-line secret file, or create it with mode 0600 if missing.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let value = make();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{value}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}

/// `haul token`: print the API token of a data directory (creating it if this is the first use); with
/// `--rotate`, revoke it and make a new one.
pub async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let data = DataDir::existing(args.store.data.data_dir.clone())?;
    if !args.rotate {
        println!("{}", data.token()?);
        return Ok(());
    }
    let store = data.open_store(args.store.database.as_deref()).await?;
    let account = data.ensure_default_account(store.as_ref()).await?;
    let old = data.token()?;
    // The token's key: live under its hash, listed under its prefix.
    if store.account_for_key(&haul_store::hash_secret(&old), &[KeyKind::Bearer]).await?.is_some() {
        let prefix = haul_store::key_prefix(&old);
        for key in store.list_keys(Some(&account)).await? {
            if key.revoked_at.is_none() && key.prefix == prefix {
                store.revoke_key(&key.id).await?;
            }
        }
    }
    std::fs::remove_file(data.token_path())
        .with_context(|| format!("cannot replace {}", data.token_path().display()))?;
    data.ensure_default_account(store.as_ref()).await?;
    eprintln!("the old token is revoked; the new one is in {}:", data.token_path().display());
    println!("{}", data.token()?);
    Ok(())
}

/// `haul migrate`: opening a store creates its tables or brings them up to date.
pub async fn migrate(store: StoreArgs) -> anyhow::Result<()> {
    let database = match store.database {
        Some(database) => database,
        None => DataDir::existing(store.data.data_dir)?.database_url(),
    };
    let shown = haul_store::shown_url(&database);
    let opened = haul_store::open(&database).await.with_context(|| format!("cannot open the database {shown}"))?;
    println!("{shown}: up to date ({})", opened.backend());
    Ok(())
}

pub async fn serve(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let downloads = args.downloads_dir.as_ref().map(std::path::absolute).transpose().context("--downloads-dir")?;
    let data = DataDir::new(args.data.data_dir.clone()).with_downloads(downloads);
    // Held until the process ends.
    let _lock = data.lock()?;
    let store = data.open_store(args.database.as_deref()).await?;
    let account = data.ensure_default_account(store.as_ref()).await?;
    let link_key = data.link_key(store.as_ref()).await?;
    let backend = store.backend();
    // One node per SQLite file (the data directory's lock sees to it), whose name stays what it always was, so
    // the downloads a stopped server was running are its own at the next start wherever the directory moved.
    let node = match &args.node_id {
        Some(node) => node.clone(),
        None if store.shared_by_nodes() => data.default_node_id(),
        None => SINGLE_NODE.to_owned(),
    };
    let advertise_url = match &args.advertise_url {
        Some(url) => Some(checked_base_url(url, "--advertise-url")?),
        None if !args.listen.ip().is_unspecified() && args.listen.port() != 0 => {
            Some(format!("http://{}", args.listen))
        }
        None => None,
    };
    let options = EngineOptions {
        downloads_dir: data.downloads(),
        thumbnails_dir: data.thumbnails(),
        max_active: args.max_active,
        max_jobs_per_account: args.max_jobs_per_account,
        max_playlist_entries: args.max_playlist_entries as usize,
        node: node.clone(),
        lease: Duration::from_secs(args.lease),
        advertise_url,
        resume_on_start: !args.no_resume,
        client: ClientOptions {
            destinations: args.destinations(),
            max_connections_per_host: Some(args.max_connections_per_host).filter(|n| *n > 0),
            ca_certs: args.ca_cert.clone(),
            local_address: args.local_address,
            ..ClientOptions::default()
        },
        media: crate::cli::media_tools(args.yt_dlp.clone(), args.ffmpeg.clone())?,
        bandwidth: haul_engine::service::BandwidthPatch {
            speed_limit: args.speed_limit.map(|rate| crate::cli::limit(Some(rate))),
            host_limits: args
                .host_limit
                .iter()
                .map(|(host, rate)| (host.clone(), crate::cli::limit(Some(*rate))))
                .collect(),
            schedule: args.schedule.clone().map(|text| Some(text).filter(|text| !text.is_empty())),
        },
        clock: haul_engine::service::LocalClock::system(),
        retention: args.forget_after.map(|after| haul_engine::service::Retention {
            after,
            states: args.forget_states.clone(),
            delete_files: args.forget_files,
            every: Duration::from_secs(600),
        }),
        webhooks: WebhookOptions { retry_delays: args.webhook_retry.0.clone(), ..WebhookOptions::default() },
    };
    let media_line = options.media.describe();
    let fetch_line = options.client.destinations.describe();
    let engine = Engine::start(store, options).await.context("cannot start the download engine")?;
    let stop_job_log = haul_engine::CancellationToken::new();
    let job_log = haul_engine::task::spawn(
        tracing::debug_span!("job_log"),
        crate::logs::JobLog::new(engine.clone(), log_format).run(stop_job_log.clone()),
    );

    let api = api_options(&args, account, link_key)?;
    let extra = dialect_listeners(&args.listen_dialect)?;

    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("cannot listen on {}; is another server using it? (--listen ADDR:PORT)", args.listen)
    })?;
    let address: SocketAddr = listener.local_addr()?;
    warn_if_public(address);
    // What a client needs, for people and for scripts that started us on port 0.
    let mut banner = format!(
        "haul listening on http://{address} (data in {}, files in {}, token in {})\n  {:<15} {node} on {backend}\n  \
         {:<15} http://{address}/v1\n",
        args.data.data_dir.display(),
        data.downloads().display(),
        data.token_path().display(),
        "node",
        "native",
    );
    if api.ui {
        let weight = haul_api::page_weight().div_ceil(1024);
        banner.push_str(&format!("  {:<15} http://{address}/ ({weight} KiB)\n", "page"));
    }
    for (dialect, mount) in api.mounts.iter() {
        let mount = if mount == "/" { "" } else { mount };
        banner.push_str(&format!("  {:<15} http://{address}{mount}\n", dialect.name()));
    }

    // Connections are capped under the file descriptor limit, so a flood of idle ones cannot starve downloads.
    let fd_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let limits = haul_api::ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout),
        ..haul_api::ConnectionLimits::for_fd_limit(fd_limit)
    };
    tracing::info!(max_connections = limits.max_connections, header_timeout = ?limits.header_timeout, "connection limits");
    let mut servers = tokio::task::JoinSet::new();
    for (dialect, wanted) in extra {
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .with_context(|| format!("cannot listen on {wanted} for {dialect}; is another server using it?"))?;
        let bound = listener.local_addr()?;
        warn_if_public(bound);
        banner.push_str(&format!("  {:<15} http://{bound} (own listener)\n", dialect.name()));
        let router = haul_api::dialect_router(engine.clone(), api.clone(), dialect, bound.port());
        servers.spawn(haul_api::serve(listener, router, limits, interrupted()));
    }
    if let Some(wanted) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .with_context(|| format!("cannot listen on {wanted} for metrics; is another server using it?"))?;
        let bound = listener.local_addr()?;
        warn_if_public(bound);
        banner.push_str(&format!("  {:<15} http://{bound}/metrics (no token)\n", "metrics"));
        let router = haul_api::metrics_router(engine.clone(), api.clone());
        servers.spawn(haul_api::serve(listener, router, limits, interrupted()));
    }
    banner.push_str(&format!("  {:<15} {media_line}\n", "media"));
    banner.push_str(&format!("  {:<15} {fetch_line}\n", "fetches"));
    if api.open_ytdlp_app {
        tracing::warn!("the yt-dlp web app API is open: anyone who can reach {address} can use it without a token");
    }
    // One write, and its failure ignored: a script that read the first line and closed stdout must not stop us.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());

    let router = haul_api::router_on_port(engine.clone(), api, address.port()).map_err(anyhow::Error::msg)?;
    servers.spawn(haul_api::serve(listener, router, limits, interrupted()));
    // Every listener stops on the same signal; the first to fail takes the server down.
    while let Some(finished) = servers.join_next().await {
        finished.context("a listener crashed")?.context("the server failed")?;
    }
    tracing::info!("stopping: pausing active downloads");
    engine.shutdown(SHUTDOWN_GRACE).await;
    // After the engine's last event: the log takes what is left, then names the downloads the stop interrupted.
    stop_job_log.cancel();
    let _ = job_log.await;
    Ok(())
}

/// The API's options from the command line, checked before anything listens.
fn api_options(args: &ServeArgs, account: AccountId, link_key: Vec<u8>) -> anyhow::Result<haul_api::ApiOptions> {
    let mut options = haul_api::ApiOptions::new(account);
    options.links = haul_api::LinkSigner::new(link_key);
    for spec in &args.mount {
        options.mounts.set(spec).map_err(anyhow::Error::msg)?;
    }
    options.mounts.validate().map_err(anyhow::Error::msg)?;
    options.ui = args.ui == "on";
    for name in &args.open_dialect {
        match name.parse::<Dialect>().map_err(anyhow::Error::msg)? {
            Dialect::YtdlpApp => options.open_ytdlp_app = true,
            other => {
                bail!("--open-dialect {other}: only ytdlp-app can be served without a key ({other} clients send one)")
            }
        }
    }
    if let Some(url) = &args.public_url {
        options.public_url = Some(checked_base_url(url, "--public-url")?);
    }
    Ok(options)
}

/// A base URL from a flag: http(s), no query; returned without a trailing slash.
fn checked_base_url(url: &str, flag: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{flag} {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
        bail!("{flag} must be an http(s) URL without a query, like https://haul.example.com");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `--listen-dialect API=ADDR:PORT` values.
fn dialect_listeners(specs: &[String]) -> anyhow::Result<Vec<(Dialect, SocketAddr)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, address) = spec
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--listen-dialect takes API=ADDR:PORT, got {spec:?}"))?;
            let dialect = name.trim().parse::<Dialect>().map_err(anyhow::Error::msg)?;
            let address = address
                .trim()
                .parse()
                .with_context(|| format!("--listen-dialect {spec}: {address:?} is not ADDR:PORT"))?;
            Ok((dialect, address))
        })
        .collect()
}

fn warn_if_public(address: SocketAddr) {
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond this machine: anyone who can reach it needs only a key");
    }
}
