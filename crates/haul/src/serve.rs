//! `haul serve` and `haul token`: the data directory, the API token, and the server's life from start to a
//! graceful stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use haul_core::job::AccountId;
use haul_engine::ClientOptions;
use haul_engine::service::{Engine, EngineOptions};

use crate::cli::{DataDirArgs, ServeArgs};

/// How long a stopping server waits for downloads to flush their progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The files of a data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn token_path(&self) -> PathBuf {
        self.root.join("token")
    }

    fn account_path(&self) -> PathBuf {
        self.root.join("account")
    }

    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.root.join("haul.db").display())
    }

    fn create(&self) -> anyhow::Result<()> {
        for dir in [self.root.clone(), self.downloads(), self.root.join("thumbnails")] {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
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
        if database.starts_with("postgres") {
            bail!("the PostgreSQL backend is not available yet; use the default SQLite database (omit --database)");
        }
        haul_store::open(&database).await.with_context(|| format!("cannot open the database {database}"))
    }

    /// The data directory's default account, and its token registered as that account's bearer key.
    pub async fn ensure_default_account(&self, store: &dyn haul_store::Store) -> anyhow::Result<AccountId> {
        let account = self.account()?;
        store.ensure_account(&account, "default").await?;
        let token = self.token()?;
        let hash = haul_store::hash_secret(&token);
        if store.account_for_key(&hash, &[haul_store::KeyKind::Bearer]).await?.is_none() {
            let prefix: String = token.chars().take(12).collect();
            match store.create_key(&account, haul_store::KeyKind::Bearer, &hash, &prefix).await {
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

/// `haul token`: print the API token of a data directory (creating it if this is the first use).
pub fn token(args: DataDirArgs) -> anyhow::Result<()> {
    let data = DataDir::new(args.data_dir);
    println!("{}", data.token()?);
    Ok(())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::new(args.data.data_dir.clone());
    let token = data.token()?;
    let store = data.open_store(args.database.as_deref()).await?;
    let account = data.ensure_default_account(store.as_ref()).await?;
    let options = EngineOptions {
        downloads_dir: data.downloads(),
        max_active: args.max_active,
        node: args.node.clone(),
        lease: Duration::from_secs(30),
        resume_on_start: !args.no_resume,
        client: ClientOptions::default(),
    };
    let engine = Engine::start(store, options).await.context("cannot start the download engine")?;

    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("cannot listen on {}; is another server using it? (--listen ADDR:PORT)", args.listen)
    })?;
    let address: SocketAddr = listener.local_addr()?;
    let router = haul_api::router_on_port(engine.clone(), haul_api::ApiOptions { token, account }, address.port());
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond this machine: anyone who can reach it needs only the token");
    }
    // One line on stdout, for people and for scripts that started us on port 0.
    println!(
        "haul listening on http://{address} (data in {}, token in {})",
        args.data.data_dir.display(),
        data.token_path().display()
    );

    axum::serve(listener, router).with_graceful_shutdown(stop_signal()).await.context("the server failed")?;
    tracing::info!("stopping: pausing active downloads");
    engine.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
