//! The PostgreSQL peers of `requeue bench --engine postgres --peers`:
//! [graphile-worker](PgPeerKind::GraphileWorker) and
//! [pg-boss](PgPeerKind::PgBoss), each driven by its `bench.js` (Node.js)
//! in this crate's `peers/` directory, on the same workloads, server and
//! database as requeue-postgres. Each driver prints one JSON line: items,
//! wall time, the statements its connections sent while the clock ran, and
//! the `pg_stat_database` delta of the pass (see their READMEs).

use super::bullmq::{install, installed, last_lines, read_json, run};
use crate::{Measurement, ServerCounts};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The oldest Node.js the PostgreSQL drivers run on: graphile-worker and
/// pg-boss are ES modules loaded with `require`, unflagged since 20.19.
pub const MIN_NODE: (u32, u32) = (20, 19);

/// How long one run of a driver may take (its warm-up included; a W1 x1
/// run of 20,000 items took about 100 s here).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Which PostgreSQL job queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgPeerKind {
    /// graphile-worker (`peers/graphile-worker`).
    GraphileWorker,
    /// pg-boss (`peers/pg-boss`).
    PgBoss,
}

impl PgPeerKind {
    /// Both, in the order the bench runs them.
    pub const ALL: [PgPeerKind; 2] = [PgPeerKind::GraphileWorker, PgPeerKind::PgBoss];

    /// The system's name, as in the table's columns.
    pub fn name(self) -> &'static str {
        match self {
            PgPeerKind::GraphileWorker => "graphile-worker",
            PgPeerKind::PgBoss => "pg-boss",
        }
    }

    /// The environment variable naming another driver directory.
    pub fn dir_env(self) -> &'static str {
        match self {
            PgPeerKind::GraphileWorker => "REQUEUE_GRAPHILE_WORKER_DIR",
            PgPeerKind::PgBoss => "REQUEUE_PG_BOSS_DIR",
        }
    }

    /// The driver's directory: [`dir_env`](Self::dir_env) if set, else
    /// `peers/<name>` in this crate's source tree.
    pub fn default_dir(self) -> PathBuf {
        match std::env::var_os(self.dir_env()) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("peers")
                .join(self.name()),
        }
    }

    /// The engine name of a measurement with `workers` adders and consumers.
    pub fn engine_name(self, workers: usize) -> &'static str {
        match (self, workers) {
            (PgPeerKind::GraphileWorker, 1) => "graphile-worker x1",
            (PgPeerKind::GraphileWorker, 8) => "graphile-worker x8",
            (PgPeerKind::GraphileWorker, 32) => "graphile-worker x32",
            (PgPeerKind::GraphileWorker, _) => "graphile-worker",
            (PgPeerKind::PgBoss, 1) => "pg-boss x1",
            (PgPeerKind::PgBoss, 8) => "pg-boss x8",
            (PgPeerKind::PgBoss, 32) => "pg-boss x32",
            (PgPeerKind::PgBoss, _) => "pg-boss",
        }
    }
}

/// Why a PostgreSQL peer could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum PgPeerError {
    /// Node.js is missing or does not answer.
    #[error("Node.js is needed to run {peer}: {detail}")]
    NodeMissing {
        /// The peer.
        peer: &'static str,
        /// What was tried.
        detail: String,
    },
    /// Node.js is older than [`MIN_NODE`].
    #[error(
        "Node.js {version} is too old to run {peer} (an ES module loaded with require: need \
         v{}.{} or later)",
        MIN_NODE.0,
        MIN_NODE.1
    )]
    NodeTooOld {
        /// The peer.
        peer: &'static str,
        /// `node --version`.
        version: String,
    },
    /// The driver directory lacks `bench.js` or `package-lock.json`.
    #[error(
        "no {peer} driver in {} (bench.js and package-lock.json; set {env} to requeue-bench's \
         peers/{peer} directory)",
        dir.display()
    )]
    DriverMissing {
        /// The peer.
        peer: &'static str,
        /// The override variable.
        env: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// Installing the driver's packages failed.
    #[error("cannot install {peer}'s packages: {detail}")]
    InstallFailed {
        /// The peer.
        peer: &'static str,
        /// What failed.
        detail: String,
    },
    /// A run of the driver failed, or the peer lost or repeated items.
    #[error("{peer} {workload} x{workers} failed: {detail}")]
    DriverFailed {
        /// The peer.
        peer: &'static str,
        /// The workload's id.
        workload: &'static str,
        /// Adders and consumers.
        workers: usize,
        /// The exit status and the driver's last lines (URL redacted).
        detail: String,
    },
}

/// One timed run of a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PgPeerRun {
    /// Items, wall time, the Node process's CPU and peak RSS.
    pub measurement: Measurement,
    /// Statements the peer's own connections sent while the clock ran.
    pub statements: u64,
    /// The driver's `pg_stat_database` delta, when it could read it.
    pub server: Option<ServerCounts>,
}

impl PgPeerRun {
    /// Statements sent per item.
    pub fn statements_per_item(&self) -> f64 {
        self.statements as f64 / self.measurement.items.max(1) as f64
    }

    /// Server transactions per item, when they were read.
    pub fn xacts_per_item(&self) -> Option<f64> {
        self.server
            .map(|s| s.xacts_per_item(self.measurement.items))
    }
}

/// A peer's driver, ready to run: Node.js found and its packages installed.
#[derive(Debug, Clone)]
pub struct PgPeer {
    kind: PgPeerKind,
    dir: PathBuf,
    node_version: String,
    version: String,
    installed_now: bool,
}

impl PgPeer {
    /// Checks Node.js (at least [`MIN_NODE`]) and that `dir` holds the
    /// driver, then installs its pinned packages (`npm ci`, staged) into
    /// `dir/node_modules` unless they are there already.
    pub fn prepare(kind: PgPeerKind, dir: &Path) -> Result<PgPeer, PgPeerError> {
        let peer = kind.name();
        let node_version = node_version(peer)?;
        if !dir.join("bench.js").is_file() || !dir.join("package-lock.json").is_file() {
            return Err(PgPeerError::DriverMissing {
                peer,
                env: kind.dir_env(),
                dir: dir.to_path_buf(),
            });
        }
        let install_failed = |e: super::PeerError| PgPeerError::InstallFailed {
            peer,
            detail: e.to_string(),
        };
        let installed_now = if installed(dir).map_err(install_failed)? {
            false
        } else {
            install(dir).map_err(install_failed)?;
            true
        };
        let manifest = dir.join("node_modules").join(peer).join("package.json");
        let version = read_json(&manifest).map_err(install_failed)?["version"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        Ok(PgPeer {
            kind,
            dir: dir.to_path_buf(),
            node_version,
            version,
            installed_now,
        })
    }

    /// Which peer.
    pub fn kind(&self) -> PgPeerKind {
        self.kind
    }

    /// The installed package's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `node --version`.
    pub fn node_version(&self) -> &str {
        &self.node_version
    }

    /// The driver's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether [`prepare`](Self::prepare) ran `npm ci`.
    pub fn installed_now(&self) -> bool {
        self.installed_now
    }

    /// One run of `workload` (`"W1"` or `"W3"`) with `n` items and
    /// `workers` adders and consumers, after an untimed warm-up of
    /// `warmup` items, against the database at `url` (passed in
    /// `DATABASE_URL`, never on the command line). Fails if the peer lost
    /// or repeated an item.
    pub fn run(
        &self,
        url: &str,
        workload: &'static str,
        n: u64,
        workers: usize,
        warmup: u64,
        tag: &str,
    ) -> Result<PgPeerRun, PgPeerError> {
        let peer = self.kind.name();
        let failed = |detail: String| PgPeerError::DriverFailed {
            peer,
            workload,
            workers,
            detail,
        };
        let mut cmd = Command::new("node");
        cmd.current_dir(&self.dir)
            .arg("bench.js")
            .args(["--workload", workload])
            .args(["--workers", &workers.to_string()])
            .args(["--items", &n.to_string()])
            .args(["--warmup", &warmup.to_string()])
            .args(["--tag", tag])
            .env("DATABASE_URL", url);
        let out = run(cmd, RUN_TIMEOUT)
            .map_err(|e| failed(format!("cannot start node: {e}")))?
            .ok_or_else(|| failed(format!("no result within {RUN_TIMEOUT:?}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let row = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok());
        let stderr = redacted(&String::from_utf8_lossy(&out.stderr), url);
        let (Some(row), true) = (&row, out.status.success()) else {
            let why = match (out.status.code(), row) {
                (Some(2), Some(row)) => format!(
                    "{peer} lost or repeated items: {}",
                    redacted(&row.to_string(), url)
                ),
                _ => format!("{}: {}", out.status, last_lines(&stderr, 5)),
            };
            return Err(failed(why));
        };
        let number = |field: &str| {
            row[field]
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| failed(format!("its output has no `{field}`")))
        };
        let wall = Duration::try_from_secs_f64(number("wall_seconds")?)
            .map_err(|e| failed(format!("wall_seconds: {e}")))?;
        let ops = if workload == "W1" { 3 * n } else { n };
        let mut measurement =
            Measurement::new(workload, self.kind.engine_name(workers), ops, n, wall);
        measurement.cpu = Duration::try_from_secs_f64(number("cpu_seconds")?).ok();
        measurement.peak_rss_bytes = row["peak_rss_bytes"].as_u64();
        let statements = number("statements")? as u64;
        Ok(PgPeerRun {
            measurement,
            statements,
            server: server_counts(&row["server"]),
        })
    }
}

/// The driver's `server` object, if it has every counter.
fn server_counts(server: &serde_json::Value) -> Option<ServerCounts> {
    let field = |name: &str| server[name].as_f64().map(|v| v as i64);
    Some(ServerCounts {
        xacts: field("xacts")?,
        rollbacks: field("rollbacks")?,
        inserted: field("inserted")?,
        updated: field("updated")?,
        deleted: field("deleted")?,
        returned: field("returned")?,
        fetched: field("fetched")?,
    })
}

/// `node --version`, checked against [`MIN_NODE`].
fn node_version(peer: &'static str) -> Result<String, PgPeerError> {
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PgPeerError::NodeMissing {
            peer,
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                "`node` is not on PATH".into()
            } else {
                format!("cannot run `node --version`: {e}")
            },
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match parse_node_version(&version) {
        Some(v) if out.status.success() && v >= MIN_NODE => Ok(version),
        Some(_) => Err(PgPeerError::NodeTooOld { peer, version }),
        None => Err(PgPeerError::NodeMissing {
            peer,
            detail: format!("`node --version` printed `{version}` ({})", out.status),
        }),
    }
}

/// `v20.19.1` → `(20, 19)`.
fn parse_node_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.strip_prefix('v')?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `text` with `url` redacted, and its password, if any, replaced.
fn redacted(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &requeue::redact::redact_url(url));
    if let Some(password) = password_of(url).filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    out
}

/// The password of `scheme://user:password@host/...`, if any.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_are_compared_by_major_and_minor() {
        assert_eq!(parse_node_version("v20.19.1"), Some((20, 19)));
        assert_eq!(parse_node_version("v18.20.4"), Some((18, 20)));
        assert!(parse_node_version("v18.20.4").is_some_and(|v| v < MIN_NODE));
        assert!(parse_node_version("v22.1.0").is_some_and(|v| v >= MIN_NODE));
        assert_eq!(parse_node_version("garbage"), None);
    }

    #[test]
    fn output_is_redacted() {
        let url = "postgres://app:s3cret@127.0.0.1:5432/db";
        let shown = redacted(&format!("cannot reach {url}; password s3cret"), url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(password_of("postgres://app@h/db"), None);
        assert_eq!(password_of("postgres://h/db?user=x"), None);
    }

    #[test]
    fn a_missing_driver_directory_is_named() {
        let dir = std::env::temp_dir().join(format!("requeue-no-pg-driver-{}", std::process::id()));
        match PgPeer::prepare(PgPeerKind::PgBoss, &dir) {
            Err(PgPeerError::NodeMissing { .. } | PgPeerError::NodeTooOld { .. }) => {}
            Err(PgPeerError::DriverMissing { dir: named, .. }) => assert_eq!(named, dir),
            other => panic!("{other:?}"),
        }
    }
}
