//! `haul account` and `haul key` on a real data directory: names are unique, secrets are shown once in each
//! API's shape and never stored, and revoked keys are marked.

use std::path::Path;
use std::process::{Command, Output};

fn haul(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haul")).args(args).arg("--data-dir").arg(data_dir).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn accounts_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = haul(data, &["account", "add", "alice", "--email", "alice@example.com"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let id = stdout(&added).split_whitespace().next().unwrap().to_owned();
    assert_eq!(id.len(), 32, "account ids are 32 lowercase hex: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    let again = haul(data, &["account", "add", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    let listed = stdout(&haul(data, &["account", "ls"]));
    assert!(listed.contains("alice") && listed.contains("default"), "{listed}");

    let videodb = haul(data, &["key", "create", "--account", "alice", "--kind", "videodb"]);
    assert!(videodb.status.success(), "{}", stderr(&videodb));
    let secret = stdout(&videodb).trim().to_owned();
    assert!(secret.starts_with("sk-") && secret.len() > 40, "{secret}");
    let global = stdout(&haul(data, &["key", "create", "--account", "alice", "--kind", "cloudflare-global"]));
    assert_eq!(global.trim().len(), 37, "Cloudflare global keys are 37 hex characters: {global}");

    let keys = stdout(&haul(data, &["key", "ls"]));
    assert!(keys.contains("videodb") && keys.contains("alice"), "{keys}");
    assert!(!keys.contains(&secret), "secrets are never shown again");
    let db = std::fs::read(data.join("haul.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "only a hash of the secret is stored");

    let key_id = keys.lines().find(|line| line.contains("videodb")).unwrap().split_whitespace().next().unwrap();
    let revoked = haul(data, &["key", "revoke", &key_id[..8]]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let keys = stdout(&haul(data, &["key", "ls"]));
    assert!(keys.lines().any(|line| line.contains("videodb") && line.contains("revoked")), "{keys}");

    for (args, expected) in [
        (vec!["key", "create", "--account", "nobody"], "no account named"),
        (vec!["key", "create", "--account", "alice", "--kind", "admin"], "bearer, videodb, cloudflare-global"),
        (vec!["key", "revoke", "zzzzzzzz"], "not found"),
    ] {
        let output = haul(data, &args);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn management_commands_never_make_a_data_directory_where_none_was_meant() {
    let home = tempfile::tempdir().unwrap();
    let nowhere = home.path().join("missing");
    for args in [vec!["token"], vec!["account", "ls"], vec!["key", "ls"], vec!["account", "add", "bob"]] {
        let output = haul(&nowhere, &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains(&format!("no haul data directory at {}", nowhere.display())), "{message}");
        assert!(message.contains("haul serve") && message.contains("--data-dir"), "{message}");
        assert!(!nowhere.exists(), "{args:?} made {}", nowhere.display());
    }
    // The platform's directory, when none is given: looked for there, not made.
    let output = Command::new(env!("CARGO_BIN_EXE_haul"))
        .arg("token")
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("HAUL_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let default = home.path().join(".local/share/haul");
    assert!(stderr(&output).contains(&default.display().to_string()), "{}", stderr(&output));
    assert!(!default.exists());
    // A directory of something else is not taken over.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "mine").unwrap();
    let output = haul(other.path(), &["account", "ls"]);
    assert!(stderr(&output).contains("is not a haul data directory"), "{}", stderr(&output));
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 1);
}
