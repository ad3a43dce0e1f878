//! A PostgreSQL cluster of the test's own, which it can stop and start: for outages.
//!
//! The server binaries come from `PG_BIN_DIR` (set by `scripts/test`) or Debian's
//! `/usr/lib/postgresql/<version>/bin`. As root, the cluster runs as the `postgres` user, as
//! PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::free_port;

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// A new cluster in a fresh directory, started on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let bin = server_binaries();
        let dir = std::env::temp_dir().join(format!(
            "idnow-attempts-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).expect("the cluster directory is created");
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let cluster = Self {
            dir,
            bin,
            port: free_port(),
        };
        run(cluster
            .as_owner("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
                "-D",
            ])
            .arg(cluster.data_dir()));
        cluster.start_again();
        cluster
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server as an operator's `pg_ctl stop -m fast` does: sessions are ended.
    pub fn stop(&self) {
        run(self
            .as_owner("pg_ctl")
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(self.data_dir()));
    }

    /// Starts the server again, on the same port, and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.data_dir().display()
        );
        run(self
            .as_owner("pg_ctl")
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.data_dir().join("server.log"))
            .arg("-D")
            .arg(self.data_dir()));
    }

    fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn as_owner(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(
            self.as_owner("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .output(),
        );
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

fn server_binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect(
        "PostgreSQL's server binaries (initdb, pg_ctl): set PG_BIN_DIR, or run ./scripts/test, \
         which installs them",
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(output.status.success(), "{command:?}: {output:?}");
}
