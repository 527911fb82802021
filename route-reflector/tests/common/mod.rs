//! Helpers for running the real `tortie-rr` binary: free loopback ports, a
//! guard that kills the child on drop, a tiny HTTP/1.0 client, a metrics
//! text reader and polling with a deadline.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tortie-rr");

pub use tortie_testkit::free_port;

/// An RR file on loopback: BGP on `listen`, admin on `admin`, one passive
/// iBGP client per address in `peers` (127.0.0.x, so nothing leaves the
/// host), plus `extra` top-level lines.
pub fn rr_yaml(listen: u16, admin: u16, peers: &[&str], extra: &str) -> String {
    let mut text = format!(
        "routerId: 127.0.0.1\nasNumber: 64512\nlisten: \"127.0.0.1:{listen}\"\nadmin: \"127.0.0.1:{admin}\"\n{extra}"
    );
    if !peers.is_empty() {
        text.push_str("peers:\n");
        for p in peers {
            text.push_str(&format!(
                "  - address: {p}\n    asNumber: 64512\n    passive: true\n    holdTime: 9\n"
            ));
        }
    }
    text
}

/// Writes by rename, the way editors and ConfigMaps do.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `tortie-rr`; killed and reaped on drop, also when a test fails.
pub struct Rr {
    pub child: Child,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
}

impl Rr {
    /// Starts the binary on `config` with logs in `dir/rr-<n>.log`.
    pub fn start(dir: &Path, config: &Path, admin: u16, state_dir: &Path) -> Rr {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("rr-{n}.log"));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn tortie-rr");
        Rr {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            config: config.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            log,
        }
    }

    /// The child's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` on the admin server.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log()))
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tortie-rr exited early with {status}\nlog:\n{}", self.log());
            }
            if matches!(http_get(self.admin, "/readyz"), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 15 s\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -s {name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of one series in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.get("/metrics").1, series)
    }

    /// The parsed `/status`.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// The peer addresses in `/status`.
    pub fn peer_addresses(&self) -> Vec<String> {
        self.status()["peers"]
            .as_array()
            .expect("peers array")
            .iter()
            .map(|p| p["address"].as_str().expect("address").to_string())
            .collect()
    }
}

impl Drop for Rr {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.0 GET: status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {raw:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((code, body.to_string()))
}

/// The value of the series `name{labels}` (exactly as written) in
/// Prometheus/OpenMetrics text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `check` every 50 ms until it returns true or `within` passes.
pub fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
