//! A free port, and whether a freshly started postmaster accepts
//! connections.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

/// A port of 127.0.0.1 that was free a moment ago (the OS picks it). The
/// start retries on another one if the server then finds it taken.
pub(super) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether the postmaster `pid` of data directory `data` accepts
/// connections.
///
/// Read from `postmaster.pid` (no client, no runtime): its first line is
/// the postmaster's pid and, since PostgreSQL 10, its eighth line reads
/// `ready` once the server accepts connections (after crash recovery). The
/// pid check keeps a stale file of a killed server from passing.
pub(super) fn is_ready(data: &Path, pid: u32) -> bool {
    let Ok(contents) = fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = contents.lines().map(str::trim).collect();
    lines.first().and_then(|l| l.parse::<u32>().ok()) == Some(pid)
        && lines.get(7).is_some_and(|status| *status == "ready")
}
