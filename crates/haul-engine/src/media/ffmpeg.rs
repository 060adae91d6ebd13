//! What haul asks of ffmpeg and ffprobe: what a file holds, merging a video and an audio stream into mp4,
//! taking the audio out as m4a (copied when it is AAC, encoded otherwise), and a frame as a thumbnail.

use std::path::Path;

use haul_core::media::AudioFormat;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::process::{command, run};
use crate::error::EngineError;

/// What ffprobe says about a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Probed {
    pub(crate) duration: Option<f64>,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) has_video: bool,
    /// The first audio stream's codec (`aac`, `opus`), if there is audio.
    pub(crate) audio_codec: Option<String>,
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// Cover art in an audio file is a "video" stream with this disposition.
    #[serde(default)]
    disposition: std::collections::HashMap<String, u8>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

pub(crate) async fn probe(ffprobe: &Path, file: &Path, cancel: &CancellationToken) -> Result<Probed, EngineError> {
    let mut cmd = command(ffprobe);
    cmd.args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"]).arg(file);
    let finished = run(cmd, "ffprobe", true, cancel, |_| {}).await?;
    let output: ProbeOutput = serde_json::from_str(&finished.stdout)
        .map_err(|error| EngineError::Media(format!("ffprobe printed something unreadable: {error}")))?;
    let video = output.streams.iter().find(|stream| {
        stream.codec_type.as_deref() == Some("video") && stream.disposition.get("attached_pic") != Some(&1)
    });
    let audio = output.streams.iter().find(|stream| stream.codec_type.as_deref() == Some("audio"));
    Ok(Probed {
        duration: output.format.and_then(|format| format.duration).and_then(|text| text.parse().ok()),
        width: video.and_then(|stream| stream.width),
        height: video.and_then(|stream| stream.height),
        has_video: video.is_some(),
        audio_codec: audio.and_then(|stream| stream.codec_name.clone()),
    })
}

/// `video`'s picture and `audio`'s sound in one file of container `ext` (mp4, webm or mkv), without
/// re-encoding.
pub(crate) async fn merge(
    ffmpeg: &Path,
    video: &Path,
    audio: &Path,
    ext: &str,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let mut cmd = command(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(video)
        .arg("-i")
        .arg(audio)
        .args(["-map", "0:v:0", "-map", "1:a:0", "-c", "copy"])
        .args(muxer_of(ext).unwrap_or(&["-movflags", "+faststart", "-f", "mp4"]))
        .arg(out);
    run(cmd, "ffmpeg (merging video and audio)", false, cancel, |_| {}).await.map(drop)
}

/// The first audio stream of `input` as m4a: copied when it is AAC (no quality lost, seconds for hours of
/// audio), encoded to AAC otherwise. `on_percent` hears how far it is (0-100) when the duration is known.
pub(crate) async fn to_m4a(
    ffmpeg: &Path,
    input: &Path,
    audio_codec: &str,
    duration: Option<f64>,
    out: &Path,
    cancel: &CancellationToken,
    on_percent: impl FnMut(f64),
) -> Result<(), EngineError> {
    to_audio(ffmpeg, input, audio_codec, AudioFormat::M4a, duration, out, cancel, on_percent).await
}

/// How ffmpeg writes `format` from a stream in `audio_codec`: the codec arguments (the stream copied when it
/// already is what the format holds) and the muxer, named because `out` may not end in the format's extension.
fn audio_arguments(format: AudioFormat, audio_codec: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match format {
        AudioFormat::M4a if audio_codec == "aac" => (&["-c:a", "copy"], &["-movflags", "+faststart", "-f", "ipod"]),
        // `ipod` is ffmpeg's name for the m4a container.
        AudioFormat::M4a => (&["-c:a", "aac", "-b:a", "192k"], &["-movflags", "+faststart", "-f", "ipod"]),
        AudioFormat::Mp3 if audio_codec == "mp3" => (&["-c:a", "copy"], &["-f", "mp3"]),
        AudioFormat::Mp3 => (&["-c:a", "libmp3lame", "-b:a", "192k"], &["-f", "mp3"]),
        AudioFormat::Opus if audio_codec == "opus" => (&["-c:a", "copy"], &["-f", "ogg"]),
        AudioFormat::Opus => (&["-c:a", "libopus", "-b:a", "128k"], &["-f", "ogg"]),
        AudioFormat::Flac => (&["-c:a", "flac"], &["-f", "flac"]),
        AudioFormat::Wav => (&["-c:a", "pcm_s16le"], &["-f", "wav"]),
    }
}

/// The first audio stream of `input` in `format` (see [`audio_arguments`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn to_audio(
    ffmpeg: &Path,
    input: &Path,
    audio_codec: &str,
    format: AudioFormat,
    duration: Option<f64>,
    out: &Path,
    cancel: &CancellationToken,
    mut on_percent: impl FnMut(f64),
) -> Result<(), EngineError> {
    let (codec, muxer) = audio_arguments(format, audio_codec);
    let mut cmd = command(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-y", "-i"])
        .arg(input)
        .args(["-vn", "-map", "0:a:0"])
        .args(codec)
        .args(muxer)
        .arg(out);
    let total_us = duration.filter(|seconds| *seconds > 0.0).map(|seconds| seconds * 1_000_000.0);
    run(cmd, "ffmpeg (taking out the audio)", false, cancel, |line| {
        if let (Some(total), Some(done)) = (total_us, line.strip_prefix("out_time_us="))
            && let Ok(done) = done.trim().parse::<f64>()
        {
            on_percent((done / total * 100.0).clamp(0.0, 99.9));
        }
    })
    .await
    .map(drop)
}

/// ffmpeg's muxer (and its options) for a file extension haul writes; `None` for one it does not know.
fn muxer_of(ext: &str) -> Option<&'static [&'static str]> {
    Some(match ext {
        "mp4" => &["-movflags", "+faststart", "-f", "mp4"],
        "m4a" => &["-movflags", "+faststart", "-f", "ipod"],
        "webm" => &["-f", "webm"],
        "mkv" => &["-f", "matroska"],
        "mp3" => &["-id3v2_version", "3", "-f", "mp3"],
        "opus" | "ogg" => &["-f", "ogg"],
        "flac" => &["-f", "flac"],
        _ => return None,
    })
}

/// What goes into a finished file besides its streams.
pub(crate) struct Embed<'a> {
    /// ffmpeg's metadata file (tags and chapters), see `haul_core::media_choice::ffmetadata`.
    pub(crate) metadata: Option<&'a Path>,
    /// A JPEG or PNG as cover art.
    pub(crate) cover: Option<&'a Path>,
    /// Subtitle files with their language.
    pub(crate) subtitles: &'a [(String, std::path::PathBuf)],
}

/// `input` (a file in container `ext`) with `embed` added, streams copied, as `out`. Returns what was left out
/// and why (cover art or subtitles a container cannot hold). `Ok(None)` when nothing could be added at all.
pub(crate) async fn embed(
    ffmpeg: &Path,
    ffprobe: &Path,
    input: &Path,
    ext: &str,
    embed: &Embed<'_>,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<Option<Vec<String>>, EngineError> {
    let Some(muxer) = muxer_of(ext) else { return Ok(None) };
    let mut skipped = Vec::new();
    let cover = match (embed.cover, haul_core::media_choice::cover_art_support(ext)) {
        (Some(cover), Ok(())) => Some(cover),
        (Some(_), Err(why)) => {
            skipped.push(format!("cover art: {why}"));
            None
        }
        (None, _) => None,
    };
    let subtitle_codec = match ext {
        "mp4" => Some("mov_text"),
        "webm" => Some("webvtt"),
        "mkv" => Some("srt"),
        _ => None,
    };
    let subtitles: &[(String, std::path::PathBuf)] = match subtitle_codec {
        Some(_) => embed.subtitles,
        None if embed.subtitles.is_empty() => &[],
        None => {
            skipped.push(format!("subtitles: {ext} holds no subtitle streams"));
            &[]
        }
    };
    if embed.metadata.is_none() && cover.is_none() && subtitles.is_empty() {
        return Ok(None);
    }
    let probed = probe_counts(ffprobe, input, cancel).await?;
    let mut cmd = command(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-i"]).arg(input);
    let mut next_input = 1;
    let metadata_input = embed.metadata.map(|metadata| {
        cmd.arg("-i").arg(metadata);
        next_input += 1;
        next_input - 1
    });
    // Matroska keeps a cover as an attachment (an output option, given after the inputs), not a stream.
    let attachment = cover.filter(|_| ext == "mkv");
    let cover_input = match (cover, ext) {
        (Some(_), "mkv") => None,
        (Some(cover), _) => {
            cmd.arg("-i").arg(cover);
            next_input += 1;
            Some(next_input - 1)
        }
        (None, _) => None,
    };
    let first_subtitle = next_input;
    for (_, path) in subtitles {
        cmd.arg("-i").arg(path);
    }
    if let Some(cover) = attachment {
        let png = cover.extension().is_some_and(|ext| ext == "png");
        let mimetype = if png { "mimetype=image/png" } else { "mimetype=image/jpeg" };
        cmd.arg("-attach").arg(cover).args(["-metadata:s:t:0", mimetype]);
    }
    // The file's own streams (never an old cover: a new one replaces it), then the cover, then subtitles.
    cmd.args(["-map", "0:V?", "-map", "0:a?", "-c", "copy"]);
    if let Some(index) = metadata_input {
        cmd.args(["-map_metadata", &index.to_string(), "-map_chapters", &index.to_string()]);
    }
    if let Some(index) = cover_input {
        let out_index = probed.video + probed.audio;
        cmd.args(["-map", &format!("{index}:v:0")]);
        cmd.args([format!("-disposition:{out_index}"), "attached_pic".to_owned()]);
        if ext == "mp3" {
            cmd.args([format!("-metadata:s:{out_index}"), "comment=Cover (front)".to_owned()]);
        }
    }
    for (offset, (lang, _)) in subtitles.iter().enumerate() {
        let index = first_subtitle + offset;
        cmd.args(["-map", &format!("{index}:s:0")]);
        // A language tag the container keeps (three letters), and the page's name as the track's title.
        if let Some(code) = haul_core::media_choice::iso639_2(lang) {
            cmd.args([format!("-metadata:s:s:{offset}"), format!("language={code}")]);
        }
        cmd.args([format!("-metadata:s:s:{offset}"), format!("title={lang}")]);
    }
    if let Some(codec) = subtitle_codec
        && !subtitles.is_empty()
    {
        cmd.args(["-c:s", codec]);
    }
    cmd.args(muxer).arg(out);
    run(cmd, "ffmpeg (embedding metadata)", false, cancel, |_| {}).await?;
    Ok(Some(skipped))
}

/// How many streams of each kind a file has (a cover picture not counted as video).
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    video: usize,
    audio: usize,
}

async fn probe_counts(ffprobe: &Path, file: &Path, cancel: &CancellationToken) -> Result<Counts, EngineError> {
    let mut cmd = command(ffprobe);
    cmd.args(["-v", "error", "-print_format", "json", "-show_streams"]).arg(file);
    let finished = run(cmd, "ffprobe", true, cancel, |_| {}).await?;
    let output: ProbeOutput = serde_json::from_str(&finished.stdout)
        .map_err(|error| EngineError::Media(format!("ffprobe printed something unreadable: {error}")))?;
    let mut counts = Counts::default();
    for stream in &output.streams {
        match stream.codec_type.as_deref() {
            Some("video") if stream.disposition.get("attached_pic") != Some(&1) => counts.video += 1,
            Some("audio") => counts.audio += 1,
            _ => {}
        }
    }
    Ok(counts)
}

/// One frame of `video`, `at` seconds in, as a JPEG.
pub(crate) async fn frame(
    ffmpeg: &Path,
    video: &Path,
    at: f64,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let mut cmd = command(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-ss", &format!("{at:.2}"), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-q:v", "3", "-f", "image2", "-c:v", "mjpeg"])
        .arg(out);
    run(cmd, "ffmpeg (grabbing a thumbnail)", false, cancel, |_| {}).await.map(drop)
}

/// Any image ffmpeg reads (a page's gif or avif thumbnail) as a JPEG.
pub(crate) async fn to_jpeg(
    ffmpeg: &Path,
    image: &Path,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    frame(ffmpeg, image, 0.0, out, cancel).await
}
