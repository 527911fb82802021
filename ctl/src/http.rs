//! A minimal HTTP GET to a node's admin endpoint (`/status`, `/routes`):
//! HTTP/1.0, so the server closes after the body, which is all there is
//! to read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// `GET path` from `addr`; the body of a 200 response, or an error with
/// the status and body of any other.
pub fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let timeout = Duration::from_secs(5);
    let stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| {
        format!("cannot reach tortie-node's admin endpoint at {addr} (is tortie-node running on this node? --admin / TORTIE_ADMIN)")
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    get_on(stream, addr, path)
}

/// `GET path` on an open connection to `addr`.
pub fn get_on(mut stream: TcpStream, addr: SocketAddr, path: &str) -> Result<String> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path} from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("GET {path} from {addr}: no complete HTTP response");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("GET {path} from {addr}: bad status line"))?;
    if status != 200 {
        bail!("GET {path} from {addr}: HTTP {status}: {}", body.trim());
    }
    Ok(body.to_string())
}
