//! What the API's test files share: a server under test with an origin beside it, and authenticated calls.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use haul_api::testing::TestServer;
use haul_core::job::AccountId;
use haul_engine::service::Engine;
use haul_test_support::{Origin, OriginOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// One server under test, with everything it needs kept alive.
pub struct Harness {
    pub base: String,
    pub client: reqwest::Client,
    pub origin: Origin,
    pub engine: Engine,
    pub account: AccountId,
    pub downloads_dir: std::path::PathBuf,
    pub token: String,
    pub server: TestServer,
}

impl Harness {
    pub async fn start(token: &str, origin_options: OriginOptions) -> Self {
        Self::start_with(token, origin_options, |_| {}).await
    }

    /// With the API options changed by `configure` first (mounts, open dialects, public URL).
    pub async fn start_with(
        token: &str,
        origin_options: OriginOptions,
        configure: impl FnOnce(&mut haul_api::ApiOptions),
    ) -> Self {
        let server = TestServer::start_with(token, 4, configure).await;
        Self::around(server, token, origin_options).await
    }

    /// A server with exactly these media tools (`MediaTools::none()`: no yt-dlp, no ffmpeg).
    pub async fn start_with_tools(token: &str, origin_options: OriginOptions, tools: haul_engine::MediaTools) -> Self {
        let server = TestServer::start_with_tools(token, 4, tools, |_| {}).await;
        Self::around(server, token, origin_options).await
    }

    async fn around(server: TestServer, token: &str, origin_options: OriginOptions) -> Self {
        let origin = Origin::start(origin_options).await.unwrap();
        Self {
            base: server.base.clone(),
            client: reqwest::Client::new(),
            origin,
            engine: server.engine.clone(),
            account: server.account.clone(),
            downloads_dir: server.downloads_dir.clone(),
            token: token.to_owned(),
            server,
        }
    }

    /// An authenticated request to `path`.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// An authenticated call expecting a JSON answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }
}
