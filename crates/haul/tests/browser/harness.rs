//! The browser tests' harness: a real `haul serve` on loopback, and Debian's chromium driven through
//! chromedriver with fantoccini, one browser at a time.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a test waits for something the page should show.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A `haul serve` on a free port of 127.0.0.1 with its own data directory, allowed to fetch from loopback.
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = crate::common::serve_command(dir.path(), extra).stderr(Stdio::null()).spawn().unwrap();
        let base = crate::common::listening(&mut child);
        let token = crate::common::token_of(dir.path());
        Self { child, dir, base, token, http: reqwest::Client::new() }
    }

    /// Runs a `haul` command on this server's data directory and answers its standard output.
    pub fn haul(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "haul {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// An API call with the data directory's token.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn call_as(&self, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Adds a download through the API and answers its id.
    pub async fn add(&self, body: Value) -> String {
        let (status, answer) = self.call(reqwest::Method::POST, "/v1/downloads", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    pub async fn download(&self, id: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, &format!("/v1/downloads/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let body = self.download(id).await;
            if body["state"] == state {
                return body;
            }
            assert!(Instant::now() < deadline, "still {} waiting for {state}: {body}", body["state"]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The path of a file in the server's downloads directory.
    pub fn downloaded(&self, relative: &str) -> PathBuf {
        self.dir.path().join("downloads").join(relative)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this run must have a browser: CI, or `HAUL_REQUIRE_BROWSER=1`.
fn browser_required() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0" && value != "false");
    set("CI") || set("HAUL_REQUIRE_BROWSER")
}

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// chromium (Debian's real binary rather than its wrapper script, where it is there) and chromedriver.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let real = Path::new("/usr/lib/chromium/chromium");
    let chromium = if real.is_file() { Some(real.to_path_buf()) } else { on_path("chromium") };
    Some((chromium?, on_path("chromedriver")?))
}

/// One browser at a time: chromium is heavy for two cores, and the tests' timings should not fight.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless chromium under chromedriver, with a session open.
pub struct Browser {
    pub client: Client,
    driver: Driver,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// chromedriver, in a process group of its own with the chromium it starts.
struct Driver {
    child: Child,
    address: SocketAddr,
    session: Option<String>,
}

impl Drop for Driver {
    /// After `Browser::close` there is nothing left to end. After a failed test, the session is deleted (so
    /// chromium quits and is reaped by chromedriver) and then the whole group is killed, so no browser outlives
    /// its test.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(session) = &self.session {
            delete_session(self.address, session);
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` by hand: a Drop cannot wait for fantoccini's future.
fn delete_session(address: SocketAddr, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("DELETE /session/{session} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// A chromedriver command fantoccini has no call for: `goog/cdp/execute`, its passage to a DevTools command
/// (device metrics and `prefers-color-scheme` emulation), and `se/log`, the browser's console.
#[derive(Debug)]
struct Extension {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Extension {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/{}", session_id.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a browser with a window of `width` x `height`; `None` (after saying so) when
    /// chromium or chromedriver is missing outside CI. In CI, or with `HAUL_REQUIRE_BROWSER=1`, a missing
    /// browser fails the test: scripts/browser-tools.sh installs them.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let Some((chromium, chromedriver)) = browser_programs() else {
            assert!(
                !browser_required(),
                "chromium and chromedriver are needed for the browser tests: run scripts/browser-tools.sh"
            );
            eprintln!("not run: no chromium or chromedriver (scripts/browser-tools.sh installs them)");
            return None;
        };
        let turn = ONE_BROWSER.lock().await;
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // The port is free when chosen, but another test's server may take it before chromedriver binds it (then
        // chromedriver exits and the session request meets that server): a new chromedriver on a new port.
        let mut tries = 0;
        let (client, mut driver) = loop {
            tries += 1;
            let port = free_port();
            let mut command = Command::new(&chromedriver);
            command.arg(format!("--port={port}")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            // Its own process group, so that a failed test can end chromium with it (see Drop).
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let mut driver = Driver { child: command.spawn().expect("starting chromedriver"), address, session: None };
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "chromedriver did not listen on {address}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let connected = ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://{address}"))
                .await;
            match connected {
                Ok(client) => break (client, driver),
                Err(error) if tries < 3 && !matches!(driver.child.try_wait(), Ok(None)) => {
                    eprintln!("chromedriver on port {port} was gone ({error}); starting another");
                }
                Err(error) if tries < 3 => {
                    eprintln!("no session from chromedriver on port {port} ({error}); starting another");
                    drop(driver);
                }
                Err(error) => panic!("opening a chromium session: {error}"),
            }
        };
        driver.session = client.session_id().await.ok().flatten();
        Some(Browser { client, driver, _profile: profile, _turn: turn })
    }

    /// The console's errors since the last call: uncaught exceptions and Content-Security-Policy refusals
    /// (failed requests, such as a 401 the test asked for, are left out).
    pub async fn page_errors(&self) -> Vec<String> {
        let command = Extension { path: "se/log", body: json!({"type": "browser"}) };
        let log = self.client.issue_cmd(command).await.unwrap();
        let entries = log.as_array().cloned().unwrap_or_default();
        let messages = entries.iter().filter_map(|entry| entry["message"].as_str());
        let page_errors = messages.filter(|text| text.contains("Uncaught") || text.contains("Content Security Policy"));
        page_errors.map(str::to_owned).collect()
    }

    /// Checks that the page threw nothing and broke no policy, then closes the browser and chromedriver.
    pub async fn close(mut self) {
        let errors = self.page_errors().await;
        assert!(errors.is_empty(), "the page's console has errors: {errors:#?}");
        let _ = self.client.clone().close().await;
        let _ = self.driver.child.kill();
        let _ = self.driver.child.wait();
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&self, expression: &str) -> Value {
        let script = format!("return ({expression});");
        self.client.execute(&script, vec![]).await.unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    /// The value of an async JavaScript expression (a promise) in the page.
    pub async fn eval_async(&self, expression: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1]; \
             Promise.resolve().then(async () => ({expression})).then(done, (e) => done({{error: String(e)}}));"
        );
        self.client.execute_async(&script, vec![]).await.unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    /// Waits until a JavaScript expression is truthy and answers its value; fails with `what` and the page's
    /// text when it does not become so.
    pub async fn wait(&self, what: &str, expression: &str) -> Value {
        self.wait_for(what, expression, PATIENCE).await
    }

    pub async fn wait_for(&self, what: &str, expression: &str, patience: Duration) -> Value {
        let deadline = Instant::now() + patience;
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText").await;
                panic!(
                    "waited {patience:?} for {what} ({expression}); the page says:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A real click (WebDriver's: the element must be visible and not covered).
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("{css}: {error}"));
        element.click().await.unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    /// Types `text` into a field after emptying it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("{css}: {error}"));
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap_or_else(|error| panic!("typing into {css}: {error}"));
    }

    /// Presses keys one after the other on whatever has focus, as a keyboard would.
    pub async fn press(&self, keys: &[char]) {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for key in keys {
            actions = actions.then(KeyAction::Down { value: *key }).then(KeyAction::Up { value: *key });
        }
        self.client.perform_actions(actions).await.unwrap();
    }

    /// Types text on whatever has focus.
    pub async fn type_text(&self, text: &str) {
        self.press(&text.chars().collect::<Vec<_>>()).await;
    }

    /// Runs a DevTools command through chromedriver.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        let command = Extension { path: "goog/cdp/execute", body: json!({"cmd": cmd, "params": params}) };
        self.client.issue_cmd(command).await.unwrap_or_else(|error| panic!("{cmd}: {error}"))
    }

    /// Emulates a screen `width` wide (a phone when `mobile`).
    pub async fn emulate_width(&self, width: u32, height: u32, mobile: bool) {
        let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile});
        self.cdp("Emulation.setDeviceMetricsOverride", params).await;
    }

    /// Emulates `prefers-color-scheme` (`light` or `dark`).
    pub async fn emulate_scheme(&self, scheme: &str) {
        let params = json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]});
        self.cdp("Emulation.setEmulatedMedia", params).await;
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    /// Opens the page and signs in with `key`; answers once the list has been shown.
    pub async fn sign_in(&self, base: &str, key: &str) {
        self.goto(&format!("{base}/")).await;
        self.wait("the sign-in form", "!document.getElementById('sign-in').hidden").await;
        self.fill("#key", key).await;
        self.click("#sign-in-form button[type=submit]").await;
        self.wait("the signed-in page", "!document.getElementById('app').hidden").await;
        self.wait("the first list", "document.getElementById('list').getAttribute('aria-busy') === 'false'").await;
    }

    /// A row's field, by a download's id, as the page shows it (`state` is the row's data-state).
    pub async fn row(&self, id: &str, expression: &str) -> Value {
        self.eval(&row_expression(id, expression)).await
    }

    /// Waits until an expression of a row (`row` in it) is truthy, and answers its value.
    pub async fn wait_row(&self, what: &str, id: &str, expression: &str) -> Value {
        self.wait(what, &row_expression(id, expression)).await
    }

    /// Waits until the row of `id` shows `state`.
    pub async fn wait_row_state(&self, id: &str, state: &str) {
        self.wait(
            &format!("row {id} to be {state}"),
            &format!("document.querySelector('[data-id=\"{id}\"]')?.dataset.state === '{state}'"),
        )
        .await;
    }
}

/// `expression` evaluated with `row` bound to the list's row of download `id` (null when there is none).
fn row_expression(id: &str, expression: &str) -> String {
    format!("((row) => row && ({expression}))(document.querySelector('[data-id=\"{id}\"]'))")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether the test should save what it shot: `HAUL_SCREENSHOTS=DIR` (scripts/screenshots.sh sets it).
pub fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("HAUL_SCREENSHOTS").filter(|dir| !dir.is_empty()).map(PathBuf::from)
}
