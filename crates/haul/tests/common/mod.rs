//! What the tests of the `haul` binary share: `haul serve` started on a free port of 127.0.0.1 (allowed to fetch
//! from loopback origins), and where it says it listens.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `haul serve --listen 127.0.0.1:0 --allow-net 127.0.0.1/32 --data-dir DIR EXTRA...`, with stdout piped for the
/// banner, no stdin, and no `HAUL_LOG` from the test's environment. Start it, then read [`banner`].
pub fn serve_command(data_dir: &Path, extra: &[&str]) -> Command {
    serve_command_on(data_dir, "127.0.0.1:0", extra)
}

/// [`serve_command`] listening on `listen` (`ADDR:PORT`), for a server whose port must be known before it starts:
/// a node that gives other nodes its `--advertise-url`.
pub fn serve_command_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
    command
        .args(["serve", "--listen", listen, "--allow-net", "127.0.0.1/32", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("HAUL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
}

/// The first `lines` lines of a started server's banner (its stdout is taken).
pub fn banner(child: &mut Child, lines: usize) -> Vec<String> {
    let mut reader = BufReader::new(child.stdout.take().expect("the server's stdout is piped"));
    (0..lines)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect()
}

/// The base URL in the banner's first line (`haul listening on http://127.0.0.1:PORT ...`).
pub fn base_of(first_line: &str) -> String {
    let base = first_line.split_whitespace().find(|word| word.starts_with("http://")).expect(first_line);
    base.trim_end_matches('/').to_owned()
}

/// A started server's base URL, from the first line of its banner.
pub fn listening(child: &mut Child) -> String {
    base_of(&banner(child, 1)[0])
}

/// The API token a data directory holds.
pub fn token_of(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("token")).unwrap().trim().to_owned()
}

/// `METHOD BASE+PATH` with the token and an optional JSON body: the status and the JSON answer (null when none).
pub async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}
