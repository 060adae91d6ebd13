//! `haul formats URL`: what a video page offers, as `yt-dlp -F` lists it, and which formats each `--quality`
//! would download, so a user can choose before adding.

use std::process::ExitCode;

use anyhow::Context as _;
use haul_core::media::{Format, Quality, select};
use haul_core::units::format_bytes;

use crate::cli::FormatsArgs;

pub async fn run(args: FormatsArgs) -> anyhow::Result<ExitCode> {
    let tools = crate::cli::media_tools(args.yt_dlp.clone(), None)?;
    let cancel = haul_engine::CancellationToken::new();
    let info = haul_engine::media_formats(&tools, &args.url, &[], args.cookies.as_deref(), &cancel)
        .await
        .with_context(|| format!("cannot read the formats of {}", args.url))?;
    if args.json {
        let formats: Vec<serde_json::Value> = info.formats.iter().map(format_json).collect();
        let out = serde_json::json!({"title": info.title, "duration": info.duration, "formats": formats});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&info.title, &info.formats));
    Ok(ExitCode::SUCCESS)
}

fn format_json(format: &Format) -> serde_json::Value {
    serde_json::json!({
        "id": format.format_id,
        "ext": format.ext,
        "width": format.width,
        "height": format.height,
        "vcodec": format.vcodec,
        "acodec": format.acodec,
        "tbr": format.tbr,
        "filesize": format.size(),
    })
}

fn codec(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("?")
}

fn table(title: &Option<String>, formats: &[Format]) -> String {
    let mut out = String::new();
    if let Some(title) = title {
        out.push_str(&format!("{title}\n\n"));
    }
    let rows: Vec<[String; 7]> = formats
        .iter()
        .map(|format| {
            let resolution = match (format.width, format.height) {
                (Some(width), Some(height)) => format!("{width}x{height}"),
                (None, Some(height)) => format!("{height}p"),
                _ if format.has_video() => "?".to_owned(),
                _ => "audio only".to_owned(),
            };
            [
                format.format_id.clone(),
                format.ext.clone().unwrap_or_else(|| "?".into()),
                resolution,
                codec(&format.vcodec).to_owned(),
                codec(&format.acodec).to_owned(),
                format.size().map(format_bytes).unwrap_or_else(|| "?".into()),
                format.tbr.map(|tbr| format!("{tbr:.0}k")).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "EXT", "RESOLUTION", "VCODEC", "ACODEC", "SIZE", "BITRATE"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|row| row[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out.push_str("\nhaul downloads, by --quality:\n");
    for quality in [
        Quality::Best,
        Quality::Height(1080),
        Quality::Height(720),
        Quality::Height(480),
        Quality::Worst,
        Quality::Audio,
    ] {
        let picked = match select(formats, quality) {
            Ok(selection) => selection.format_spec(),
            Err(error) => format!("nothing ({})", error.0),
        };
        out.push_str(&format!("  {:<7} {picked}\n", quality.to_string()));
    }
    out
}
