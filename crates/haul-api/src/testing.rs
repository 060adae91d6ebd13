//! A whole haul server in-process on 127.0.0.1:0, for tests of the API and of its clients: a real SQLite file
//! in a temp dir, a real engine and the real router. Built only with the `testing` feature.

use std::path::PathBuf;
use std::time::Duration;

use haul_core::job::AccountId;
use haul_engine::ClientOptions;
use haul_engine::service::{Engine, EngineOptions};

use crate::{ApiOptions, router};

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: String,
    /// The account `token` acts for.
    pub account: AccountId,
    pub engine: Engine,
    pub downloads_dir: PathBuf,
    /// The data directory; removed when the server is dropped.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Start a server that runs at most `max_active` downloads at once and accepts `token`.
    pub async fn start(token: &str, max_active: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = haul_store::open(&format!("sqlite://{}", dir.path().join("haul.db").display()))
            .await
            .expect("open the test database");
        let downloads_dir = dir.path().join("downloads");
        let options = EngineOptions {
            downloads_dir: downloads_dir.clone(),
            max_active,
            node: "test".to_owned(),
            lease: Duration::from_secs(30),
            resume_on_start: true,
            client: ClientOptions::default(),
        };
        let engine = Engine::start(store, options).await.expect("start the engine");
        let account = AccountId::generate();
        let app = router(engine.clone(), ApiOptions { token: token.to_owned(), account: account.clone() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("test server") });
        Self { base, token: token.to_owned(), account, engine, downloads_dir, dir }
    }
}
