//! The client commands `haul add`, `ls`, `pause`, `resume`, `rm`, `webhook` and `rule`: they drive a running `haul serve` over
//! its native `/v1` JSON API with the server's bearer token.
//!
//! Every command resolves the token first (`--token`, `HAUL_TOKEN`, else `<data-dir>/token`), accepts download
//! IDs as unique prefixes, reports a failure per ID as `haul: error: <id>: <server message>` and carries on
//! with the rest, and exits 1 if anything failed. An unreachable server stops the command at once: every
//! further request would fail the same way.
//!
//! Requests and answers are the server's own types from `haul_api::wire`, so the client cannot drift from the
//! server: a field renamed on one side fails to compile on the other. This module holds what every command
//! shares: where the server is, the token, the HTTP client and its errors.

mod act;
mod add;
mod archive;
mod cookies;
mod limit;
mod ls;
mod render;
mod rule;
mod watch;
mod webhook;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use haul_api::wire::DownloadList;
use haul_core::job::JobState;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use act::{IdsArgs, RmArgs, SetArgs, parse_age, pause, resume, retry, rm, set};
pub use add::{AddArgs, add};
pub use archive::{ArchiveCommand, archive};
pub use cookies::{CookiesCommand, cookies};
pub use limit::{LimitArgs, limit};
pub use ls::{LsArgs, ls};
pub use rule::{RuleCommand, rule};
pub use webhook::{WebhookCommand, webhook};

/// Where the server is and how to authenticate to it; flattened into every client command.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Base URL of the haul server.
    #[arg(long, env = "HAUL_HOST", default_value = "http://127.0.0.1:1700", global = true, value_name = "URL")]
    pub host: String,

    /// API token [default: read from <DATA_DIR>/token].
    #[arg(long, env = "HAUL_TOKEN", global = true, hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Data directory of the server, whose token file is read when no token is given.
    #[arg(long, env = "HAUL_DATA_DIR", default_value_os_t = crate::cli::default_data_dir(), global = true,
        value_name = "DIR")]
    pub data_dir: PathBuf,
}

fn exit_code(failed: bool) -> ExitCode {
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Reports a failure that concerns one of several items (a URL, an ID) and lets the command go on, unless the
/// server cannot be reached: then the error is handed back to stop the command, since every further item would
/// fail the same way.
fn report_or_stop(given: &str, error: anyhow::Error) -> anyhow::Result<()> {
    if error.is::<Unreachable>() {
        return Err(error);
    }
    eprintln!("haul: error: {given}: {error:#}");
    Ok(())
}

/// An answer read as the wire type the server sent it as. `what` names it for the error, as in "a download".
fn decode<T: DeserializeOwned>(json: &Value, what: &str) -> anyhow::Result<T> {
    T::deserialize(json).with_context(|| format!("the server sent {what} in a shape this client does not know"))
}

/// The server's JSON as `--json` prints it.
fn pretty(json: &Value) -> String {
    serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
}

/// The first eight characters of an ID, as tables and messages show it.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

// ---------------------------------------------------------------------------------------------------------------
// Talking to the server

/// The server could not be reached at all; stops the command rather than failing every ID the same way.
#[derive(Debug)]
struct Unreachable {
    host: String,
    detail: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot reach the haul server at {}: is `haul serve` running?", self.host)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Unreachable {}

/// The server answered with an error; `message` is the server's own.
#[derive(Debug)]
struct ServerError {
    status: StatusCode,
    /// The error's `code` (`already_downloaded`), when the server sent one.
    code: Option<String>,
    message: String,
}

impl ServerError {
    fn is_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

/// One server's `/v1` API with its token. Answers come back as the JSON the server wrote, so `--json` can print
/// exactly that; the commands read them as wire types with [`decode`].
struct Client {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    token: String,
}

impl Client {
    fn new(remote: &RemoteArgs) -> anyhow::Result<Self> {
        let base = normalize_host(&remote.host)?;
        let token = resolve_token(remote.token.as_deref(), &remote.data_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// A request without a body.
    async fn call(&self, method: Method, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(method, path)).await
    }

    /// A request with a JSON body, one of the wire types.
    async fn call_with<Body: Serialize>(&self, method: Method, path: &str, body: &Body) -> anyhow::Result<Value> {
        self.send(self.request(method, path).json(body)).await
    }

    /// A request with a raw body (a cookies.txt), sent as `text/plain`.
    async fn call_with_text(&self, method: Method, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let request = self.request(method, path).header(reqwest::header::CONTENT_TYPE, "text/plain").body(body);
        self.send(request).await
    }

    /// `GET /v1/downloads`, optionally only those in `state` and at most `limit` of them; a `DownloadList`.
    async fn list(
        &self,
        state: Option<JobState>,
        limit: Option<u32>,
        parent: Option<haul_core::job::DownloadId>,
    ) -> anyhow::Result<Value> {
        let mut query = Vec::new();
        if let Some(parent) = parent {
            query.push(format!("parent={parent}"));
        }
        if let Some(state) = state {
            query.push(format!("state={state}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let path =
            if query.is_empty() { "/v1/downloads".to_owned() } else { format!("/v1/downloads?{}", query.join("&")) };
        self.call(Method::GET, &path).await
    }

    /// Every download (of one state), page after page.
    async fn list_all(&self, state: Option<JobState>) -> anyhow::Result<DownloadList> {
        let mut path = match state {
            Some(state) => format!("/v1/downloads?limit=1000&state={state}"),
            None => "/v1/downloads?limit=1000".to_owned(),
        };
        let mut all: DownloadList = decode(&self.call(Method::GET, &path).await?, "a download list")?;
        while let Some(next) = all.next.take() {
            path = next;
            let page: DownloadList = decode(&self.call(Method::GET, &path).await?, "a download list")?;
            all.downloads.extend(page.downloads);
            all.next = page.next;
        }
        Ok(all)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// The JSON answer, or the server's error message.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let text = response.text().await.map_err(|error| self.transport_error(error))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return parsed.with_context(|| {
                format!("the server at {} answered {status} with something other than JSON; is it haul?", self.base)
            });
        }
        // Every haul error is `{"error": {"code", "message"}}`; anything else is not a haul server talking.
        let message = parsed
            .as_ref()
            .and_then(|body| body["error"]["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server at {} answered {status}; is it a haul server?", self.base));
        let code = parsed.as_ref().and_then(|body| body["error"]["code"].as_str()).map(str::to_owned);
        Err(ServerError { status, code, message }.into())
    }

    fn transport_error(&self, error: reqwest::Error) -> anyhow::Error {
        if error.is_connect() {
            // "Connection refused" is what the message already says; other causes (DNS, TLS) are worth showing.
            let detail = root_cause(&error);
            let detail = if detail.to_ascii_lowercase().contains("refused") { String::new() } else { detail };
            Unreachable { host: self.base.clone(), detail }.into()
        } else if error.is_timeout() {
            anyhow::anyhow!("the haul server at {} did not answer in time", self.base)
        } else {
            anyhow::anyhow!("request to the haul server at {} failed: {}", self.base, root_cause(&error))
        }
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `host:port` is taken as `http://host:port`; a trailing slash is dropped.
fn normalize_host(host: &str) -> anyhow::Result<String> {
    let host = host.trim();
    let with_scheme = if host.contains("://") { host.to_owned() } else { format!("http://{host}") };
    let url = url::Url::parse(&with_scheme)
        .with_context(|| format!("--host {host:?} is not a URL (expected e.g. http://127.0.0.1:1700)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--host {host:?} must be an http or https URL, e.g. http://127.0.0.1:1700");
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

/// `--token` / `HAUL_TOKEN`, else the server's token file in the data directory.
fn resolve_token(given: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = given.map(str::trim).filter(|token| !token.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join("token");
    let missing = || {
        anyhow::anyhow!(
            "no API token: pass --token, set HAUL_TOKEN, or run on the server's machine where {} exists \
             (haul token prints it)",
            path.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Err(missing()),
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(error).with_context(|| format!("cannot read the API token from {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_get_a_scheme_and_lose_the_trailing_slash() {
        assert_eq!(normalize_host("127.0.0.1:1700").unwrap(), "http://127.0.0.1:1700");
        assert_eq!(normalize_host("https://h.example/").unwrap(), "https://h.example");
        assert!(normalize_host("ftp://h").is_err());
        assert!(normalize_host("http://").is_err());
    }

    #[test]
    fn token_comes_from_the_flag_then_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_token(Some(" t "), dir.path()).unwrap(), "t");
        let missing = resolve_token(None, dir.path()).unwrap_err().to_string();
        assert!(missing.starts_with("no API token") && missing.contains("token"), "{missing}");
        std::fs::write(dir.path().join("token"), "secret\n").unwrap();
        assert_eq!(resolve_token(None, dir.path()).unwrap(), "secret");
    }
}
