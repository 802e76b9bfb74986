//! Test support shared by the integration tests: fresh databases on both
//! backends, the real binary spawned on a random port, and polling.
#![allow(dead_code)]

pub mod alerts;
pub mod canary;
mod daemon;
pub mod llama;
pub mod metrics;
pub mod otel;
mod wait;
pub mod web_data;

pub use daemon::TestDaemon;
pub use wait::{wait_until, wait_until_blocking};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs `cmd` to completion: `Err` with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// For what a test installs from the network (PyPI): the value, or `None`
/// after a loud skip message; under `CI=true` a missing piece fails.
pub fn or_skip<T>(what: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("cannot install {what}: {e}")
        }
        Err(e) => {
            // Straight to the process's stderr: libtest captures `eprintln!`
            // of a passing test, and a skip must not be quiet.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPING: cannot install {what}: {e}\n"
            );
            None
        }
    }
}

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_canaryd"))
}

/// The PostgreSQL server the tests use: `$CANARYD_TEST_POSTGRES_URL`, else
/// the local default. Set `CANARYD_REQUIRE_POSTGRES=1` (CI does) to make an
/// unreachable server a failure instead of a loudly reported skip.
pub fn pg_admin_url() -> String {
    std::env::var("CANARYD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_required() -> bool {
    std::env::var("CANARYD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A database created for one test and dropped with it.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb {
            url,
            backend: "sqlite",
            admin_url: None,
            name: String::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a loud message) when no
    /// server is reachable and CI did not require one.
    pub async fn postgres() -> Option<TestDb> {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                if postgres_required() {
                    panic!(
                        "PostgreSQL is required (CANARYD_REQUIRE_POSTGRES=1) but unreachable at {admin}: {e}"
                    );
                }
                eprintln!(
                    "\n*** SKIPPING PostgreSQL half of this test: cannot connect to {admin}: {e}\n*** set CANARYD_TEST_POSTGRES_URL, or CANARYD_REQUIRE_POSTGRES=1 to fail instead\n"
                );
                return None;
            }
        };
        let name = format!("canaryd_test_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = replace_db(&admin, &name);
        Some(TestDb {
            url,
            backend: "postgres",
            admin_url: Some(admin),
            name,
            _dir: None,
        })
    }

    /// Both backends: SQLite always, PostgreSQL when reachable (or required).
    pub async fn all() -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite().await];
        if let Some(pg) = TestDb::postgres().await {
            v.push(pg);
        }
        v
    }
}

/// A PostgreSQL test database is dropped with its `TestDb`, also when the
/// test panics, so failed runs leave no `canaryd_test_*` databases behind.
/// `Drop` cannot await, and a test's runtime may be the current thread, so
/// the `DROP DATABASE` runs on a thread with a runtime of its own.
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.admin_url.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{db}?{q}"),
        None => format!("{host}/{db}"),
    }
}

/// Writes `files` (relative path, content) under a fresh directory.
pub fn write_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// Runs the binary to completion with `args`, returning (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("CANARYD_CONFIG")
        .env_remove("CANARYD_DATABASE_URL")
        .envs(envs.iter().copied())
        .output()
        .expect("run canaryd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A spawned long-running process (`serve`, `sim`) killed on drop.
pub struct Spawned {
    pub child: Child,
    /// The `http://host:port` it printed.
    pub base_url: String,
    pub stderr_path: PathBuf,
    _logs: tempfile::TempDir,
}

impl Spawned {
    /// Starts the binary and waits until it prints `listening on http://ADDR`.
    pub fn start(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> Spawned {
        let logs = tempfile::tempdir().expect("tempdir");
        let stderr_path = logs.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .env_remove("CANARYD_CONFIG")
            .env_remove("CANARYD_DATABASE_URL")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn canaryd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !sent && let Some(i) = line.find("http://") {
                            let _ = tx.send(line[i..].trim().to_string());
                            sent = true;
                        }
                    }
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("canaryd {args:?} did not report its address; stderr:\n{log}");
            }
        };
        Spawned {
            child,
            base_url,
            stderr_path,
            _logs: logs,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until stderr contains `needle` and returns the log then.
    pub fn wait_log(&self, needle: &str, within: Duration) -> String {
        let what = format!("`{needle}` in the log");
        wait_until_blocking(&what, within, Duration::from_millis(100), || {
            let log = self.stderr();
            if log.contains(needle) {
                Ok(log)
            } else {
                Err(format!("log:\n{log}"))
            }
        })
    }

    /// Sends a signal by name (TERM, HUP, KILL) with the system `kill`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
