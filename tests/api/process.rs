//! The real binary as a separate process, as an operator runs it: environment in, JSON log
//! lines out, signals to stop it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sqlx::PgPool;

use crate::helpers::{binary, database_url, test_environment, TestApp};

/// How long a start may take before the test gives up: the binary only connects lazily, so
/// this is the time to bind the port and, with migrations on, to migrate.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ServiceProcess {
    /// `None` once waited for.
    child: Option<Child>,
    /// Requests go here; the database is the test's own.
    pub app: TestApp,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
    /// The log lines read so far, each one JSON.
    pub log: Vec<String>,
}

impl ServiceProcess {
    /// Starts `idnow-attempts serve` on the test's database and a free port, with the test
    /// secrets and keys, and waits until it logs that it listens. `environment` adds to or
    /// overrides the variables.
    pub fn start(pool: &PgPool, environment: &[(&str, &str)]) -> Self {
        Self::start_on(&database_url(&pool.connect_options()), pool, environment)
    }

    /// As [`ServiceProcess::start`], on the database at `url`, which `pool` also reaches.
    pub fn start_on(url: &str, pool: &PgPool, environment: &[(&str, &str)]) -> Self {
        Self::start_with_arguments(url, pool, &["serve"], environment)
    }

    /// As [`ServiceProcess::start_on`], the binary given `arguments` (`serve`, or none).
    pub fn start_with_arguments(
        url: &str,
        pool: &PgPool,
        arguments: &[&str],
        environment: &[(&str, &str)],
    ) -> Self {
        let secrets = test_environment();
        let mut child = binary()
            .args(arguments)
            .env("DATABASE_URL", url)
            .env("PORT", "0")
            .env("IDNOW_WEBHOOK_SECRETS", &secrets["IDNOW_WEBHOOK_SECRETS"])
            .env("API_KEYS", &secrets["API_KEYS"])
            .env(
                "PAYLOAD_ENCRYPTION_KEYS",
                &secrets["PAYLOAD_ENCRYPTION_KEYS"],
            )
            .envs(environment.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");

        let (lines_tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let port = loop {
            let line = lines
                .recv_timeout(START_TIMEOUT)
                .expect("the service logs that it listens");
            let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            log.push(line);
            if event["message"] == "listening" {
                break event["port"].as_u64().expect("the port is logged");
            }
        };
        Self {
            child: Some(child),
            app: TestApp {
                address: format!("http://127.0.0.1:{port}"),
                db: pool.clone(),
                client: reqwest::Client::new(),
                server: None,
                database: None,
            },
            lines,
            reader: Some(reader),
            log,
        }
    }

    pub fn port(&self) -> u16 {
        self.app.port()
    }

    /// The resident set size of the process now, from `/proc`.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("the process runs").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("the process' status is readable");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }

    /// The CPU time the process has used so far (user and system), from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.as_ref().expect("the process runs").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .expect("the process' stat is readable");
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 12th and 13th, in clock ticks of USER_HZ, which Linux
        // reports as 100 a second whatever the kernel's own tick.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("a stat line")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_millis(ticks * 10)
    }

    /// The next log line, waiting for it up to `timeout` while the process runs; `None` when
    /// none came.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.log.push(line.clone());
        Some(line)
    }

    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the process runs");
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        kill(Pid::from_raw(pid), signal).expect("the signal is delivered");
    }

    /// Waits for the process to end; returns how it ended and its whole log.
    pub async fn wait(mut self) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("waited for once");
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("the waiting thread ends")
            .expect("the process is waited for");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader ends with the process");
        }
        let mut log = std::mem::take(&mut self.log);
        log.extend(self.lines.try_iter());
        (status, log)
    }
}

impl Drop for ServiceProcess {
    /// A failed test must not leave a server running.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            drop(child.kill());
            drop(child.wait());
        }
    }
}
