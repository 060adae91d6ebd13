// The PostgreSQL fixture against the real server: databases of their own, a fast stop, a restart on the same
// port with the data kept, a kill and the crash recovery after it, several servers at once, and the server a
// test binary shares (one server, a database per test, gone with the process). Skipped (with a printed reason)
// only when no PostgreSQL binaries are on the machine and HAUL_REQUIRE_POSTGRES is not set;
// scripts/postgres-tools.sh installs them.

use std::net::{Ipv4Addr, TcpStream};
use std::time::Instant;

use haul_test_support::Postgres;

/// A server, or `None` (the reason printed) when there are no PostgreSQL binaries.
async fn server() -> Option<Postgres> {
    let started = Instant::now();
    let pg = Postgres::start().await.expect("PostgreSQL starts")?;
    eprintln!("PostgreSQL {} up on port {} in {:?}", pg.version(), pg.port(), started.elapsed());
    Some(pg)
}

fn refuses_connections(pg: &Postgres) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, pg.port())).is_err()
}

#[tokio::test]
async fn databases_answer_across_restart_and_kill() {
    let Some(mut pg) = server().await else { return };
    let a = pg.create_database("haul_a").await.expect("database a");
    let b = pg.create_database("haul-b").await.expect("database b");
    assert_eq!(a, format!("postgres://postgres@127.0.0.1:{}/haul_a", pg.port()));
    assert_eq!(b, format!("postgres://postgres@127.0.0.1:{}/haul-b", pg.port()));
    assert_eq!(pg.psql(&a, "select current_database()").await.unwrap(), "haul_a");
    assert_eq!(pg.psql(&b, "select current_database()").await.unwrap(), "haul-b");
    assert_eq!(pg.psql(&pg.url(), "select 1").await.unwrap(), "1");
    let err = pg.create_database("haul_a").await.expect_err("a database that exists");
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    pg.create_database("no spaces").await.expect_err("a name that needs quoting");

    pg.psql(&a, "create table t (n int); insert into t values (7)").await.unwrap();
    let port = pg.port();
    let started = Instant::now();
    pg.restart().await.expect("restart");
    eprintln!("restart took {:?}", started.elapsed());
    assert_eq!(pg.port(), port);
    assert!(pg.is_running());
    assert_eq!(pg.psql(&a, "select n from t").await.unwrap(), "7");
    assert_eq!(pg.psql(&b, "select 1").await.unwrap(), "1");

    // A kill leaves nothing listening; a committed row survives it (crash recovery on the restart).
    pg.psql(&a, "insert into t values (8)").await.unwrap();
    pg.kill();
    assert!(!pg.is_running());
    assert!(refuses_connections(&pg), "port {} still open after kill", pg.port());
    pg.psql(&a, "select 1").await.expect_err("a killed server does not answer");
    let started = Instant::now();
    pg.restart().await.expect("restart after kill");
    eprintln!("restart after kill took {:?}", started.elapsed());
    assert_eq!(pg.psql(&a, "select sum(n) from t").await.unwrap(), "15");
    assert!(pg.log_tail().contains("not properly shut down"), "no crash recovery in the log:\n{}", pg.log_tail());
}

#[tokio::test]
async fn stop_closes_the_port_and_keeps_the_data() {
    let Some(mut pg) = server().await else { return };
    let db = pg.create_database("kept").await.unwrap();
    pg.psql(&db, "create table t (s text); insert into t values ('here')").await.unwrap();
    let started = Instant::now();
    pg.stop().await.expect("stop");
    eprintln!("fast stop took {:?}", started.elapsed());
    assert!(!pg.is_running());
    assert!(refuses_connections(&pg));
    pg.stop().await.expect("a second stop does nothing");
    pg.restart().await.expect("start again");
    assert_eq!(pg.psql(&db, "select s from t").await.unwrap(), "here");
}

#[tokio::test]
async fn servers_in_parallel_are_separate_and_drop_removes_them() {
    let started = Instant::now();
    let (one, two, three) = tokio::join!(Postgres::start(), Postgres::start(), Postgres::start());
    let servers: Vec<Postgres> =
        [one, two, three].into_iter().filter_map(|pg| pg.expect("PostgreSQL starts")).collect();
    if servers.is_empty() {
        return;
    }
    eprintln!("three servers up in {:?}", started.elapsed());
    let ports: Vec<u16> = servers.iter().map(Postgres::port).collect();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ports:?}");
    for (i, pg) in servers.iter().enumerate() {
        let db = pg.create_database(&format!("n{i}")).await.unwrap();
        pg.psql(&db, &format!("create table mine as select {i} as i")).await.unwrap();
    }
    for (i, pg) in servers.iter().enumerate() {
        let db = pg.url_of(&format!("n{i}"));
        assert_eq!(pg.psql(&db, "select i from mine").await.unwrap(), i.to_string());
    }

    let dirs: Vec<_> = servers.iter().map(|pg| pg.data_dir().parent().unwrap().to_path_buf()).collect();
    let started = Instant::now();
    drop(servers);
    eprintln!("three servers dropped in {:?}", started.elapsed());
    for (dir, port) in dirs.iter().zip(&ports) {
        assert!(!dir.exists(), "{} is still there", dir.display());
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_err(), "port {port} still open after drop");
    }
}

#[tokio::test]
async fn the_shared_server_is_one_server_with_a_database_per_test() {
    let Some(pg) = Postgres::shared() else { return };
    let again = std::thread::spawn(|| Postgres::shared().map(Postgres::port)).join().unwrap();
    assert_eq!(again, Some(pg.port()), "another thread gets the same server");
    let one = pg.create_unique_database("the same name").await.unwrap();
    let two = pg.create_unique_database("the same name").await.unwrap();
    assert_ne!(one, two);
    assert!(one.starts_with(&format!("postgres://postgres@127.0.0.1:{}/the_same_name_", pg.port())), "{one}");
    let long = pg.create_unique_database(&"x".repeat(100)).await.expect("a long hint is cut to fit");
    for url in [&one, &two, &long] {
        assert_eq!(pg.psql(url, "select 1").await.unwrap(), "1");
    }
}

/// The shared server lives in a static, never dropped: its watchdog must take it down when the process exits,
/// even by SIGKILL. Run in a child process (this binary again, running only `shared_server_child`), which starts
/// the server, says where it is, and kills itself.
#[test]
fn the_shared_server_goes_when_its_process_is_killed() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shared_server_child", "--ignored", "--nocapture", "--test-threads=1"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running this test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|line| Some(line.split_once("shared-postgres: ")?.1)) else {
        panic!("the child said nothing about its server ({}):\n{stdout}", out.status);
    };
    if line == "none" {
        return;
    }
    let (pid, dir) = line.split_once(' ').unwrap();
    let dir = std::path::PathBuf::from(dir);
    assert!(!out.status.success(), "the child was to kill itself: {}", out.status);
    // A zombie is gone as far as the server goes (its parent is now init, which may be slow to reap it).
    let postmaster_runs = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !stat.is_empty() && !stat.contains(") Z ")
    };
    let started = Instant::now();
    while (postmaster_runs() || dir.exists()) && started.elapsed() < std::time::Duration::from_secs(15) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!("the watchdog cleaned up {:?} after the child died", started.elapsed());
    assert!(!postmaster_runs(), "postmaster {pid} still runs");
    assert!(!dir.exists(), "{} is still there", dir.display());
}

/// The child of `the_shared_server_goes_when_its_process_is_killed`; does nothing useful on its own.
#[test]
#[ignore = "run by the_shared_server_goes_when_its_process_is_killed"]
fn shared_server_child() {
    use std::io::Write;
    let Some(pg) = Postgres::shared() else {
        println!("shared-postgres: none");
        return;
    };
    let pid_file = std::fs::read_to_string(pg.data_dir().join("postmaster.pid")).unwrap();
    let pid = pid_file.lines().next().unwrap();
    println!("shared-postgres: {pid} {}", pg.data_dir().parent().unwrap().display());
    std::io::stdout().flush().unwrap();
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL).unwrap();
}
