//! A whole haul server in-process on 127.0.0.1:0, for tests of the API and of its clients: a real SQLite file
//! in a temp dir, a real engine and the real router. Built only with the `testing` feature.

use std::path::PathBuf;
use std::time::Duration;

use haul_core::account::KeyKind;
use haul_core::job::AccountId;
use haul_engine::service::{Engine, EngineOptions};
use haul_engine::{ClientOptions, MediaTools};

use crate::{ApiOptions, router_on_port};

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: String,
    /// The account `token` acts for.
    pub account: AccountId,
    /// The server's engine, for tests that set up accounts and keys.
    pub engine: Engine,
    pub downloads_dir: PathBuf,
    /// The data directory; removed when the server is dropped.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Start a server that runs at most `max_active` downloads at once and accepts `token`.
    pub async fn start(token: &str, max_active: usize) -> Self {
        Self::start_with(token, max_active, |_| {}).await
    }

    /// Like [`start`](Self::start), with the API options changed by `configure` first (mounts, open dialects).
    /// Media tools are looked up on PATH.
    pub async fn start_with(token: &str, max_active: usize, configure: impl FnOnce(&mut ApiOptions)) -> Self {
        let tools = MediaTools::discover(None, None, std::env::var_os("PATH").as_deref()).expect("look up media tools");
        Self::start_with_tools(token, max_active, tools, configure).await
    }

    /// With exactly these media tools (`MediaTools::none()` for a server without yt-dlp and ffmpeg).
    pub async fn start_with_tools(
        token: &str,
        max_active: usize,
        media: MediaTools,
        configure: impl FnOnce(&mut ApiOptions),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let downloads_dir = dir.path().join("downloads");
        let options = EngineOptions {
            downloads_dir: downloads_dir.clone(),
            thumbnails_dir: dir.path().join("thumbnails"),
            max_active,
            max_jobs_per_account: 100_000,
            max_playlist_entries: 1000,
            node: "test".to_owned(),
            lease: Duration::from_secs(30),
            resume_on_start: true,
            advertise_url: None,
            client: ClientOptions::default(),
            media,
            bandwidth: Default::default(),
            clock: Default::default(),
            retention: None,
            webhooks: haul_engine::service::WebhookOptions::default(),
        };
        let database = format!("sqlite://{}", dir.path().join("haul.db").display());
        let engine = Engine::open(&database, options).await.expect("open the test database and start the engine");
        let account = AccountId::generate();
        let mut options = ApiOptions::new(account.clone());
        configure(&mut options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let base = format!("http://{address}");
        let app = router_on_port(engine.clone(), options, address.port()).expect("valid API mounts");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("test server") });
        engine.ensure_account(&account, "default").await.expect("create the default account");
        engine.add_key(&account, KeyKind::Bearer, token).await.expect("register the token");
        Self { base, token: token.to_owned(), account, engine, downloads_dir, dir }
    }

    /// A new account (`email` matters for Cloudflare's X-Auth-Email) with one key of `kind` whose secret is
    /// `secret`.
    pub async fn add_account(&self, name: &str, email: Option<&str>, kind: KeyKind, secret: &str) -> AccountId {
        let account = self.engine.create_account(name, email).await.expect("create account");
        self.add_key(&account, kind, secret).await;
        account
    }

    /// Registers `secret` as a key of `kind` for `account`.
    pub async fn add_key(&self, account: &AccountId, kind: KeyKind, secret: &str) {
        self.engine.add_key(account, kind, secret).await.expect("create key");
    }

    /// Revokes every key of `account`.
    pub async fn revoke_keys(&self, account: &AccountId) {
        for key in self.engine.keys(account).await.expect("list keys") {
            self.engine.revoke_key(account, &key.id).await.expect("revoke key");
        }
    }

    /// The data directory's `thumbnails/`.
    pub fn thumbnails_dir(&self) -> PathBuf {
        self.dir.path().join("thumbnails")
    }
}
