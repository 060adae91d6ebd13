//! How `haul ls` draws downloads for people: the table with its columns and bars, and the one-download view.

use std::fmt::Write as _;
use std::time::Duration;

use haul_api::wire::{Download, DownloadList};
use haul_core::job::{JobKind, JobState};
use haul_core::media::Quality;
use haul_core::units::{format_bytes, format_duration, format_rate};

use super::short;

/// The download table: ID, STATE, PROGRESS, (a bar when watching,) SIZE, SPEED, ETA, (NODE,) NAME; a failed or
/// cancelled download's NAME is followed by why. NODE (which node runs it, or holds its file) appears when the
/// downloads shown involve more than one node.
pub fn render_table(list: &DownloadList, with_bar: bool) -> String {
    let downloads = &list.downloads;
    if downloads.is_empty() {
        return "no downloads\n".to_owned();
    }
    let nodes: std::collections::BTreeSet<&str> =
        downloads.iter().filter_map(|download| download.node.as_deref()).collect();
    let with_node = nodes.len() > 1;
    let mut header = vec!["ID", "STATE", "PROGRESS"];
    if with_bar {
        header.push("");
    }
    header.extend(["SIZE", "SPEED", "ETA"]);
    if with_node {
        header.push("NODE");
    }
    header.push("NAME");
    let mut rows: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for download in downloads {
        let mut row = vec![short(&download.id.to_string()).to_owned(), download.state.to_string(), percent(download)];
        if with_bar {
            row.push(bar(fraction(download)));
        }
        row.extend([size_text(download), speed_text(download), eta_text(download)]);
        if with_node {
            row.push(download.node.clone().unwrap_or_else(|| "-".to_owned()));
        }
        row.push(name_and_reason(download));
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                // Numbers right-aligned, words left-aligned.
                let right = matches!(rows[0][c].as_str(), "PROGRESS" | "SIZE" | "SPEED" | "ETA");
                let pad = widths[c] - cell.chars().count();
                if right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if list.total > downloads.len() as u64 {
        let _ = writeln!(out, "({} of {} shown; raise --limit for more)", downloads.len(), list.total);
    }
    out
}

/// One download, field by field.
pub fn render_detail(download: &Download) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{name:<12}{value}");
    };
    field("id", &download.id.to_string());
    field("state", download.state.as_str());
    field("name", &name(download));
    field("url", &download.url);
    if let Some(node) = &download.node {
        field("node", node);
    }
    for mirror in &download.mirrors {
        field("mirror", mirror);
    }
    if let Some(directory) = &download.directory {
        field("directory", directory);
    }
    if download.kind == JobKind::Media || download.quality != Quality::Best {
        let mut media = format!("{} ({})", download.kind, download.quality);
        if let (Some(width), Some(height)) = (download.width, download.height) {
            media.push_str(&format!(", {width}x{height}"));
        }
        if let Some(duration) = download.duration {
            // From the server (and from yt-dlp before it): a NaN or an absurd value is left out, never a panic.
            if let Ok(duration) = Duration::try_from_secs_f64(duration) {
                media.push_str(&format!(", {}", format_duration(duration)));
            }
        }
        if let Some(format) = &download.format {
            media.push_str(&format!(", formats {format}"));
        }
        field("media", &media);
    }
    for subtitle in &download.subtitle_files {
        field("subtitles", &format!("{} ({})", subtitle.name, subtitle.lang));
    }
    if let Some(title) = &download.title {
        field("title", title);
    }
    if let Some(playlist) = &download.playlist {
        let mut entries = format!(
            "{} entries: {} completed, {} failed, {} cancelled",
            playlist.entries, playlist.completed, playlist.failed, playlist.cancelled
        );
        if let Some(items) = &playlist.items {
            entries.push_str(&format!(" (items {items})"));
        }
        field("playlist", &format!("{entries}; haul ls --parent {}", download.id));
    }
    if let (Some(parent), Some(index)) = (download.parent, download.playlist_index) {
        field("playlist", &format!("entry {index} of {parent}"));
    }
    let done = format_bytes(download.bytes_done);
    let progress = match download.size {
        Some(size) => format!("{} {} of {} {}", percent(download), done, format_bytes(size), bar(fraction(download))),
        None => format!("{done} (size unknown)"),
    };
    field("progress", &progress);
    if download.state == JobState::Active {
        field("speed", &speed_text(download));
        if let Some(eta) = download.eta_secs {
            field("eta", &format_duration(Duration::from_secs(eta)));
        }
        field("connections", &download.connections.to_string());
    }
    if download.priority != 0 {
        field("priority", &download.priority.to_string());
    }
    if let Some(checksum) = &download.checksum {
        field("checksum", checksum);
    }
    if let Some(error) = &download.error {
        field("error", error);
    }
    out
}

/// Time left while running with a known size, else empty.
pub(super) fn eta_text(download: &Download) -> String {
    match download.eta_secs {
        Some(secs) if download.state == JobState::Active => format_duration(Duration::from_secs(secs)),
        _ => String::new(),
    }
}

/// The name, and for a download that failed or was cancelled, why (on one line: an error's line breaks are
/// spaces here).
fn name_and_reason(download: &Download) -> String {
    let name = name(download);
    match (&download.error, download.state) {
        (Some(error), JobState::Failed | JobState::Cancelled) => {
            let reason: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{name}  ({reason})")
        }
        _ => name,
    }
}

/// The file name once chosen, else the URL.
pub fn name(download: &Download) -> String {
    download.filename.clone().unwrap_or_else(|| download.url.clone())
}

/// Fraction done, when the size is known.
pub(super) fn fraction(download: &Download) -> Option<f64> {
    if download.state == JobState::Completed {
        return Some(1.0);
    }
    match download.size {
        Some(0) => Some(0.0),
        Some(size) => Some((download.bytes_done as f64 / size as f64).clamp(0.0, 1.0)),
        None => None,
    }
}

pub(super) fn percent(download: &Download) -> String {
    match fraction(download) {
        // Floor, so 99.9% does not read as done.
        Some(fraction) => format!("{}%", (fraction * 100.0).floor() as u32),
        None => "-".to_owned(),
    }
}

pub(super) fn size_text(download: &Download) -> String {
    match download.size {
        Some(size) => format_bytes(size),
        None if download.bytes_done > 0 => format!("{}+", format_bytes(download.bytes_done)),
        None => "-".to_owned(),
    }
}

pub(super) fn speed_text(download: &Download) -> String {
    if download.state == JobState::Active { format_rate(download.speed as f64) } else { "-".to_owned() }
}

const BAR_WIDTH: usize = 20;

fn bar(fraction: Option<f64>) -> String {
    bar_of(fraction, BAR_WIDTH)
}

/// `[####------]` with `inner` characters between the brackets; blank when the size is unknown.
pub(super) fn bar_of(fraction: Option<f64>, inner: usize) -> String {
    match fraction {
        Some(fraction) => {
            let filled = ((fraction * inner as f64).floor() as usize).min(inner);
            format!("[{}{}]", "#".repeat(filled), "-".repeat(inner - filled))
        }
        None => format!("[{}]", " ".repeat(inner)),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A download as the server sends it, with the fields the table reads given and the rest empty (the watch
    /// view's tests use it too).
    pub(in crate::client) fn download(
        id: &str,
        state: JobState,
        filename: Option<&str>,
        size: Option<u64>,
        done: u64,
    ) -> Download {
        Download {
            id: id.parse().unwrap(),
            url: format!("http://h/{}", &id[..1]),
            mirrors: Vec::new(),
            kind: JobKind::File,
            title: None,
            quality: Quality::Best,
            duration: None,
            width: None,
            height: None,
            format: None,
            has_thumbnail: false,
            state,
            priority: 0,
            filename: filename.map(str::to_owned),
            directory: None,
            path: None,
            size,
            bytes_done: done,
            speed: if state == JobState::Active { 2048 } else { 0 },
            eta_secs: None,
            connections: 0,
            error: None,
            checksum: None,
            headers: Default::default(),
            connections_limit: None,
            speed_limit: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            node: None,
            parent: None,
            playlist_index: None,
            playlist: None,
            name_template: None,
            media_options: Default::default(),
            subtitle_files: Vec::new(),
        }
    }

    #[test]
    fn table_shows_progress_and_falls_back_to_the_url() {
        let list = DownloadList {
            downloads: vec![
                download("3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Active, None, Some(1024), 512),
                download("00000000-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Queued, Some("b.iso"), None, 0),
            ],
            total: 3,
            next: None,
        };
        let table = render_table(&list, true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID") && lines[0].ends_with("NAME"), "{table}");
        assert!(lines[1].starts_with("3f2a5c1e  active") && lines[1].contains("50%"), "{table}");
        assert!(lines[1].contains("2.0 KiB/s") && lines[1].ends_with("http://h/3"), "{table}");
        assert!(lines[1].contains("[##########----------]"), "{table}");
        assert!(lines[2].ends_with("b.iso"), "{table}");
        assert!(lines[3].contains("2 of 3"), "{table}");
    }

    #[test]
    fn detail_names_a_media_download_and_its_quality() {
        let mut video = download("3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Completed, Some("v.mp4"), None, 9);
        video.kind = JobKind::Media;
        video.quality = Quality::Height(480);
        (video.width, video.height, video.format) = (Some(640), Some(360), Some("360p".to_owned()));
        let shown = render_detail(&video);
        assert!(shown.contains("media (480p), 640x360, formats 360p"), "{shown}");
        assert!(shown.lines().any(|line| line == "state       completed"), "{shown}");
        // A plain file at the default quality has no media line.
        let file = download("3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Paused, None, Some(10), 5);
        assert!(!render_detail(&file).contains("media"), "{}", render_detail(&file));
    }

    #[test]
    fn node_column_appears_when_downloads_involve_more_than_one_node() {
        let mut one = download("3f2a5c1e-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Active, Some("a.bin"), None, 0);
        let mut two = download("00000000-8b7d-4c2a-9e1f-0a1b2c3d4e5f", JobState::Completed, Some("b.bin"), None, 9);
        one.node = Some("node-a".to_owned());
        two.node = Some("node-a".to_owned());
        let list = |downloads| DownloadList { downloads, total: 2, next: None };
        let single = render_table(&list(vec![one.clone(), two.clone()]), false);
        assert!(!single.contains("NODE") && !single.contains("node-a"), "one node, no column: {single}");
        two.node = Some("node-b".to_owned());
        let table = render_table(&list(vec![one.clone(), two]), false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("ETA  NODE") && lines[0].ends_with("NAME"), "{table}");
        assert!(lines[1].contains("node-a  a.bin") && lines[2].contains("node-b  b.bin"), "{table}");
        assert!(render_detail(&one).lines().any(|line| line == "node        node-a"), "{}", render_detail(&one));
    }
}
