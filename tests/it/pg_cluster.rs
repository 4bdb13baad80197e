//! A PostgreSQL server of one test's own, for the test that restarts it
//! under load: `initdb` into a temporary directory, listening on a Unix
//! socket in that directory only (no TCP port), so restarting it touches
//! neither the machine's server nor any other test. It runs as the
//! `postgres` user when the tests run as root (PostgreSQL refuses root).
//! The programs come from the machine's PostgreSQL install
//! (`/usr/lib/postgresql/<version>/bin`, or `MCP_AUTH_TEST_PG_BIN`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Initialises and starts a server; panics saying what is missing.
    pub async fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            run(tokio::process::Command::new("chown").args(["postgres:", path(dir.path())])).await;
        }
        let cluster = Cluster {
            dir,
            bin,
            as_postgres,
        };
        cluster
            .tool(
                "initdb",
                &[
                    "-D",
                    &cluster.data(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "--no-instructions",
                ],
            )
            .await;
        cluster.pg_ctl(&["start"]).await;
        cluster
    }

    /// The URL of its `postgres` database, over the socket.
    pub fn url(&self) -> String {
        let socket = url::form_urlencoded::byte_serialize(path(self.dir.path()).as_bytes())
            .collect::<String>();
        format!("postgres://postgres@{socket}/postgres")
    }

    /// Stops it the way `-m fast` does (clients disconnected, a
    /// checkpoint) and starts it again.
    pub async fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]).await;
    }

    /// Stops it as a crash would (`-m immediate`: no checkpoint, recovery
    /// from the WAL at the next start) and starts it again.
    pub async fn crash_and_start(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"]).await;
        self.pg_ctl(&["start"]).await;
    }

    fn data(&self) -> String {
        format!("{}/data", path(self.dir.path()))
    }

    /// `pg_ctl` with `args`, waiting (`-w`) until it has done them.
    async fn pg_ctl(&self, args: &[&str]) {
        let options = format!("-k {} -c listen_addresses=''", path(self.dir.path()));
        let log = format!("{}/log", path(self.dir.path()));
        let data = self.data();
        let mut all = vec!["-D", &data, "-w", "-l", &log, "-o", &options];
        all.extend_from_slice(args);
        self.tool("pg_ctl", &all).await;
    }

    async fn tool(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            tokio::process::Command::new(&program)
        };
        run(command.args(args)).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The PostgreSQL programs' folder.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MCP_AUTH_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "\n\nthe PostgreSQL restart test needs PostgreSQL's programs (initdb, pg_ctl): \
             none in /usr/lib/postgresql/*/bin; install the server package or set \
             MCP_AUTH_TEST_PG_BIN\n\n"
        )
    })
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn run(command: &mut tokio::process::Command) {
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
