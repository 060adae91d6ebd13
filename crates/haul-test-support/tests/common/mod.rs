//! What the origin's test files share: the `haul-origin` binary started as a benchmark script starts it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `haul-origin` with `args`, returning the process and the base URL it printed.
pub fn spawn_origin(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haul-origin")).args(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, base)
}
