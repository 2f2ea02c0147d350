//! The BullMQ side: finding Node.js, installing the pinned packages, and
//! running `peers/bullmq/bench.js` once per measurement.

use super::{CommandCounts, PeerError, PeerRun, bullmq_engine_name, ops};
use crate::Measurement;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The oldest Node.js major version the driver is known to run on: 18, as
/// Debian 12 ships it (cron-parser, which BullMQ loads, needs 18; ioredis 6
/// declares 20 but runs this driver on 18.20 too).
pub const MIN_NODE_MAJOR: u32 = 18;

/// How long `npm ci` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// How long one run of the driver may take (warm-up included).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// BullMQ's driver, ready to run: Node.js found and the packages installed.
#[derive(Debug, Clone)]
pub struct BullMq {
    dir: PathBuf,
    node_version: String,
    bullmq_version: String,
    installed_now: bool,
}

impl BullMq {
    /// The environment variable naming another driver directory.
    pub const DIR_ENV: &'static str = "REQUEUE_BULLMQ_DIR";

    /// The driver's directory: `REQUEUE_BULLMQ_DIR` if set, else
    /// `peers/bullmq` in this crate's source tree.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os(Self::DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/bullmq"),
        }
    }

    /// Checks that Node.js is there (and recent enough) and that `dir` holds
    /// the driver, then installs its pinned packages with `npm ci` into
    /// `dir/node_modules` unless they are there already.
    pub fn prepare(dir: &Path) -> Result<BullMq, PeerError> {
        let node_version = node_version()?;
        if !dir.join("bench.js").is_file() || !dir.join("package-lock.json").is_file() {
            return Err(PeerError::DriverMissing {
                dir: dir.to_path_buf(),
            });
        }
        let installed_now = if installed(dir)? {
            false
        } else {
            install(dir)?;
            true
        };
        let bullmq_version = read_json(&dir.join("node_modules/bullmq/package.json"))?["version"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        Ok(BullMq {
            dir: dir.to_path_buf(),
            node_version,
            bullmq_version,
            installed_now,
        })
    }

    /// The installed BullMQ's version, e.g. `6.7.6`.
    pub fn bullmq_version(&self) -> &str {
        &self.bullmq_version
    }

    /// The driver's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `node --version`, e.g. `v20.20.2`.
    pub fn node_version(&self) -> &str {
        &self.node_version
    }

    /// Whether [`prepare`](Self::prepare) ran `npm ci`.
    pub fn installed_now(&self) -> bool {
        self.installed_now
    }

    /// One run of `workload` (`"W1"` or `"W3"`) with `n` items and
    /// `workers` adders and Worker concurrency, after an untimed warm-up of
    /// `warmup` items, against `url`; the timed part is framed by the
    /// markers of `tag`. Fails if BullMQ lost an item or processed one twice.
    pub fn run(
        &self,
        url: &str,
        workload: &'static str,
        n: u64,
        workers: usize,
        warmup: u64,
        tag: &str,
    ) -> Result<PeerRun, PeerError> {
        let failed = |detail: String| PeerError::DriverFailed {
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
            // The URL goes by the environment, not the command line that
            // `ps` shows.
            .env("REDIS_URL", url);
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
                    "BullMQ lost or repeated items: {}",
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
                .ok_or_else(|| failed(format!("its output has no `{field}`: {row}")))
        };
        let wall = Duration::try_from_secs_f64(number("wall_seconds")?)
            .map_err(|e| failed(format!("wall_seconds: {e}")))?;
        let commands = row["commands"]
            .as_object()
            .ok_or_else(|| failed(format!("its output has no `commands`: {row}")))?
            .iter()
            .map(|(name, count)| (name.to_ascii_lowercase(), count.as_u64().unwrap_or(0)));
        let mut measurement = Measurement::new(
            workload,
            bullmq_engine_name(workers),
            ops(workload, n),
            n,
            wall,
        );
        measurement.cpu = Duration::try_from_secs_f64(number("cpu_seconds")?).ok();
        measurement.peak_rss_bytes = row["peak_rss_bytes"].as_u64();
        Ok(PeerRun {
            measurement,
            commands: CommandCounts::from_pairs(commands),
        })
    }
}

/// `node --version`, checked against [`MIN_NODE_MAJOR`].
fn node_version() -> Result<String, PeerError> {
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PeerError::NodeMissing {
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                "`node` is not on PATH".into()
            } else {
                format!("cannot run `node --version`: {e}")
            },
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if out.status.success() && major >= MIN_NODE_MAJOR => Ok(version),
        Some(_) => Err(PeerError::NodeTooOld { version }),
        None => Err(PeerError::NodeMissing {
            detail: format!("`node --version` printed `{version}` ({})", out.status),
        }),
    }
}

/// Whether `dir/node_modules` holds every dependency of `dir/package.json`
/// at its pinned version.
pub(super) fn installed(dir: &Path) -> Result<bool, PeerError> {
    let manifest = read_json(&dir.join("package.json"))?;
    let Some(dependencies) = manifest["dependencies"].as_object() else {
        return Ok(true);
    };
    for (name, pinned) in dependencies {
        let path = dir.join("node_modules").join(name).join("package.json");
        if !path.is_file() {
            return Ok(false);
        }
        if read_json(&path)?["version"].as_str() != pinned.as_str() {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(super) fn read_json(path: &Path) -> Result<serde_json::Value, PeerError> {
    let text = std::fs::read_to_string(path).map_err(|e| PeerError::InstallFailed {
        dir: path.to_path_buf(),
        detail: format!("cannot read it: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| PeerError::InstallFailed {
        dir: path.to_path_buf(),
        detail: format!("not JSON: {e}"),
    })
}

/// `npm ci` in a staging directory beside `dir/node_modules`, renamed into
/// place once complete, so that an interrupted or concurrent install never
/// leaves a half-filled `node_modules`.
pub(super) fn install(dir: &Path) -> Result<(), PeerError> {
    let failed = |detail: String| PeerError::InstallFailed {
        dir: dir.to_path_buf(),
        detail,
    };
    let staging = dir.join(format!(
        ".install-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        std::fs::create_dir_all(&staging)
            .map_err(|e| failed(format!("cannot create {}: {e}", staging.display())))?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(dir.join(file), staging.join(file))
                .map_err(|e| failed(format!("cannot copy {file}: {e}")))?;
        }
        let mut cmd = Command::new("npm");
        cmd.current_dir(&staging).args([
            "ci",
            // No package of the tree needs its install script (msgpackr's
            // native extension is optional).
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]);
        let out = run(cmd, INSTALL_TIMEOUT)
            .map_err(|e| {
                failed(if e.kind() == std::io::ErrorKind::NotFound {
                    "`npm` is not on PATH".into()
                } else {
                    format!("cannot run npm: {e}")
                })
            })?
            .ok_or_else(|| {
                failed(format!(
                    "`npm ci` did not finish within {INSTALL_TIMEOUT:?}"
                ))
            })?;
        if !out.status.success() {
            return Err(failed(format!(
                "`npm ci` failed ({}): {}",
                out.status,
                npm_reason(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        let target = dir.join("node_modules");
        if target.exists() && !installed(dir)? {
            // Another version: moved aside, then removed.
            let old = staging.join("old_node_modules");
            std::fs::rename(&target, &old)
                .map_err(|e| failed(format!("cannot move the old node_modules: {e}")))?;
        }
        if let Err(e) = std::fs::rename(staging.join("node_modules"), &target) {
            // A concurrent install may have won the race.
            if !installed(dir)? {
                return Err(failed(format!("cannot move node_modules into place: {e}")));
            }
        }
        if installed(dir)? {
            Ok(())
        } else {
            Err(failed(
                "`npm ci` succeeded but the pinned versions are not in node_modules".into(),
            ))
        }
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// What a finished child printed.
pub(super) struct Output {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// Runs `cmd` with its output captured; `Ok(None)` (and the child killed)
/// if it runs longer than `timeout`.
pub(super) fn run(mut cmd: Command, timeout: Duration) -> std::io::Result<Option<Output>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(status.map(|status| Output {
        status,
        stdout,
        stderr,
    }))
}

/// The last `n` non-empty lines of `text`, joined with ` / `.
pub(super) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown = lines[lines.len().saturating_sub(n)..].join(" / ");
    if shown.is_empty() {
        "(no output)".into()
    } else {
        requeue_redis::error::shorten(&shown).into_owned()
    }
}

/// The first lines of npm's error that say why (`npm error …` lines
/// without the prefix, the code, syscall and log-file lines), with the code.
fn npm_reason(stderr: &str) -> String {
    let mut code = None;
    let mut why = Vec::new();
    for line in stderr.lines() {
        let line = line
            .trim()
            .trim_start_matches("npm error")
            .trim_start_matches("npm ERR!")
            .trim();
        if let Some(c) = line.strip_prefix("code ") {
            code.get_or_insert_with(|| c.trim().to_string());
        } else if !(line.is_empty()
            || line.starts_with("syscall ")
            || line.starts_with("errno ")
            || line.starts_with("A complete log"))
        {
            why.push(line);
        }
    }
    let text = match (why.len(), code) {
        (0, None) => return last_lines(stderr, 5),
        (0, Some(code)) => code,
        (_, None) => why[..why.len().min(2)].join(" / "),
        (_, Some(code)) => format!("{} ({code})", why[..why.len().min(2)].join(" / ")),
    };
    requeue_redis::error::shorten(&text).into_owned()
}

/// `text` with `url` (and its password, if any) redacted.
fn redacted(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &requeue_redis::redact::redact_url(url));
    let password = redis::Client::open(url).ok().and_then(|c| {
        c.get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned)
    });
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        out = out.replace(&password, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_s_reason_is_its_first_lines_and_code() {
        let usage = "npm error code EUSAGE\nnpm error\nnpm error `npm ci` can only install \
                     when in sync.\nnpm error\nnpm error Missing: bullmq@6.7.6 from lock file\n\
                     npm error\nnpm error Clean install a project\n";
        assert_eq!(
            npm_reason(usage),
            "`npm ci` can only install when in sync. / Missing: bullmq@6.7.6 from lock file (EUSAGE)"
        );
        let offline = "npm error code ENOTFOUND\nnpm error syscall getaddrinfo\nnpm error errno \
                       ENOTFOUND\nnpm error network request to https://registry.npmjs.org/bullmq \
                       failed\nnpm error A complete log of this run can be found in: /x.log\n";
        assert_eq!(
            npm_reason(offline),
            "network request to https://registry.npmjs.org/bullmq failed (ENOTFOUND)"
        );
        assert_eq!(npm_reason("killed\n"), "killed");
    }

    #[test]
    fn output_is_cut_and_redacted() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b / c");
        assert_eq!(last_lines("", 2), "(no output)");
        let url = "redis://:s3cret@127.0.0.1:1/";
        let text = format!("cannot reach {url}; auth s3cret failed");
        let shown = redacted(&text, url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://***@127.0.0.1:1/"), "{shown}");
    }

    #[test]
    fn a_missing_driver_directory_is_named() {
        let dir = std::env::temp_dir().join(format!("requeue-no-driver-{}", std::process::id()));
        match BullMq::prepare(&dir) {
            // Without Node.js the check stops earlier, with its own reason.
            Err(PeerError::NodeMissing { .. } | PeerError::NodeTooOld { .. }) => {}
            Err(PeerError::DriverMissing { dir: named }) => assert_eq!(named, dir),
            other => panic!("{other:?}"),
        }
    }
}
