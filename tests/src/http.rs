//! A minimal HTTP/1.1 GET for reading tortie-rr's admin endpoint (`/status`)
//! over a socket opened inside a namespace. Handles `Content-Length`,
//! chunked bodies and read-to-close; nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{bail, Context, Result};

/// A response: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// e.g. 200.
    pub status: u16,
    /// The decoded body (de-chunked).
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole response.
pub fn get(mut stream: TcpStream, host: &str, path: &str) -> Result<Response> {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .with_context(|| format!("sending GET {path} to {host}"))?;
    let mut raw = Vec::new();
    // A server may close right after the body or keep the socket open
    // until it sees our close; either way read what it sends, stopping once
    // a complete message is in.
    let mut buf = [0u8; 8192];
    loop {
        if let Some(resp) = parse_response(&raw)? {
            return Ok(resp);
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e).with_context(|| format!("reading GET {path} from {host}")),
        }
    }
    // Closed: a body without a length runs to the end.
    parse_response_at_eof(&raw).with_context(|| format!("GET {path} from {host}"))
}

/// Parses a complete response, or `None` when more bytes are needed (or
/// the body has no length and runs to the close).
fn parse_response(raw: &[u8]) -> Result<Option<Response>> {
    let Some((status, headers, body)) = split_head(raw)? else {
        return Ok(None);
    };
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Ok(dechunk(body)?.map(|b| Response { status, body: b }));
    }
    if let Some(len) = header(&headers, "content-length") {
        let len: usize = len
            .trim()
            .parse()
            .with_context(|| format!("bad Content-Length {len:?}"))?;
        if body.len() >= len {
            return Ok(Some(Response {
                status,
                body: String::from_utf8_lossy(&body[..len]).into_owned(),
            }));
        }
    }
    Ok(None)
}

/// Parses what arrived before the server closed.
fn parse_response_at_eof(raw: &[u8]) -> Result<Response> {
    if let Some(r) = parse_response(raw)? {
        return Ok(r);
    }
    let Some((status, headers, body)) = split_head(raw)? else {
        bail!(
            "connection closed before the end of the headers ({} bytes: {:?})",
            raw.len(),
            String::from_utf8_lossy(raw)
        );
    };
    if header(&headers, "content-length").is_some()
        || header(&headers, "transfer-encoding").is_some()
    {
        bail!("connection closed before the end of the body");
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

type Head<'a> = (u16, Vec<(String, String)>, &'a [u8]);

/// Splits status line + headers from the body, once the blank line is in.
fn split_head(raw: &[u8]) -> Result<Option<Head<'_>>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some((status, headers, &raw[end + 4..])))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes a chunked body; `None` until the last (zero) chunk is in.
fn dechunk(mut body: &[u8]) -> Result<Option<String>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(Some(String::from_utf8_lossy(&out).into_owned()));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let r = parse_response(raw).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
        assert!(parse_response(&raw[..raw.len() - 1]).unwrap().is_none());
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap().unwrap();
        assert_eq!(r.body, "abcde");
        assert!(parse_response(&raw[..raw.len() - 7]).unwrap().is_none());
    }

    #[test]
    fn body_to_close_and_errors() {
        let r = parse_response_at_eof(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "nope"));
        assert!(parse_response_at_eof(b"HTTP/1.1 200").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn get_over_a_socket_in_a_netns() {
        let topo = crate::netns::Topology::new(2).unwrap();
        let addr = std::net::SocketAddr::new(topo.hosts[1].v4.into(), 8080);
        let listener = topo.hosts[1].ns.listen(addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                req.extend_from_slice(&b[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let stream = topo.hosts[0]
            .ns
            .connect(addr, std::time::Duration::from_secs(5))
            .unwrap();
        let r = get(stream, "172.30.0.2", "/status").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /status HTTP/1.1\r\n"));
    }
}
