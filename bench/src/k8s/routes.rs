//! A namespace's IPv4 routing table (main), dumped over netlink from a
//! thread inside the namespace every [`POLL`] until a condition holds.
//!
//! `ip monitor route` (the node benchmarks' `Monitor`) stamps added routes
//! as they come, but the kernel announces no removal of an IPv4 route
//! whose device went away, and that is how a pod's /32 goes (tortie-cni's
//! DEL removes the veth): removals are timed here, at most [`POLL`] plus
//! one dump (well under a millisecond for these tables) late.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

/// How often the table is dumped while waiting.
pub const POLL: Duration = Duration::from_millis(5);
/// `RT_TABLE_MAIN`.
const MAIN_TABLE: u8 = 254;

/// A [`spawn_wait_for`] under way.
pub struct Waiting<T>(std::thread::JoinHandle<Result<(Instant, T)>>);

/// One route of table main.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub len: u8,
    /// The next hop (`via`), if any.
    pub gateway: Option<Ipv4Addr>,
}

// ===== impl Route =====

impl Route {
    /// Whether `a` is in the route's prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
        u32::from(a) & mask == u32::from(self.dst) & mask
    }

    /// `10.244.0.64/26`.
    pub fn prefix(&self) -> String {
        format!("{}/{}", self.dst, self.len)
    }
}

// ===== impl Waiting =====

impl<T> Waiting<T> {
    /// Waits for the outcome.
    pub fn join(self) -> Result<(Instant, T)> {
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("the route poller thread panicked"))?
    }
}

/// The route the kernel picks for `a` (the longest prefix) in `table`.
pub fn lookup(table: &[Route], a: Ipv4Addr) -> Option<&Route> {
    table.iter().filter(|r| r.contains(a)).max_by_key(|r| r.len)
}

/// Dumps namespace `ns`'s table until `check` returns a value; that value
/// and the time the dump that gave it returned. Fails after `timeout`.
pub fn wait_for<T: Send + 'static>(
    ns: &str,
    timeout: Duration,
    check: impl FnMut(&[Route]) -> Option<T> + Send + 'static,
) -> Result<(Instant, T)> {
    spawn_wait_for(ns, timeout, check).join()
}

/// [`wait_for`] on a thread of its own, for a wait that must start before
/// the change it waits for.
pub fn spawn_wait_for<T: Send + 'static>(
    ns: &str,
    timeout: Duration,
    mut check: impl FnMut(&[Route]) -> Option<T> + Send + 'static,
) -> Waiting<T> {
    let path = PathBuf::from("/run/netns").join(ns);
    let ns = ns.to_string();
    Waiting(std::thread::spawn(move || -> Result<(Instant, T)> {
        tortie_testkit::netns::enter_path(&path)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().context("a netlink socket")?;
            tokio::spawn(conn);
            let deadline = Instant::now() + timeout;
            loop {
                let table = dump(&handle).await?;
                let at = Instant::now();
                if let Some(v) = check(&table) {
                    return Ok((at, v));
                }
                if at > deadline {
                    bail!("{ns}: the routing table did not get there within {timeout:?}");
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }))
}

/// Namespace `ns`'s table now.
pub fn table(ns: &str) -> Result<Vec<Route>> {
    wait_for(ns, Duration::from_secs(5), |t| Some(t.to_vec())).map(|(_, t)| t)
}

// ===== helpers =====

/// `ip -4 route show table main type all`: the kernel dumps every table
/// (no strict check), so table main is picked here.
async fn dump(handle: &Handle) -> Result<Vec<Route>> {
    let mut filter = RouteMessageBuilder::<Ipv4Addr>::new()
        .kind(RouteType::Unspec)
        .build();
    filter.header.table = MAIN_TABLE;
    let msgs: Vec<RouteMessage> = handle
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .context("dumping the routes")?;
    Ok(msgs.iter().filter_map(route).collect())
}

fn route(msg: &RouteMessage) -> Option<Route> {
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    if table != u32::from(MAIN_TABLE) {
        return None;
    }
    let v4 = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(*v4),
        _ => None,
    };
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = v4(d)?,
            RouteAttribute::Gateway(g) => gateway = v4(g),
            _ => {}
        }
    }
    Some(Route {
        dst,
        len: msg.header.destination_prefix_length,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, len: u8, gw: Option<&str>) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            len,
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = [
            r("0.0.0.0", 0, Some("172.30.1.1")),
            r("10.244.0.0", 26, Some("172.30.1.11")),
            r("10.244.0.7", 32, None),
        ];
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(lookup(&t, a("10.244.0.7")), Some(&t[2]));
        assert_eq!(lookup(&t, a("10.244.0.9")), Some(&t[1]));
        assert_eq!(lookup(&t, a("10.244.0.64")), Some(&t[0]));
        assert_eq!(t[1].prefix(), "10.244.0.0/26");
        assert!(t[0].contains(a("8.8.8.8")));
    }
}
