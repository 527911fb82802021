//! Helpers of the IPIP tests: a UDP echo between sockets opened inside two
//! namespaces (no `ping` binary on the CI host), and a one-packet tcpdump
//! capture inside a namespace.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::Netns;

/// How long a capture may take to start or to see its packet.
const WAIT: Duration = Duration::from_secs(20);

/// Kills the capture if the test fails midway.
struct Capture(std::process::Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tcpdump` in `ns` on `ifname` for one packet matching `filter`
/// while `traffic` runs; returns the packet's line. `None` when tcpdump is
/// not installed (said on the real stderr; a failure under `CI=true`).
pub fn capture_one(
    ns: &Netns,
    ifname: &str,
    filter: &str,
    traffic: impl FnOnce(),
) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("tcpdump").is_file()) {
        tortie_testkit::missing(
            &format!("capture on {ifname}"),
            "no tcpdump (apt-get install tcpdump)",
        );
        return None;
    }
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "tcpdump", "-Z", "root", "-n", "-l",
        ])
        .args(["-c", "1", "-i", ifname, filter])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    let mut cap = Capture(child);
    // tcpdump says "listening on IF" once the capture is armed.
    let stderr = cap.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.contains("listening on") => break,
            Ok(line) => said.push(line),
            Err(_) => panic!("tcpdump did not start: {said:?}"),
        }
    }
    traffic();
    let deadline = std::time::Instant::now() + WAIT;
    while cap.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "tcpdump saw no {filter} packet on {ifname}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    cap.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    Some(out.trim().to_owned())
}
