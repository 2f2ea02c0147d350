//! Finding PostgreSQL's server executables, and the user to run them as.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the directory holding `initdb` and
/// `postgres` (e.g. `/usr/lib/postgresql/16/bin`), to test on another
/// version than the one found by default.
pub const BIN_DIR_ENV: &str = "REQUEUE_PG_BIN";

/// Where Debian and Ubuntu install the server executables, one directory
/// per major version; they are not on `PATH` there.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The directory of `initdb` and `postgres`: `explicit`, else
/// [`BIN_DIR_ENV`], else the directory of `initdb` on `PATH`, else the
/// newest `/usr/lib/postgresql/<major>/bin`.
pub(super) fn bin_dir(explicit: Option<&Path>) -> io::Result<PathBuf> {
    if let Some(dir) = explicit {
        return checked(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return checked(PathBuf::from(dir));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|dir| has_server(dir)) {
        return Ok(dir);
    }
    newest_debian().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "initdb and postgres not found on PATH nor under /usr/lib/postgresql/*/bin: \
             install them (Debian/Ubuntu: apt-get install -y postgresql; the system \
             service need not run) or set REQUEUE_PG_BIN",
        )
    })
}

fn checked(dir: PathBuf) -> io::Result<PathBuf> {
    if has_server(&dir) {
        Ok(dir)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no executable initdb and postgres", dir.display()),
        ))
    }
}

/// Whether `dir` holds both executables (a symlink counts: Debian's
/// `/usr/local/bin/initdb` style links point into the version's bin).
fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres"].iter().all(|name| {
        fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The highest major version's bin directory under [`DEBIAN_ROOT`].
fn newest_debian() -> Option<PathBuf> {
    fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

/// The prefix that runs a command as `user`: PostgreSQL refuses to run as
/// root, so as root the server runs as an unprivileged user through
/// `setpriv`, which `exec`s (the pid stays the server's). Empty when no
/// change is needed.
pub(super) fn run_as_prefix(user: Option<&str>) -> Vec<OsString> {
    match user {
        None => Vec::new(),
        Some(user) => [
            "setpriv",
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
            "--",
        ]
        .map(OsString::from)
        .to_vec(),
    }
}

/// The user to run the server as: `explicit`, else `postgres` when this
/// process runs as root (`id -u`: no `libc`, unsafe code is forbidden),
/// else none (the current user).
pub(super) fn server_user(explicit: Option<&str>) -> io::Result<Option<String>> {
    if let Some(user) = explicit {
        return Ok(Some(user.to_owned()));
    }
    let out = Command::new("id").arg("-u").output()?;
    let uid = String::from_utf8_lossy(&out.stdout);
    Ok((uid.trim() == "0").then(|| "postgres".to_owned()))
}

/// Gives `dir` (recursively) to `user`, so the server can write it.
pub(super) fn chown(dir: &Path, user: &str) -> io::Result<()> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "chown -R {user}: {}: {status} (does the user exist?)",
            dir.display()
        )))
    }
}
