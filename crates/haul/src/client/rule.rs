//! `haul rule add|ls|mv|rm`: an account's rules (categories) on a running server (`/v1/rules`). IDs may be
//! shortened to a unique prefix, as download IDs may.

use std::process::ExitCode;

use anyhow::bail;
use haul_api::wire::{CreateRule, Rule, RuleList, UpdateRule};
use reqwest::Method;

use super::{Client, RemoteArgs, decode, pretty, short};

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Add a rule: downloads added from then on that match every condition given (and no rule before it) go to
    /// its directory and get its priority, unless their request says otherwise.
    #[command(after_help = "Examples:\n  haul rule add --ext iso,img --directory isos --priority 5\n  \
                            haul rule add --domain example.com --directory example")]
    Add {
        /// Condition: this host (a name or an address) or any of its subdomains. Not `--host`, which names the
        /// server.
        #[arg(long, value_name = "HOST")]
        domain: Option<String>,
        /// Condition: a glob over the whole URL (`*` any run of characters, `?` one), case ignored.
        #[arg(long, value_name = "GLOB")]
        url_pattern: Option<String>,
        /// Condition: file types, comma-separated (iso,mkv), matched against the URL path's last segment and
        /// the download's file name.
        #[arg(long = "ext", value_name = "EXT,...", value_delimiter = ',')]
        extensions: Vec<String>,
        /// Effect: the directory under the server's downloads directory.
        #[arg(long, short = 'd', value_name = "DIR")]
        directory: Option<String>,
        /// Effect: the priority (higher runs first).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        priority: Option<i32>,
        /// A name to show.
        #[arg(long)]
        name: Option<String>,
        /// Where it goes among the rules, 1 first [default: last].
        #[arg(long, value_name = "N")]
        position: Option<u32>,
        /// Print the server's JSON answer instead.
        #[arg(long)]
        json: bool,
    },
    /// List the account's rules in the order they are tried.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Move a rule to POSITION (1 is tried first).
    Mv {
        /// The rule's ID, or a unique prefix of it.
        id: String,
        position: u32,
    },
    /// Remove a rule; the downloads it placed stay where they are.
    Rm {
        /// The rule's ID, or a unique prefix of it.
        id: String,
    },
}

pub async fn rule(remote: RemoteArgs, command: RuleCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    match command {
        RuleCommand::Add { domain, url_pattern, extensions, directory, priority, name, position, json } => {
            let body = CreateRule { position, name, host: domain, url_pattern, extensions, directory, priority };
            let answer = client.call_with(Method::POST, "/v1/rules", &body).await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let rule: Rule = decode(&answer, "a rule")?;
            println!("rule {} at position {}: {} → {}", rule.id, rule.position, conditions(&rule), effects(&rule));
        }
        RuleCommand::Ls { json } => {
            let answer = client.call(Method::GET, "/v1/rules").await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let list: RuleList = decode(&answer, "a rule list")?;
            if list.rules.is_empty() {
                println!("no rules; add one with haul rule add --ext iso --directory isos");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:>3}  {:<8}  {:<16}  {:<40}  EFFECTS", "#", "ID", "NAME", "CONDITIONS");
            for rule in &list.rules {
                println!(
                    "{:>3}  {:<8}  {:<16}  {:<40}  {}",
                    rule.position,
                    short(&rule.id),
                    rule.name.as_deref().unwrap_or("-"),
                    conditions(rule),
                    effects(rule)
                );
            }
        }
        RuleCommand::Mv { id, position } => {
            let rule = resolve(&client, &id).await?;
            let body = UpdateRule { name: None, position: Some(position) };
            let answer = client.call_with(Method::PATCH, &format!("/v1/rules/{}", rule.id), &body).await?;
            let moved: Rule = decode(&answer, "a rule")?;
            println!("moved rule {} to position {}", short(&moved.id), moved.position);
        }
        RuleCommand::Rm { id } => {
            let rule = resolve(&client, &id).await?;
            client.call(Method::DELETE, &format!("/v1/rules/{}", rule.id)).await?;
            println!("removed rule {} ({} → {})", short(&rule.id), conditions(&rule), effects(&rule));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `host=example.com url=*/pub/* ext=iso,img`.
fn conditions(rule: &Rule) -> String {
    let mut parts = Vec::new();
    parts.extend(rule.host.as_ref().map(|host| format!("host={host}")));
    parts.extend(rule.url_pattern.as_ref().map(|pattern| format!("url={pattern}")));
    if !rule.extensions.is_empty() {
        parts.push(format!("ext={}", rule.extensions.join(",")));
    }
    parts.join(" ")
}

/// `dir=isos priority=5`.
fn effects(rule: &Rule) -> String {
    let mut parts = Vec::new();
    parts.extend(rule.directory.as_ref().map(|directory| format!("dir={directory}")));
    parts.extend(rule.priority.map(|priority| format!("priority={priority}")));
    parts.join(" ")
}

/// The rule a full ID or a unique prefix names.
async fn resolve(client: &Client, given: &str) -> anyhow::Result<Rule> {
    let list: RuleList = decode(&client.call(Method::GET, "/v1/rules").await?, "a rule list")?;
    let given = given.trim().to_ascii_lowercase();
    let matching: Vec<Rule> = list.rules.into_iter().filter(|rule| rule.id.starts_with(&given)).collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one rule")),
        0 => bail!("no rule {given}; haul rule ls lists them"),
        n => bail!("rule ID {given} matches {n} rules; give more of it"),
    }
}
