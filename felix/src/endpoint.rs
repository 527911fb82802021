//! Workload endpoints, host side: the veth name, and the settings that make
//! routed (not bridged) pod networking work.
//!
//! The pod has `default via 169.254.1.1 dev eth0 onlink`. Nobody owns
//! 169.254.1.1: the host side of the veth answers the pod's ARP for it by
//! proxy ARP (`proxy_arp=1`, `proxy_delay=0` so the answer is immediate),
//! with the fixed MAC `ee:ee:ee:ee:ee:ee`. Proxy ARP only answers when the
//! host has a route to the asked address through another interface (in
//! practice the host's default route). The host then routes the packet by
//! the pod routes the reconciler programs (`forwarding=1`). `accept_ra=0`
//! keeps the host side from configuring itself from a pod's router
//! advertisements.

use std::path::Path;

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::{Handle, LinkUnspec};

use crate::sysctl::{self, Sysctl, SysctlError};

/// Prefix of host-side interface names.
pub const IFNAME_PREFIX: &str = "tort";
/// Number of hex characters of the hash in the name (4 + 11 = 15, the
/// Linux maximum).
pub const IFNAME_HASH_LEN: usize = 11;
/// MAC address of every host-side veth.
pub const HOST_MAC: [u8; 6] = [0xee; 6];

/// Why a host-side setup failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The interface does not exist in the namespace.
    #[error("workload interface {ifname} does not exist")]
    Missing {
        /// The name looked for.
        ifname: String,
    },
    /// A netlink request failed.
    #[error("workload interface {ifname}: {what} failed: {source}")]
    Netlink {
        /// The interface.
        ifname: String,
        /// The step (`lookup`, `set MAC`, `set up`).
        what: &'static str,
        /// The cause.
        source: rtnetlink::Error,
    },
    /// A sysctl write failed.
    #[error("workload interface {ifname}: {source}")]
    Sysctl {
        /// The interface.
        ifname: String,
        /// The cause.
        source: SysctlError,
    },
}

/// The host-side interface name of a workload: `tort` + the first 11 hex
/// characters of the 64-bit FNV-1a hash of the workload id. FNV-1a is fixed
/// by its definition (unlike std's `DefaultHasher`), so the name is stable
/// across builds and between the CNI plugin and the agent.
pub fn host_ifname(workload_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in workload_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let hex = format!("{h:016x}");
    format!("{IFNAME_PREFIX}{}", &hex[..IFNAME_HASH_LEN])
}

/// The IPv4 sysctls of a host-side interface.
pub fn host_sysctls_v4(ifname: &str) -> Vec<Sysctl> {
    vec![
        Sysctl::new(format!("net/ipv4/conf/{ifname}/proxy_arp"), "1"),
        Sysctl::new(format!("net/ipv4/neigh/{ifname}/proxy_delay"), "0"),
        Sysctl::new(format!("net/ipv4/conf/{ifname}/forwarding"), "1"),
    ]
}

/// The IPv6 sysctls of a host-side interface.
pub fn host_sysctls_v6(ifname: &str) -> Vec<Sysctl> {
    vec![Sysctl::new(
        format!("net/ipv6/conf/{ifname}/accept_ra"),
        "0",
    )]
}

/// Configures the host side of a workload veth in `netns` (the node's
/// namespace; `None` = ours) through `handle` (a connection in the same
/// namespace): sysctls, MAC `ee:ee:ee:ee:ee:ee`, link up. Idempotent. The
/// /32 route is the reconciler's job.
///
/// `sysctl -w net.ipv4.conf.IF.proxy_arp=1 net.ipv4.neigh.IF.proxy_delay=0
/// net.ipv4.conf.IF.forwarding=1 net.ipv6.conf.IF.accept_ra=0;
/// ip link set IF address ee:ee:ee:ee:ee:ee; ip link set IF up`.
pub async fn configure_host_side(
    handle: &Handle,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<(), EndpointError> {
    let netlink = |what, source| EndpointError::Netlink {
        ifname: ifname.to_owned(),
        what,
        source,
    };
    let mut found = handle.link().get().match_name(ifname.to_owned()).execute();
    let index = match found.try_next().await {
        Ok(Some(link)) => link.header.index,
        Ok(None) => return Err(missing(ifname)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == Errno::ENODEV as i32 => {
            return Err(missing(ifname))
        }
        Err(e) => return Err(netlink("lookup", e)),
    };
    write_sysctls(netns, ifname).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .address(HOST_MAC.to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| netlink("set MAC", e))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| netlink("set up", e))
}

// ===== helpers =====

fn missing(ifname: &str) -> EndpointError {
    EndpointError::Missing {
        ifname: ifname.to_owned(),
    }
}

/// IPv4 sysctls must succeed; the IPv6 one is skipped when IPv6 is disabled
/// on the interface (its conf directory does not exist).
async fn write_sysctls(netns: Option<&Path>, ifname: &str) -> Result<(), EndpointError> {
    let ns = netns.map(Path::to_path_buf);
    let name = ifname.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        sysctl::write_in(ns.as_deref(), host_sysctls_v4(&name))?;
        match sysctl::write_in(ns.as_deref(), host_sysctls_v6(&name)) {
            Err(SysctlError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            other => other,
        }
    })
    .await
    .unwrap_or(Err(SysctlError::Thread));
    result.map_err(|source| EndpointError::Sysctl {
        ifname: ifname.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::valid_ifname;

    #[test]
    fn names_are_15_chars_stable_and_distinct() {
        let a = host_ifname("default/web-1");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("tort") && valid_ifname(&a));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, host_ifname("default/web-1"));
        assert_ne!(a, host_ifname("default/web-2"));
        // Pinned: the CNI plugin must compute the same name.
        assert_eq!(host_ifname(""), "tortcbf29ce4842");
    }

    #[test]
    fn sysctl_keys_name_the_interface() {
        let v4 = host_sysctls_v4("tortaaaaaaaaaaa");
        assert_eq!(v4[0].key, "net/ipv4/conf/tortaaaaaaaaaaa/proxy_arp");
        assert_eq!(v4[1].key, "net/ipv4/neigh/tortaaaaaaaaaaa/proxy_delay");
        assert_eq!(v4[1].value, "0");
        assert_eq!(host_sysctls_v6("x")[0].key, "net/ipv6/conf/x/accept_ra");
    }
}
