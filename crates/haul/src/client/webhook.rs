//! `haul webhook add|ls|rm|deliveries`: an account's webhooks on a running server (`/v1/webhooks`). IDs may be
//! shortened to a unique prefix, as download IDs may.

use std::process::ExitCode;

use anyhow::bail;
use haul_api::wire::{CreateWebhook, CreatedWebhook, DeliveryList, Webhook, WebhookList};
use reqwest::Method;

use super::{Client, RemoteArgs, decode, pretty, short};

#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Send the account's download events to URL, signed; prints the signing secret once.
    Add {
        /// Where events are POSTed (http or https).
        url: String,
        /// An event to send (added, started, paused, resumed, retried, completed, failed, cancelled, removed);
        /// repeatable [default: all].
        #[arg(long = "event", short = 'e', value_name = "EVENT")]
        events: Vec<String>,
        /// The signing secret [default: a generated whsec_... one].
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
        /// Print the server's JSON answer instead.
        #[arg(long)]
        json: bool,
    },
    /// List the account's webhooks.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove a webhook; its deliveries not yet made are dropped.
    Rm {
        /// The webhook's ID, or a unique prefix of it.
        id: String,
    },
    /// A webhook's deliveries, newest first, with their attempts and the last answer.
    Deliveries {
        /// The webhook's ID, or a unique prefix of it.
        id: String,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn webhook(remote: RemoteArgs, command: WebhookCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    match command {
        WebhookCommand::Add { url, events, secret, json } => {
            let events = (!events.is_empty()).then_some(events);
            let body = CreateWebhook { url, events, secret };
            let answer = client.call_with(Method::POST, "/v1/webhooks", &body).await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let created: CreatedWebhook = decode(&answer, "a webhook")?;
            println!(
                "webhook {} sends {} to {}",
                created.webhook.id,
                created.webhook.events.join(","),
                created.webhook.url
            );
            println!("secret: {}", created.secret);
            println!("(shown only now; receivers verify Haul-Signature with it)");
        }
        WebhookCommand::Ls { json } => {
            let answer = client.call(Method::GET, "/v1/webhooks").await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let list: WebhookList = decode(&answer, "a webhook list")?;
            if list.webhooks.is_empty() {
                println!("no webhooks; add one with haul webhook add URL");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<8}  {:<40}  URL", "ID", "EVENTS");
            for webhook in &list.webhooks {
                println!("{:<8}  {:<40}  {}", short(&webhook.id), webhook.events.join(","), webhook.url);
            }
        }
        WebhookCommand::Rm { id } => {
            let webhook = resolve(&client, &id).await?;
            client.call(Method::DELETE, &format!("/v1/webhooks/{}", webhook.id)).await?;
            println!("removed webhook {} ({})", short(&webhook.id), webhook.url);
        }
        WebhookCommand::Deliveries { id, limit, json } => {
            let webhook = resolve(&client, &id).await?;
            let path = format!("/v1/webhooks/{}/deliveries?limit={limit}", webhook.id);
            let answer = client.call(Method::GET, &path).await?;
            if json {
                println!("{}", pretty(&answer));
                return Ok(ExitCode::SUCCESS);
            }
            let list: DeliveryList = decode(&answer, "a delivery list")?;
            println!(
                "{:<8}  {:<9}  {:<8}  {:<9}  {:>8}  {:>6}  ERROR",
                "DELIVERY", "EVENT", "DOWNLOAD", "STATE", "ATTEMPTS", "STATUS"
            );
            for delivery in &list.deliveries {
                let status = delivery.last_status.map_or_else(|| "-".to_owned(), |status| status.to_string());
                println!(
                    "{:<8}  {:<9}  {:<8}  {:<9}  {:>8}  {:>6}  {}",
                    short(&delivery.id),
                    delivery.event.as_str(),
                    short(&delivery.download.to_string()),
                    delivery.state,
                    delivery.attempts,
                    status,
                    delivery.last_error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The webhook a full ID or a unique prefix names.
async fn resolve(client: &Client, given: &str) -> anyhow::Result<Webhook> {
    let list: WebhookList = decode(&client.call(Method::GET, "/v1/webhooks").await?, "a webhook list")?;
    let given = given.trim().to_ascii_lowercase();
    let matching: Vec<Webhook> = list.webhooks.into_iter().filter(|webhook| webhook.id.starts_with(&given)).collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one webhook")),
        0 => bail!("no webhook {given}; haul webhook ls lists them"),
        n => bail!("webhook ID {given} matches {n} webhooks; give more of it"),
    }
}
