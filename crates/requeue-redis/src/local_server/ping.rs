//! Probing whether a freshly started server serves commands, and is ours.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long one probe may take.
const PROBE: Duration = Duration::from_millis(250);

/// Whether the server on `port` is process `pid` and serves commands.
///
/// Over raw RESP (no client library, no runtime): `PING` must answer
/// `+PONG` (a server still loading its data answers `-LOADING`), then
/// `INFO server` must name `pid`, so that another server that happens to
/// hold the port is never mistaken for ours.
pub(super) fn is_ready(port: u16, pid: u32) -> bool {
    probe(port, pid).unwrap_or(false)
}

fn probe(port: u16, pid: u32) -> io::Result<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, PROBE)?;
    stream.set_read_timeout(Some(PROBE))?;
    stream.set_write_timeout(Some(PROBE))?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut buf = [0_u8; 1024];
    let n = stream.read(&mut buf)?;
    if !buf.get(..n).unwrap_or_default().starts_with(b"+PONG") {
        return Ok(false);
    }
    stream.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let mut reply = Vec::new();
    // Read until the process_id line is complete, an error reply, or EOF.
    while process_id(&reply).is_none() && !reply.starts_with(b"-") && reply.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(process_id(&reply) == Some(pid))
}

/// The `process_id:<n>\r\n` field of an `INFO` reply.
fn process_id(info: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(info).ok()?;
    let (_, rest) = text.split_once("\nprocess_id:")?;
    let (digits, _) = rest.split_once("\r\n")?;
    digits.parse().ok()
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub(super) fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_id_needs_a_complete_line() {
        let info = b"$99\r\n# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\nrun_id:x\r\n";
        assert_eq!(process_id(info), Some(4242));
        assert_eq!(process_id(b"$99\r\n# Server\r\nprocess_id:42"), None);
        assert_eq!(process_id(b"-LOADING Redis is loading\r\n"), None);
    }
}
