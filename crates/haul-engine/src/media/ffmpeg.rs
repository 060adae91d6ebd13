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

/// `video`'s picture and `audio`'s sound in one mp4, without re-encoding.
pub(crate) async fn merge(
    ffmpeg: &Path,
    video: &Path,
    audio: &Path,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let mut cmd = command(ffmpeg);
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(video)
        .arg("-i")
        .arg(audio)
        .args(["-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4"])
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
