//! The config file: `$XDG_CONFIG_HOME/haul/config.toml` (else `~/.config/haul/config.toml`), or `--config FILE`
//! / `HAUL_CONFIG`. Its keys are the long flags of haul's commands, written as in the flag:
//!
//! ```toml
//! listen = "0.0.0.0:1700"
//! data-dir = "/srv/haul"
//! downloads-dir = "/srv/files"
//! max-active = 5
//! allow-net = ["10.0.0.0/8"]
//! ```
//!
//! A key applies to every command that has that flag (`data-dir` to `serve`, `token`, `ls`, ...; `max-active` to
//! `serve` alone). What the command line says wins, then the environment (`HAUL_LISTEN`, ...), then the file,
//! then the default: the file's values go in as flags only where neither of the first two gave one, so clap
//! checks them as it checks a typed flag. `haul config` prints the effective settings and where each came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;
use clap::parser::ValueSource;

use crate::cli::Cli;

/// Where the config file is looked for when neither `--config` nor `HAUL_CONFIG` names one.
pub fn default_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|dirs| dirs.config_dir().join("haul").join("config.toml"))
}

/// A loaded config file: its path and its keys.
#[derive(Debug, Default)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub values: BTreeMap<String, toml::Value>,
}

impl Config {
    /// The file named by `--config` or `HAUL_CONFIG` (which must exist), else the default one if it exists.
    pub fn load(args: &[OsString]) -> anyhow::Result<Self> {
        let named = named_path(args).or_else(|| std::env::var_os("HAUL_CONFIG").map(PathBuf::from));
        let (path, required) = match named {
            Some(path) => (path, true),
            None => match default_path() {
                Some(path) => (path, false),
                None => return Ok(Self::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self { path: Some(path), values: BTreeMap::new() });
            }
            Err(error) => return Err(error).with_context(|| format!("cannot read the config file {}", path.display())),
        };
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("the config file {} is not valid TOML", path.display()))?;
        let known = known_keys();
        for key in table.keys() {
            if !known.contains(key.as_str()) {
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                bail!(
                    "unknown key {key:?} in the config file {}; keys are the long flags of haul's commands: {}",
                    path.display(),
                    names.join(", ")
                );
            }
        }
        Ok(Self { path: Some(path), values: table.into_iter().collect() })
    }

    /// The command line with the file's values put in, as flags, where the command takes them and neither
    /// the command line nor the environment already set them. Also answers which keys went in.
    pub fn apply(&self, args: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
        if self.values.is_empty() {
            return Ok((args, Vec::new()));
        }
        // A first parse to learn the command and what was given; a command line clap refuses is left for the
        // real parse to report.
        let Ok(matches) = Cli::command().try_get_matches_from(&args) else { return Ok((args, Vec::new())) };
        let Some((name, sub)) = matches.subcommand() else { return Ok((args, Vec::new())) };
        let command = Cli::command();
        let Some(definition) = command.find_subcommand(name) else { return Ok((args, Vec::new())) };
        let mut added = Vec::new();
        let mut inserted: Vec<OsString> = Vec::new();
        let path = self.path.as_deref().unwrap_or(Path::new("config"));
        for argument in definition.get_arguments().chain(command.get_arguments()) {
            let Some(long) = argument.get_long() else { continue };
            let Some(value) = self.values.get(long) else { continue };
            let id = argument.get_id().as_str();
            let given = sub
                .try_contains_id(id)
                .ok()
                .filter(|contained| *contained)
                .and_then(|_| sub.value_source(id))
                .is_some_and(|source| matches!(source, ValueSource::CommandLine | ValueSource::EnvVariable));
            if given || added.iter().any(|key: &String| key == long) {
                continue;
            }
            let takes_values = argument.get_action().takes_values();
            match (value, takes_values) {
                (toml::Value::Boolean(true), false) => inserted.push(format!("--{long}").into()),
                (toml::Value::Boolean(false), false) => {}
                (_, false) => bail!("{long} in {} is a switch: write {long} = true or false", path.display()),
                (toml::Value::Array(items), true) => {
                    for item in items {
                        inserted.push(format!("--{long}").into());
                        inserted.push(scalar(long, item, path)?.into());
                    }
                }
                (item, true) => {
                    inserted.push(format!("--{long}").into());
                    inserted.push(scalar(long, item, path)?.into());
                }
            }
            added.push(long.to_owned());
        }
        // Right after the command's name (its flags may come anywhere after it).
        let at = args.iter().position(|arg| arg.to_str() == Some(name)).map_or(args.len(), |at| at + 1);
        let mut out = args;
        out.splice(at..at, inserted);
        Ok((out, added))
    }
}

/// A TOML value as a flag's text.
fn scalar(key: &str, value: &toml::Value, path: &Path) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        other => {
            bail!("{key} in {} must be text, a number or a list of them, not {}", path.display(), other.type_str())
        }
    })
}

/// `--config FILE` or `--config=FILE` on the command line, before clap has parsed it.
fn named_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_str()?;
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Every long flag of every command.
fn known_keys() -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    let command = Cli::command();
    for sub in command.get_subcommands() {
        for argument in sub.get_arguments().chain(command.get_arguments()) {
            if let Some(long) = argument.get_long()
                && !["help", "version", "config"].contains(&long)
            {
                keys.insert(long.to_owned());
            }
        }
    }
    keys
}

/// `haul config`: the settings `haul serve` would run with here, and where each comes from.
pub fn print(config: &Config, args: Vec<OsString>) -> anyhow::Result<()> {
    match &config.path {
        Some(path) if path.is_file() => println!("# config file: {}", path.display()),
        Some(path) => {
            println!("# config file: {} (none there; every value is a default or from the environment)", path.display())
        }
        None => println!("# config file: none (no home directory)"),
    }
    // `haul serve` as it would be parsed here: the environment and the file, nothing on the command line.
    let base: Vec<OsString> = vec![args.first().cloned().unwrap_or_else(|| "haul".into()), "serve".into()];
    let (serve_args, from_file) = config.apply(base)?;
    let matches = Cli::command().try_get_matches_from(&serve_args).context("the config file's values")?;
    let Some((_, sub)) = matches.subcommand() else { return Ok(()) };
    let command = Cli::command();
    let Some(serve) = command.find_subcommand("serve") else { return Ok(()) };
    for argument in serve.get_arguments().chain(command.get_arguments()) {
        let Some(long) = argument.get_long() else { continue };
        if ["help", "version", "config"].contains(&long) {
            continue;
        }
        let id = argument.get_id().as_str();
        let values: Vec<String> = sub
            .get_raw(id)
            .map(|raw| raw.map(|value| value.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = if from_file.iter().any(|key| key == long) {
            "config file".to_owned()
        } else {
            match sub.value_source(id) {
                Some(ValueSource::EnvVariable) => {
                    format!("environment ({})", argument.get_env().map(|env| env.to_string_lossy()).unwrap_or_default())
                }
                Some(ValueSource::DefaultValue) => "default".to_owned(),
                _ if values.is_empty() => "not set".to_owned(),
                _ => "command line".to_owned(),
            }
        };
        let shown = match values.as_slice() {
            [] if !argument.get_action().takes_values() => {
                (sub.get_flag(id) || from_file.iter().any(|key| key == long)).to_string()
            }
            [] => "(none)".to_owned(),
            [one] => format!("{one:?}"),
            many => format!("[{}]", many.iter().map(|value| format!("{value:?}")).collect::<Vec<_>>().join(", ")),
        };
        println!("{long} = {shown}  # {source}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config {
            path: Some(PathBuf::from("test.toml")),
            values: toml::from_str::<toml::Table>(text).unwrap().into_iter().collect(),
        }
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn values_go_in_only_where_the_command_line_gave_none() {
        let file = config(
            "listen = \"0.0.0.0:1800\"\nmax-active = 7\nallow-net = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nno-resume = true\n",
        );
        let (args, added) = file.apply(os(&["haul", "serve", "--max-active", "2"])).unwrap();
        let text: Vec<&str> = args.iter().map(|arg| arg.to_str().unwrap()).collect();
        assert!(text.windows(2).any(|pair| pair == ["--listen", "0.0.0.0:1800"]), "{text:?}");
        assert!(!text.contains(&"7"), "the command line's --max-active wins: {text:?}");
        assert!(text.contains(&"--no-resume") && text.contains(&"192.168.0.0/16"), "{text:?}");
        assert!(added.contains(&"listen".to_owned()) && !added.contains(&"max-active".to_owned()));
        // A command without the flag is left alone.
        let (args, added) = file.apply(os(&["haul", "ls"])).unwrap();
        assert_eq!(args, os(&["haul", "ls"]));
        assert!(added.is_empty());
    }

    #[test]
    fn a_switch_takes_a_boolean() {
        let file = config("no-resume = \"yes\"");
        let error = file.apply(os(&["haul", "serve"])).unwrap_err().to_string();
        assert!(error.contains("is a switch"), "{error}");
    }

    #[test]
    fn the_config_flag_is_found_before_parsing() {
        assert_eq!(named_path(&os(&["haul", "serve", "--config", "/x.toml"])), Some(PathBuf::from("/x.toml")));
        assert_eq!(named_path(&os(&["haul", "--config=/y.toml", "ls"])), Some(PathBuf::from("/y.toml")));
        assert_eq!(named_path(&os(&["haul", "serve"])), None);
    }
}
