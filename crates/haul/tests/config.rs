//! The config file as a user writes it: found in the platform's config directory (or named with --config), its
//! keys the long flags, the command line and the environment winning over it, and clear errors for a key or
//! value it cannot take. `haul config` says where each setting came from.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `haul ARGS` with `home` as the home directory and no HAUL_* settings from the test's environment.
fn haul(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haul"));
    command.args(args).env("HOME", home).stdin(Stdio::null());
    for variable in ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "HAUL_CONFIG", "HAUL_DATA_DIR", "HAUL_LISTEN", "HAUL_LOG"] {
        command.env_remove(variable);
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(home: &Path, content: &str) -> std::path::PathBuf {
    let dir = home.join(".config/haul");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn haul_config_says_where_each_setting_comes_from() {
    let home = tempfile::tempdir().unwrap();
    let path = write_config(home.path(), "listen = \"127.0.0.1:1888\"\nmax-active = 5\nallow-net = [\"10.0.0.0/8\"]\n");
    let output = run(haul(home.path(), &["config"]).env("HAUL_MAX_JOBS_PER_ACCOUNT", "50"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    assert!(shown.starts_with(&format!("# config file: {}", path.display())), "{shown}");
    for line in [
        "listen = \"127.0.0.1:1888\"  # config file",
        "max-active = \"5\"  # config file",
        "allow-net = \"10.0.0.0/8\"  # config file",
        "header-timeout = \"10\"  # default",
    ] {
        assert!(shown.lines().any(|shown| shown == line), "{line} in:\n{shown}");
    }
    let data = home.path().join(".local/share/haul");
    assert!(shown.contains(&format!("data-dir = \"{}\"  # default", data.display())), "{shown}");
    // The environment wins over the file.
    let output = run(haul(home.path(), &["config"]).env("HAUL_LISTEN", "127.0.0.1:1999"));
    assert!(text(&output.stdout).contains("listen = \"127.0.0.1:1999\"  # environment (HAUL_LISTEN)"));
    // Without a file, everything is a default and the output says so.
    let empty = tempfile::tempdir().unwrap();
    let shown = text(&run(&mut haul(empty.path(), &["config"])).stdout);
    assert!(shown.lines().next().unwrap().contains("none there"), "{shown}");
    assert!(shown.contains("listen = \"127.0.0.1:1700\"  # default"), "{shown}");
}

#[test]
fn the_server_runs_with_the_files_settings_and_the_command_line_wins() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("srv-data");
    std::fs::create_dir(&data).unwrap();
    write_config(
        home.path(),
        &format!("listen = \"127.0.0.1:1\"\ndata-dir = \"{}\"\nmax-active = 2\nui = \"off\"\n", data.display()),
    );
    let mut child = haul(home.path(), &["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("haul listening on http://127.0.0.1:"), "{line}");
    assert!(!line.contains("127.0.0.1:1 "), "the command line's --listen wins: {line}");
    assert!(line.contains(&format!("data in {}", data.display())), "the file's data-dir: {line}");
    assert!(data.join("haul.db").is_file());
}

#[test]
fn keys_and_values_the_file_cannot_hold_are_errors_that_name_them() {
    let home = tempfile::tempdir().unwrap();
    for (content, expected) in [
        ("colour = \"red\"\n", "unknown key \"colour\" in the config file"),
        ("listen = \n", "is not valid TOML"),
        ("no-resume = \"yes\"\n", "no-resume in"),
        ("allow-net = [{a = 1}]\n", "must be text, a number or a list"),
    ] {
        let path = write_config(home.path(), content);
        let output = run(&mut haul(home.path(), &["serve"]));
        assert_eq!(output.status.code(), Some(2), "{content}: {}", text(&output.stderr));
        let message = text(&output.stderr);
        assert!(message.contains(expected), "{content}: {message}");
        if expected.starts_with("unknown") {
            assert!(message.contains(&path.display().to_string()) && message.contains("max-active"), "{message}");
        }
    }
    // A value clap refuses is refused as if it were typed.
    write_config(home.path(), "max-active = \"lots\"\n");
    let output = run(&mut haul(home.path(), &["serve"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--max-active"), "{}", text(&output.stderr));
    // A file named with --config must exist.
    let output = run(&mut haul(home.path(), &["--config", "/nonexistent/haul.toml", "ls"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read the config file /nonexistent/haul.toml"));
}
