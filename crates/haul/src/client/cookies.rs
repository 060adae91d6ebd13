//! `haul cookies import|ls|clear`: the account's cookie jar on a running server (`/v1/cookies`). Values are sent
//! once, by `import`, and never come back: `ls` shows each cookie's domain, path, flags, expiry and name.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use haul_api::wire::{CookieList, CookiesImported, Forgotten};
use reqwest::Method;

use super::{Client, RemoteArgs, decode, pretty};

#[derive(Debug, clap::Subcommand)]
pub enum CookiesCommand {
    /// Put a Netscape cookies.txt into the jar
    ///
    /// The file as a browser extension exports it, or yt-dlp and curl write it. The cookies of each domain in
    /// the file replace the jar's earlier ones of that domain; other domains' stay. A file with a line haul
    /// cannot keep is refused whole, with the line named.
    #[command(after_help = "Examples:\n  haul cookies import ~/Downloads/cookies.txt\n  \
                            haul cookies import - < cookies.txt")]
    Import {
        /// The file; - reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the jar's cookies (never their values).
    Ls {
        /// Print the server's JSON answer instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove the jar's cookies: all of them, or one domain's.
    Clear {
        /// Only this domain's cookies.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
}

pub async fn cookies(remote: RemoteArgs, command: CookiesCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    match command {
        CookiesCommand::Import { file } => {
            let body = if file.as_os_str() == "-" {
                use std::io::Read as _;
                let mut body = Vec::new();
                std::io::stdin().read_to_end(&mut body).context("cannot read cookies from standard input")?;
                body
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read the cookies file {}", file.display()))?
            };
            let answer = client.call_with_text(Method::PUT, "/v1/cookies", body).await?;
            let imported: CookiesImported = decode(&answer, "an import's result")?;
            println!("imported {} cookies for {}", imported.imported, imported.domains.join(", "));
        }
        CookiesCommand::Ls { json } => {
            let answer = client.call(Method::GET, "/v1/cookies").await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let list: CookieList = decode(&answer, "a cookie list")?;
            if list.cookies.is_empty() {
                println!("the jar is empty; haul cookies import FILE puts a browser's cookies.txt in it");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<32}  {:<16}  {:<24}  {:<20}  FLAGS", "DOMAIN", "PATH", "NAME", "EXPIRES");
            for cookie in &list.cookies {
                let domain = if cookie.subdomains { format!(".{}", cookie.domain) } else { cookie.domain.clone() };
                let expires = match cookie.expires {
                    Some(secs) => {
                        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                            .to_string()
                    }
                    None => "session".to_owned(),
                };
                let mut flags = Vec::new();
                if cookie.secure {
                    flags.push("secure");
                }
                if cookie.http_only {
                    flags.push("httponly");
                }
                println!("{domain:<32}  {:<16}  {:<24}  {expires:<20}  {}", cookie.path, cookie.name, flags.join(","));
            }
        }
        CookiesCommand::Clear { domain } => {
            let path = match &domain {
                Some(domain) => {
                    let encoded: String = url::form_urlencoded::byte_serialize(domain.as_bytes()).collect();
                    format!("/v1/cookies?domain={encoded}")
                }
                None => "/v1/cookies".to_owned(),
            };
            let answer = client.call(Method::DELETE, &path).await?;
            let forgotten: Forgotten = decode(&answer, "a count")?;
            match domain {
                Some(domain) => println!("removed {} cookies of {domain}", forgotten.removed),
                None => println!("removed {} cookies", forgotten.removed),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
