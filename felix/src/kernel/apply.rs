//! The one executor that writes routes. It owns the request handle; writes
//! are typed [`Request`]s; a failing route never aborts the rest of its
//! batch, it is reported in the [`ApplyReport`] (the reconciler retries with
//! backoff).

use std::fmt;
use std::net::IpAddr;

use futures::{stream, StreamExt};
use nix::errno::Errno;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::Serialize;

use super::{Links, MAIN_TABLE, TORTIE_RT_PROTO};
use crate::diff::Plan;
use crate::route::{InstalledRoute, KernelRoute, RouteKind};

/// Requests sent per batch; the batches go out one after the other.
pub const BATCH: usize = 1024;
/// Requests in flight at once inside a batch.
pub const IN_FLIGHT: usize = 128;

/// One kernel write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Request {
    /// `ip route add ROUTE proto 116` (fails with EEXIST if the key is taken,
    /// even by another protocol's route, which is thus never overwritten).
    Add(KernelRoute),
    /// `ip route replace ROUTE proto 116`.
    Replace(KernelRoute),
    /// `ip route del DST proto 116 table main [metric M]`: matches our
    /// protocol only; "no such route" counts as success.
    Delete(InstalledRoute),
}

/// A request that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The request.
    pub request: Request,
    /// The errno, when the kernel gave one.
    pub errno: Option<i32>,
    /// What went wrong, naming the route.
    pub message: String,
}

/// The outcome of one [`Executor::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Netlink write requests sent.
    pub writes: u64,
    /// Requests that failed (the others succeeded).
    pub failures: Vec<Failure>,
}

/// Owns the netlink handle used for writes and counts them.
pub struct Executor {
    handle: Handle,
    writes: u64,
}

// ===== impl Executor =====

impl Executor {
    /// An executor writing through `handle`.
    pub fn new(handle: Handle) -> Self {
        Executor { handle, writes: 0 }
    }

    /// The handle, for dumps.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Writes sent since creation.
    pub fn total_writes(&self) -> u64 {
        self.writes
    }

    /// Applies `plan`: deletes, then replaces, then adds, each in batches of
    /// [`BATCH`] with up to [`IN_FLIGHT`] requests outstanding.
    pub async fn apply(&mut self, plan: &Plan, links: &Links) -> ApplyReport {
        let requests: Vec<Request> = plan
            .delete
            .iter()
            .cloned()
            .map(Request::Delete)
            .chain(plan.replace.iter().cloned().map(Request::Replace))
            .chain(plan.add.iter().cloned().map(Request::Add))
            .collect();
        self.execute(requests, links).await
    }

    /// Sends `requests`; see [`Executor::apply`].
    pub async fn execute(&mut self, requests: Vec<Request>, links: &Links) -> ApplyReport {
        let mut report = ApplyReport::default();
        for batch in requests.chunks(BATCH) {
            let mut ready = Vec::with_capacity(batch.len());
            for req in batch {
                match message(req, links) {
                    Ok(msg) => ready.push((req.clone(), msg)),
                    Err(message) => report.failures.push(Failure {
                        request: req.clone(),
                        errno: None,
                        message,
                    }),
                }
            }
            report.writes += ready.len() as u64;
            let handle = &self.handle;
            let results: Vec<Option<Failure>> = stream::iter(ready)
                .map(|(req, msg)| send(handle, req, msg))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            report.failures.extend(results.into_iter().flatten());
        }
        self.writes += report.writes;
        report
    }
}

// ===== impl Request =====

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Add(r) => write!(f, "ip route add {r} proto {TORTIE_RT_PROTO}"),
            Request::Replace(r) => write!(f, "ip route replace {r} proto {TORTIE_RT_PROTO}"),
            Request::Delete(r) => write!(f, "ip route del {r} proto {TORTIE_RT_PROTO}"),
        }
    }
}

/// Builds the netlink message for `req`. Errors name the route and the
/// missing piece (an interface that does not exist).
pub fn message(req: &Request, links: &Links) -> Result<RouteMessage, String> {
    let (route, delete) = match req {
        Request::Add(r) | Request::Replace(r) => (r, None),
        Request::Delete(r) => (&r.route, Some(r.metric)),
    };
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dst.addr(), route.dst.prefix_len())
        .map_err(|e| format!("{req}: {e}"))?
        .table_id(MAIN_TABLE.into())
        .protocol(RouteProtocol::from(TORTIE_RT_PROTO));
    if let Some(metric) = delete {
        // Like `ip route del`: any type, scope "nowhere" (matches any scope),
        // and the exact metric the dump reported.
        b = b.kind(RouteType::Unspec).scope(RouteScope::NoWhere);
        if let Some(m) = metric {
            b = b.priority(m);
        }
        return Ok(b.build());
    }
    let index = |dev: &str| {
        links
            .index(dev)
            .ok_or_else(|| format!("{req}: interface {dev} does not exist (yet); will retry"))
    };
    b = match &route.kind {
        RouteKind::Link { dev } => b.output_interface(index(dev)?).scope(RouteScope::Link),
        RouteKind::Blackhole => b.kind(RouteType::BlackHole),
        RouteKind::Via {
            gateway,
            dev,
            onlink,
        } => {
            let b = b
                .gateway(*gateway)
                .map_err(|e| format!("{req}: {e}"))?
                .output_interface(index(dev)?);
            if *onlink {
                b.onlink()
            } else {
                b
            }
        }
        RouteKind::Unsupported { what } => {
            return Err(format!("{req}: felix never writes this shape ({what})"))
        }
    };
    Ok(b.build())
}

// ===== helpers =====

/// Sends one request and turns its result into an optional failure.
async fn send(handle: &Handle, req: Request, msg: RouteMessage) -> Option<Failure> {
    let routes = handle.route();
    let result = match &req {
        Request::Add(_) => routes.add(msg).execute().await,
        Request::Replace(_) => routes.add(msg).replace().execute().await,
        Request::Delete(_) => routes.del(msg).execute().await,
    };
    let err = result.err()?;
    let errno = match &err {
        rtnetlink::Error::NetlinkError(e) => Some(e.raw_code().abs()),
        _ => None,
    };
    let gone =
        matches!(errno, Some(code) if code == Errno::ESRCH as i32 || code == Errno::ENOENT as i32);
    if matches!(req, Request::Delete(_)) && gone {
        return None;
    }
    let cause = errno.map_or_else(
        || err.to_string(),
        |c| std::io::Error::from_raw_os_error(c).to_string(),
    );
    Some(Failure {
        message: format!("{req}: {cause}"),
        request: req,
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::{RouteAttribute, RouteFlags};

    fn links() -> Links {
        Links::from_pairs([(7, "tunl0".to_string()), (3, "eth0".to_string())])
    }

    #[test]
    fn delete_matches_our_protocol_any_scope_and_the_metric() {
        let r = InstalledRoute {
            route: KernelRoute::blackhole("10.244.3.0/26".parse().unwrap()),
            metric: Some(5),
        };
        let m = message(&Request::Delete(r), &links()).unwrap();
        assert_eq!(m.header.protocol, RouteProtocol::Other(TORTIE_RT_PROTO));
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert_eq!(m.header.kind, RouteType::Unspec);
        assert_eq!(m.header.table, MAIN_TABLE);
        assert!(m.attributes.contains(&RouteAttribute::Priority(5)));
    }

    #[test]
    fn onlink_via_sets_flag_gateway_and_oif() {
        let r = KernelRoute::via(
            "10.244.7.0/26".parse().unwrap(),
            "192.168.2.21".parse().unwrap(),
            "tunl0",
            true,
        );
        let m = message(&Request::Add(r), &links()).unwrap();
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.destination_prefix_length, 26);
    }

    #[test]
    fn missing_interface_names_route_and_interface() {
        let r = KernelRoute::link("10.244.3.7/32".parse().unwrap(), "tortdeadbeef000");
        let err = message(&Request::Add(r), &links()).unwrap_err();
        assert!(
            err.contains("tortdeadbeef000") && err.contains("10.244.3.7/32"),
            "{err}"
        );
    }
}
