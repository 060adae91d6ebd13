//! `haul limit`: a running server's bandwidth settings (`GET` / `PATCH /v1/settings`).

use std::process::ExitCode;

use haul_api::wire::Settings;
use haul_core::units::format_rate;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Client, RemoteArgs, decode, pretty};

#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// The new limit for every download together (e.g. 10M, 500K), or off; with --for HOST, that host's.
    #[arg(value_name = "RATE|off", value_parser = parse_rate_or_off)]
    pub rate: Option<RateOrOff>,

    /// Set the limit of the downloads from this host (the host of the URLs added) instead of the server's.
    #[arg(long = "for", value_name = "HOST", requires = "rate")]
    pub for_host: Option<String>,

    /// A new schedule: rules DAYS HH:MM-HH:MM RATE|unlimited|pause separated by ';'; off removes it.
    #[arg(long, value_name = "RULES")]
    pub schedule: Option<String>,

    /// Print the server's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// A limit as the command line takes it: a rate, or no limit.
#[derive(Clone, Copy, Debug)]
pub struct RateOrOff(pub Option<u64>);

/// A rate, or `off` (also `none`, `unlimited`, 0) for no limit.
pub fn parse_rate_or_off(text: &str) -> Result<RateOrOff, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "unlimited" | "0" => Ok(RateOrOff(None)),
        _ => haul_core::units::parse_rate(text).map(|rate| RateOrOff(Some(rate))).map_err(|error| error.to_string()),
    }
}

pub async fn limit(remote: RemoteArgs, args: LimitArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&remote)?;
    let mut patch = Map::new();
    match (&args.for_host, args.rate) {
        (Some(host), Some(RateOrOff(rate))) => {
            patch.insert("host_limits".into(), json!({ host: rate }));
        }
        (None, Some(RateOrOff(rate))) => {
            patch.insert("speed_limit".into(), json!(rate));
        }
        _ => {}
    }
    if let Some(schedule) = &args.schedule {
        let off = matches!(schedule.trim(), "off" | "none" | "");
        patch.insert("schedule".into(), if off { Value::Null } else { json!(schedule) });
    }
    let answer = if patch.is_empty() {
        client.call(Method::GET, "/v1/settings").await?
    } else {
        client.call_with(Method::PATCH, "/v1/settings", &patch).await?
    };
    if args.json {
        println!("{}", pretty(&answer));
        return Ok(ExitCode::SUCCESS);
    }
    let settings: Settings = decode(&answer, "the settings")?;
    print!("{}", summary(&settings));
    Ok(ExitCode::SUCCESS)
}

fn rate(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |rate| format_rate(rate as f64))
}

fn summary(settings: &Settings) -> String {
    let mut out = format!("speed limit  {}\n", rate(settings.speed_limit));
    for (host, limit) in &settings.host_limits {
        out.push_str(&format!("host limit   {host}  {}\n", rate(Some(*limit))));
    }
    out.push_str(&format!("schedule     {}\n", settings.schedule.as_deref().unwrap_or("none")));
    let now = if settings.now.paused_by_schedule {
        "the queue is paused by the schedule".to_owned()
    } else {
        rate(settings.now.speed_limit)
    };
    let rule = settings.now.rule.as_deref().map(|rule| format!(" (schedule: {rule})")).unwrap_or_default();
    out.push_str(&format!("now          {now}{rule}\n"));
    out
}
