//! `haul-origin`: runs the test origin as a standalone process, for benchmark scripts.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use haul_test_support::{Origin, OriginOptions, TlsMode, file_seed, parse_byte_size};

/// A dev-only HTTP origin serving deterministic files at /data/SIZE/NAME, with fault knobs.
///
/// With --tls it serves HTTPS with a certificate for localhost and 127.0.0.1 issued by a test CA made at
/// start; --write-ca saves that CA for clients to trust.
///
/// Sizes and rates accept K/M/G suffixes (powers of 1024), e.g. 512K, 1.5M, 40M.
#[derive(Debug, Parser)]
#[command(name = "haul-origin", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bytes/s for each response body.
    #[arg(long, value_parser = parse_byte_size)]
    per_connection_rate: Option<u64>,
    /// Delay before the response headers of every GET/HEAD, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Bytes/s shared by all responses.
    #[arg(long, value_parser = parse_byte_size)]
    aggregate_rate: Option<u64>,
    /// Cap on concurrent in-flight responses; beyond it: 503 with Retry-After: 1.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Cap on concurrent in-flight responses to one client IP address; beyond it: 503 with Retry-After: 1
    /// (clients on other addresses are still served). GET /stats shows each address's counts under "clients".
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Fraction (0..=1) of connections paced at the per-connection rate / slow factor.
    #[arg(long, default_value_t = 0.0)]
    slow_fraction: f64,
    /// Divisor of the rate of slow connections (base 1 MiB/s without --per-connection-rate).
    #[arg(long, default_value_t = 10.0)]
    slow_factor: f64,
    /// Fraction (0..=1) of bodies cut mid-body (connection aborted).
    #[arg(long, default_value_t = 0.0)]
    cut_fraction: f64,
    /// Ignore Range/If-Range and never advertise Accept-Ranges.
    #[arg(long)]
    no_range: bool,
    /// Answer HEAD with 405.
    #[arg(long)]
    reject_head: bool,
    /// Declare N more bytes than are sent in HEAD and 200 responses.
    #[arg(long, default_value_t = 0)]
    length_lie: u64,
    /// Seed mixed into every file's content and ETag.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the SHA-256 of /data/SIZE/NAME (version 0, with --seed) and exit.
    #[arg(long, num_args = 2, value_names = ["SIZE", "NAME"])]
    print_sha256: Option<Vec<String>>,
    /// Serve HTTPS (TLS 1.2/1.3, ALPN http/1.1) with a certificate for localhost and 127.0.0.1 issued by a
    /// test CA made at start; the printed URL is https://.
    #[arg(long)]
    tls: bool,
    /// Write the test CA's certificate (PEM) to FILE before printing the listening line, for clients to
    /// trust (haul get --ca-cert, curl --cacert, aria2c --ca-certificate, SSL_CERT_FILE).
    #[arg(long, value_name = "FILE", requires = "tls")]
    write_ca: Option<PathBuf>,
}

impl Args {
    fn options(&self) -> OriginOptions {
        OriginOptions {
            seed: self.seed,
            per_connection_rate: self.per_connection_rate,
            first_byte_latency: Duration::from_millis(self.latency_ms),
            aggregate_rate: self.aggregate_rate,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            slow_fraction: self.slow_fraction,
            slow_factor: self.slow_factor,
            cut_fraction: self.cut_fraction,
            no_range: self.no_range,
            reject_head: self.reject_head,
            length_lie: self.length_lie,
            tls: self.tls.then_some(TlsMode::Valid),
        }
    }
}

/// Resolves on SIGINT or SIGTERM (the ways a benchmark script stops the origin).
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = args.options();

    if let Some(sha_args) = &args.print_sha256 {
        let [size, name] = sha_args.as_slice() else {
            anyhow::bail!("--print-sha256 takes SIZE and NAME");
        };
        let size = parse_byte_size(size).map_err(anyhow::Error::msg)?;
        let seed = file_seed(options.seed, size, name, 0);
        println!("{}", haul_test_support::expected_sha256(seed, size));
        return Ok(());
    }

    // Logs go to stderr: stdout carries only the "listening on" line that scripts parse.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let origin = Origin::start_on(args.listen, options).await.context("starting the origin")?;
    if let (Some(path), Some(pem)) = (&args.write_ca, origin.ca_pem()) {
        std::fs::write(path, pem).with_context(|| format!("writing the CA certificate to {}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", origin.base_url())?;
        out.flush()?;
    }
    terminated().await;
    origin.shutdown().await;
    Ok(())
}
