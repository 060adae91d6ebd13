//! A real PostgreSQL server for tests: Debian's (or any) PostgreSQL binaries, a cluster made with `initdb` in a
//! temporary directory, the server on a free port of 127.0.0.1 with trust authentication and no fsync (a commit
//! still survives `kill`, which leaves the OS's cache), one database per test (`create_database`), and the
//! faults a multi-node test needs: a fast `stop`, a `restart` on the same port and data, and a `kill` (SIGKILL to
//! every server process, as in a crash).
//!
//! initdb and postgres refuse to run as root, so when the tests are root the server runs as the `postgres` user
//! (through `setpriv`, which execs, so the child is the postmaster itself); otherwise as the current user. Clients
//! (psql here, haul's pool in the tests) connect over TCP, where trust authentication lets any local user in as
//! `postgres`. Each server has its own directory and port, so tests may start several in parallel. Dropping a `Postgres` shuts the server down (immediate mode) and removes its directory.
//!
//! `start` returns `Ok(None)`, after printing why, only when no PostgreSQL binaries are found;
//! `scripts/postgres-tools.sh` installs them. With `HAUL_REQUIRE_POSTGRES=1` (CI) missing binaries are an error
//! instead, so a machine without them cannot pass the PostgreSQL tests by skipping them all.
//!
//! A test binary whose tests each need only a database of their own (not faults of the server) shares one server,
//! [`Postgres::shared`], started on first use: initdb costs about a second, a database a few milliseconds. That
//! server is never dropped (it lives in a static), so a watchdog process shuts it down and removes its directory
//! when the test process exits, however it exits.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rustix::process::{Pid, Signal};
use tempfile::TempDir;

/// Where Debian installs each PostgreSQL version's programs (`<version>/bin`).
pub const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates, and the user every URL names.
pub const SUPERUSER: &str = "postgres";
/// The environment variable that turns missing PostgreSQL binaries from a skip into an error (CI sets it to 1).
pub const REQUIRE_ENV: &str = "HAUL_REQUIRE_POSTGRES";

/// How long the server may take to accept connections after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a fast shutdown (`stop`) may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an immediate shutdown (drop) may take before the server is killed.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// How many free ports `start` tries when another process takes the one it picked before the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// A PostgreSQL server of a test's own. See the module documentation.
pub struct Postgres {
    /// The postmaster while the server runs (`None` after `stop` or `kill`).
    child: Option<Child>,
    bin: PathBuf,
    version: String,
    user: RunAs,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    /// Holds the cluster, the socket and the log; dropped (removed) after the server is down.
    dir: TempDir,
}

/// Who the server's programs run as.
#[derive(Clone, Copy, Debug)]
enum RunAs {
    /// The current user (the tests are not root).
    Current,
    /// The `postgres` user, through `setpriv` (the tests are root).
    Postgres { uid: u32, gid: u32 },
}

/// Why a spawned server did not come up.
enum SpawnError {
    /// The postmaster exited before it was ready (a taken port, a stale lock, a bad setting).
    Exited(anyhow::Error),
    /// Anything else, including a server that is still not ready after `READY_TIMEOUT` (it is killed).
    Other(anyhow::Error),
}

impl Postgres {
    /// Makes a cluster in a temporary directory and starts a server on a free port of 127.0.0.1; returns once it
    /// accepts connections (about a second, most of it initdb). `Ok(None)`, after printing the reason to stderr,
    /// only when no PostgreSQL binaries are found in `/usr/lib/postgresql/*/bin` or on `PATH`, and
    /// `HAUL_REQUIRE_POSTGRES` is not set (with it, that is an error).
    pub async fn start() -> Result<Option<Postgres>> {
        let Some((bin, version)) = find_binaries() else {
            let why = format!(
                "no PostgreSQL binaries (initdb, postgres) found in {DEBIAN_PG_ROOT}/*/bin or on PATH; \
                 scripts/postgres-tools.sh installs them"
            );
            if required() {
                bail!("{REQUIRE_ENV} is set, and {why}");
            }
            eprintln!("skipping: {why} (with {REQUIRE_ENV}=1 this is an error)");
            return Ok(None);
        };
        let user = if rustix::process::getuid().is_root() { postgres_user()? } else { RunAs::Current };
        let dir = tempfile::Builder::new().prefix("haul-pg-").tempdir().context("making a directory for PostgreSQL")?;
        if let RunAs::Postgres { uid, gid } = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("giving {} to the postgres user", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let mut pg = Postgres { child: None, bin, version, user, port: 0, data, log, dir };
        pg.initdb().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            pg.port = free_port()?;
            match pg.spawn_and_wait().await {
                Ok(()) => return Ok(Some(pg)),
                // Another process took the port between our probe and the server's bind: try another.
                Err(SpawnError::Exited(err)) if attempt < PORT_ATTEMPTS && pg.port_was_taken() => {
                    eprintln!("postgres: port {} was taken, trying another ({err:#})", pg.port);
                }
                Err(SpawnError::Exited(err) | SpawnError::Other(err)) => return Err(err),
            }
        }
    }

    /// The server shared by every test of this process, started on the first call (which blocks its thread for
    /// the second or so that takes; later calls return at once). `None` when there are no PostgreSQL binaries
    /// (the reason is printed once, by [`start`](Self::start); each caller says what it skips); panics when the
    /// server cannot start, or when binaries are missing and `HAUL_REQUIRE_POSTGRES` is set, so that every test
    /// using it fails with the reason.
    ///
    /// Its tests must not stop, restart or kill it (it is shared, so it is only lent out); each makes a database
    /// of its own with [`create_unique_database`](Self::create_unique_database). It runs until the test process
    /// exits, when a watchdog shuts it down and removes its directory (see the module documentation).
    pub fn shared() -> Option<&'static Postgres> {
        static SHARED: OnceLock<Result<Option<SharedServer>>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            // Each `#[tokio::test]` has a runtime of its own that ends with the test, so the server is started on
            // a thread and runtime of its own; nothing the running server needs belongs to either (the
            // postmaster is a `std::process::Child`).
            std::thread::Builder::new()
                .name("shared-postgres".into())
                .spawn(start_shared)
                .context("spawning a thread to start PostgreSQL")?
                .join()
                .unwrap_or_else(|_| Err(anyhow!("starting the shared PostgreSQL server panicked")))
        });
        match shared {
            Ok(Some(shared)) => Some(&shared.server),
            Ok(None) => None,
            Err(err) => panic!("the shared PostgreSQL server did not start: {err:#}"),
        }
    }

    /// Creates a database for one test, named after `hint` (a test's name: whatever is not an ASCII letter, digit
    /// or `_` becomes `_`, and only its first 48 characters count) and a number unique in this process, and
    /// returns its URL. For tests that share a server.
    pub async fn create_unique_database(&self, hint: &str) -> Result<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let hint: String =
            hint.chars().take(48).map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        self.create_database(&format!("{hint}_{number}")).await
    }

    /// The URL of the default `postgres` database: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_of(SUPERUSER)
    }

    /// The URL of database `name` on this server (whether or not it exists).
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (ASCII letters, digits, `_` and `-`) and returns its URL,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if name.is_empty() || name.len() > 63 || !valid {
            bail!("database name {name:?}: use 1 to 63 ASCII letters, digits, '_' or '-'");
        }
        self.psql(&self.url(), &format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name} on the PostgreSQL server at 127.0.0.1:{}", self.port))?;
        Ok(self.url_of(name))
    }

    /// Runs `sql` with psql (`-X -tA`, stop on the first error) against `url`, as the current user over TCP;
    /// returns what it printed, trimmed. An error carries psql's message.
    pub async fn psql(&self, url: &str, sql: &str) -> Result<String> {
        let psql = self.program("psql").unwrap_or_else(|| PathBuf::from("psql"));
        let mut cmd = Command::new(&psql);
        cmd.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null());
        let out =
            tokio::process::Command::from(cmd).output().await.with_context(|| format!("running {}", psql.display()))?;
        if !out.status.success() {
            bail!("psql {url} -c {sql:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The server's TCP port on 127.0.0.1 (the same across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL version whose programs run the server (the directory name under `/usr/lib/postgresql`,
    /// or `postgres --version`'s number for programs found on `PATH`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last few kilobytes of the server's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 4096)
    }

    /// Whether the server process is up (it was started and neither stopped nor killed, nor has it exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Shuts the server down in fast mode (SIGINT: sessions are ended, their transactions rolled back, a
    /// checkpoint is written) and waits for it; the data stays, and `restart` starts it again. Nothing to do if
    /// the server is not running.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let pid = Pid::from_child(&child);
        // Ignore errors: it may have exited on its own.
        let _ = rustix::process::kill_process(pid, Signal::INT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting for postgres")? {
                if !status.success() {
                    eprintln!("postgres: the server exited with {status} on a fast shutdown");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_server(&mut child);
                bail!(
                    "PostgreSQL did not shut down within {STOP_TIMEOUT:?} of SIGINT (killed it); log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the server again on the same port and data, stopping it first (fast) if it runs; after a `kill`,
    /// this is the server's crash recovery. Returns once it accepts connections.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        // A killed server's processes may take a moment to let go of its shared memory and lock file.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(SpawnError::Exited(err)) if Instant::now() < deadline => {
                    eprintln!("postgres: restart on port {} failed, retrying ({err:#})", self.port);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(SpawnError::Exited(err) | SpawnError::Other(err)) => {
                    return Err(err.context(format!("restarting PostgreSQL on port {}", self.port)));
                }
            }
        }
    }

    /// Kills every process of the server (SIGKILL to the postmaster and each of its children), as a crash
    /// would, and waits until they are gone: connections break, nothing is shut down cleanly. `restart` brings
    /// it back (with crash recovery). Nothing to do if the server is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_server(&mut child);
        }
    }

    /// Runs initdb: trust authentication, UTF-8, the C locale, no fsync.
    async fn initdb(&self) -> Result<()> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D").arg(&self.data).args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]);
        let started = Instant::now();
        let out = tokio::process::Command::from(cmd).output().await.context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb -D {} ({} {}) failed with {}:\n{}{}",
                self.data.display(),
                self.bin.display(),
                self.version,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tracing::debug!(elapsed = ?started.elapsed(), data = %self.data.display(), "initdb done");
        Ok(())
    }

    /// Spawns the postmaster on `self.port` and waits until it is ready (its `postmaster.pid` says so, as pg_ctl
    /// waits), or has exited, or `READY_TIMEOUT` passed (then it is killed).
    async fn spawn_and_wait(&mut self) -> Result<(), SpawnError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))
            .map_err(SpawnError::Other)?;
        let log_err = log.try_clone().context("duplicating the log's handle").map_err(SpawnError::Other)?;
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(self.dir.path())
            // Speed without lying to a crash test: a killed server's writes are in the OS's cache, so without fsync
            // they survive it (not a power cut); synchronous_commit stays on, or a commit would live in shared
            // memory only and a `kill` could lose it.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(log)
            .stderr(log_err);
        let mut child = cmd.spawn().context("spawning postgres").map_err(SpawnError::Other)?;
        let pid = child.id();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Err(SpawnError::Exited(self.exited(status))),
                Ok(None) => {}
                Err(err) => return Err(SpawnError::Other(anyhow!(err).context("waiting for postgres"))),
            }
            if self.ready(pid) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_server(&mut child);
                return Err(SpawnError::Other(anyhow!(
                    "PostgreSQL on 127.0.0.1:{} did not accept connections within {READY_TIMEOUT:?} (killed it); \
                     log:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn exited(&self, status: ExitStatus) -> anyhow::Error {
        anyhow!(
            "PostgreSQL ({}) exited with {status} before accepting connections on 127.0.0.1:{}; log:\n{}",
            self.version,
            self.port,
            self.log_tail()
        )
    }

    /// Whether `postmaster.pid` names this postmaster and says `ready` (line 8, as pg_ctl reads it).
    fn ready(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(self.data.join("postmaster.pid")) else { return false };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines.first() == Some(&pid.to_string().as_str()) && lines.get(7) == Some(&"ready")
    }

    /// Whether the log's tail says the server could not bind its port.
    fn port_was_taken(&self) -> bool {
        let tail = self.log_tail();
        let last_start = tail.rsplit("could not bind").next().unwrap_or("");
        tail.contains("could not bind") && !last_start.contains("ready to accept connections")
    }

    /// A server program (initdb, postgres), run as the `postgres` user when the tests are root, in the server's
    /// directory (the tests' working directory may be closed to that user), in the C locale.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.user {
            RunAs::Current => Command::new(path),
            RunAs::Postgres { .. } => {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--reuid", SUPERUSER, "--regid", SUPERUSER, "--init-groups", "--"]).arg(path);
                cmd
            }
        };
        cmd.current_dir(self.dir.path()).env("LC_ALL", "C").env_remove("PGDATA").stdin(Stdio::null());
        cmd
    }

    /// `program` beside initdb, if it is there.
    fn program(&self, program: &str) -> Option<PathBuf> {
        let path = self.bin.join(program);
        path.is_file().then_some(path)
    }
}

impl Drop for Postgres {
    /// Immediate shutdown (SIGQUIT), then SIGKILL to every server process if it takes longer than a few
    /// seconds; the directory goes after.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, Signal::QUIT);
        let deadline = Instant::now() + DROP_TIMEOUT;
        while let Ok(None) = child.try_wait() {
            if Instant::now() > deadline {
                kill_server(&mut child);
                break;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// [`Postgres::shared`]'s server, with the handle that keeps its watchdog waiting.
struct SharedServer {
    server: Postgres,
    /// The write end of the watchdog's stdin, never written and never closed by hand: the kernel closes it when
    /// the test process exits, and the watchdog's read then ends.
    _watchdog: ChildStdin,
}

/// Starts the shared server on a runtime of the calling thread's own, and its watchdog.
fn start_shared() -> Result<Option<SharedServer>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime to start PostgreSQL")?;
    let started = Instant::now();
    let Some(server) = runtime.block_on(Postgres::start())? else { return Ok(None) };
    let watchdog = spawn_watchdog(&server)?;
    eprintln!(
        "shared PostgreSQL {} up on port {} in {:?} ({})",
        server.version,
        server.port,
        started.elapsed(),
        server.dir.path().display()
    );
    Ok(Some(SharedServer { server, _watchdog: watchdog }))
}

/// What the watchdog runs (`sh -c WATCHDOG sh POSTMASTER_PID DIR`): it waits for end-of-file on its stdin, which
/// comes when the test process has exited, however it exited (a panic, `exit`, SIGKILL), since only that process
/// holds the pipe's write end (Rust opens pipes close-on-exec, so no other child inherits it). Then it shuts the
/// server down as `Drop` would (SIGQUIT, an immediate shutdown; SIGKILL to it and its children after 5 s) and
/// removes the directory. It ignores the terminal's signals and runs in a process group of its own, so that a
/// Ctrl-C that ends the tests does not end it before it has cleaned up. The postmaster is named by its pid; in
/// case it died and its pid was reused in the moment between the test process's exit and the watchdog's turn, it
/// is checked to be a live `postgres` process first.
const WATCHDOG: &str = r#"
trap '' INT HUP TERM QUIT PIPE
while read -r _; do :; done
pid=$1
dir=$2
alive() {
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "${state%% *}" != Z ]
}
if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
    kill -QUIT "$pid" 2>/dev/null
    waited=0
    while alive "$pid" && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        pkill -KILL -P "$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    fi
fi
rm -rf "$dir"
"#;

/// Starts the process that shuts `server` down and removes its directory once this process has exited (see
/// [`WATCHDOG`]); returns the write end of its stdin, which must be kept open until then.
fn spawn_watchdog(server: &Postgres) -> Result<ChildStdin> {
    let pid = server.child.as_ref().map(Child::id).context("the shared PostgreSQL server is not running")?;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(pid.to_string())
        .arg(server.dir.path())
        .stdin(Stdio::piped())
        // Not the test's stdout and stderr: a pipe reading those (`cargo test | tee`) would wait for the
        // watchdog too.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawning the shared PostgreSQL server's watchdog (sh)")?;
    watchdog.stdin.take().context("the watchdog's stdin")
}

/// Whether missing PostgreSQL binaries are an error: `HAUL_REQUIRE_POSTGRES` set to anything but empty, `0` or
/// `false` (as `HAUL_REQUIRE_BROWSER` is read).
fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|value| !value.is_empty() && value != "0" && value != "false")
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("version", &self.version)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with initdb and postgres, else the first directory on `PATH`
/// with both; with the version.
fn find_binaries() -> Option<(PathBuf, String)> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let newest = fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.to_string();
            let key: Vec<u32> = version.split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((key, bin, version))
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    if let Some((_, bin, version)) = newest {
        return Some((bin, version));
    }
    let bin = std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_both(dir))?;
    let out = Command::new(bin.join("postgres")).arg("--version").stdin(Stdio::null()).output().ok();
    // "postgres (PostgreSQL) 15.8" -> "15.8"
    let version = out
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().last().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    Some((bin, version))
}

/// The `postgres` user's ids, which the server runs as when the tests are root.
fn postgres_user() -> Result<RunAs> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, SUPERUSER]).stdin(Stdio::null()).output().context("running id")?;
        if !out.status.success() {
            bail!(
                "the tests run as root, which initdb refuses, and there is no `{SUPERUSER}` user to run PostgreSQL \
                 as (Debian's postgresql package creates it): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().context("reading the postgres user's id")
    };
    Ok(RunAs::Postgres { uid: id("-u")?, gid: id("-g")? })
}

/// A port of 127.0.0.1 free a moment ago (the kernel's pick for port 0).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// SIGKILL to the postmaster and to each of its children (every server process is one; the postmaster is
/// stopped first so that it forks no more), then waits until they are gone: the postmaster reaped, the children
/// (reparented, so not ours to reap) no longer running. Before the postmaster is reaped its id cannot be reused.
fn kill_server(child: &mut Child) {
    let pid = Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, Signal::STOP);
    let children = children_of(pid);
    for &p in children.iter().chain([&pid]) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
    }
    let _ = child.wait();
    // A killed process lets go of the server's shared memory when it exits; that takes a moment at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    while children.iter().any(|&p| running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid, pgrp, ...
fn proc_stat(pid: &str) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    Some(stat.rsplit_once(')')?.1.to_string())
}

/// The processes whose parent is `parent` (none when `/proc` cannot be read).
fn children_of(parent: Pid) -> Vec<Pid> {
    let parent = parent.as_raw_nonzero().get().to_string();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let raw: i32 = name.parse().ok()?;
            let stat = proc_stat(&name)?;
            (stat.split_whitespace().nth(1) == Some(parent.as_str())).then(|| Pid::from_raw(raw)).flatten()
        })
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: Pid) -> bool {
    proc_stat(&pid.as_raw_nonzero().get().to_string())
        .is_some_and(|stat| !matches!(stat.split_whitespace().next(), Some("Z" | "X" | "x")))
}

/// The last `max` bytes of file `path` (from a line start), or a note that it cannot be read.
fn tail(path: &Path, max: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(match text.split_once('\n') {
            Some((_, rest)) if len > max => rest.to_string(),
            _ => text,
        })
    };
    read().unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()))
}
