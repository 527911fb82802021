//! FRR's zebra for the tests whose FRR daemons need it: bgpd keeps
//! routes whose IPv6 next hop is link-local only when zebra tells it the
//! interfaces, and bfdd learns an interface named in a `peer` line only
//! from zebra.
//!
//! zebra drops to user frr (`-u frr -g frr`), so its directory must be
//! readable and owned by frr; the other daemons reach it through the
//! socket given with `-z` ([`zserv`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::{Netns, NsChild};

/// Where Debian installs FRR's zebra.
pub const ZEBRA: &str = "/usr/lib/frr/zebra";

/// zebra's socket in `dir`: the `-z` of the daemons that talk to it.
pub fn zserv(dir: &Path) -> PathBuf {
    dir.join("zserv.api")
}

/// Starts zebra in `ns` with its files in `dir` (an empty `zebra.conf`,
/// `zebra.pid`, `zebra.log`, its vty socket and [`zserv`]) and waits up to
/// 10 s for its socket. First makes `dir` 0755 and `chown -R frr:frr` it,
/// with what is in it already (the other daemons' configs). The error of
/// a zebra that made no socket carries its log.
pub fn start_zebra(ns: &Netns, dir: &Path) -> io::Result<NsChild> {
    let name = |p: &Path| {
        p.to_str().map(str::to_string).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not UTF-8: {}", p.display()),
            )
        })
    };
    let conf = dir.join("zebra.conf");
    std::fs::write(&conf, "")?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let d = name(dir)?;
    let st = Command::new("chown").args(["-R", "frr:frr", &d]).status()?;
    if !st.success() {
        return Err(io::Error::other(format!("chown -R frr:frr {d}: {st}")));
    }
    let (conf, pid, sock) = (name(&conf)?, name(&dir.join("zebra.pid"))?, zserv(dir));
    let argv = [
        ZEBRA,
        "-u",
        "frr",
        "-g",
        "frr",
        "-f",
        &conf,
        "-i",
        &pid,
        "-z",
        &name(&sock)?,
        "--vty_socket",
        &d,
        "-P",
        "0",
    ];
    let log = dir.join("zebra.log");
    let child = ns.spawn(&argv, &log)?;
    let start = Instant::now();
    while !sock.exists() {
        if start.elapsed() > Duration::from_secs(10) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("zebra made no {} in 10 s; its log:\n{log}", sock.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}
