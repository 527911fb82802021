//! Helpers: network namespaces with drop guards, running the plugin binary
//! as a runtime does (env + stdin), a TCP echo inside a namespace.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use serde_json::Value;

/// A network namespace (`ip netns add`): processes inside killed and the
/// namespace deleted on drop ([`tortie_testkit::netns::Netns`]).
pub struct Netns {
    /// Its name.
    pub name: String,
    inner: tortie_testkit::netns::Netns,
}

/// What the plugin printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Exit status (0 = success).
    pub status: i32,
    /// stdout parsed as JSON (`Null` when empty).
    pub json: Value,
    /// stdout as text.
    pub stdout: String,
}

impl Netns {
    /// A fresh namespace named `tcni-<pid>-<n>`.
    pub fn new() -> Netns {
        let inner = tortie_testkit::netns::Netns::new("tcni")
            .unwrap_or_else(|e| panic!("creating a netns: {e}"));
        Netns {
            name: inner.name().to_string(),
            inner,
        }
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        self.inner.path()
    }

    /// `ip -n NAME <args>` output.
    pub fn ip(&self, args: &[&str]) -> String {
        self.inner.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A TCP server on `port` inside the namespace that answers every
    /// connection with `reply` (a std thread that entered the namespace).
    pub fn tcp_echo(&self, port: u16, reply: &'static str) -> JoinHandle<()> {
        let path = self.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tortie_testkit::netns::enter_path(&path).expect("enter the namespace");
            let l = TcpListener::bind(("::", port)).expect("bind in netns");
            tx.send(()).unwrap();
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 16];
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply.as_bytes());
            }
        });
        rx.recv().expect("listener up");
        t
    }
}

/// Runs `args`, panicking with stderr if it fails; returns stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs plugin `binary` with `CNI_COMMAND=command`, `env`, and `conf` on
/// stdin.
pub fn cni_exec(binary: &str, command: &str, env: &[(&str, &str)], conf: &Value) -> Output {
    let mut child = Command::new(binary)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Output {
        status: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
    }
}

/// Runs our plugin.
pub fn tortie(command: &str, env: &[(&str, &str)], conf: &Value) -> Output {
    cni_exec(env!("CARGO_BIN_EXE_tortie-cni"), command, env, conf)
}

/// Connects to `addr`, sends a line, returns the reply.
pub fn tcp_ask(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
    s.write_all(b"ping\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Whether a link named `name` exists in our namespace.
pub fn host_link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Connects to `addr` and reads until the server closes, sending nothing
/// (a server that never reads would reset a connection with unread data).
pub fn tcp_read(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
