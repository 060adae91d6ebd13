//! Structured logs on stderr through `tracing`, with every line passed through [`haul_core::redact::secrets`]
//! before it is written: request spans (a URI's `?token=`, a link's `signature=`), an HTTP client's error quoting
//! a URL with a password in it, a bearer token. Done at the writer, so no log line at any level, from any
//! crate, can carry those secrets out.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// Logs go to stderr; `HAUL_LOG` (or `RUST_LOG`) overrides the level chosen by `-v`.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,haul=info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("HAUL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactedStderr).with_target(false).init();
}

/// Hands each event a buffer and writes it to stderr, secrets masked, when the event is done.
struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::with_capacity(256))
    }
}

/// One event's text; the formatter writes it in pieces, and it leaves in one piece on drop.
struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        // A log line that cannot be written has nowhere else to go.
        let _ = std::io::stderr().lock().write_all(haul_core::redact::secrets(&text).as_bytes());
    }
}
