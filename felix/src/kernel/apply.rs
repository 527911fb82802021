//! The one executor that writes routes. It owns the request handle; writes
//! are typed [`Request`]s; a failing route never aborts the rest of its
//! batch, it is reported in the [`ApplyReport`] (the reconciler retries with
//! backoff).
//!
//! # Two ways to send
//!
//! - **Batched, no per-request ACK** ([`Executor::open`], what the
//!   reconciler uses): requests are packed [`NOACK_BATCH`] to a `sendmsg` on
//!   a raw netlink socket of the executor's own, *without* `NLM_F_ACK`. The
//!   kernel processes a netlink write synchronously inside `sendmsg`, in
//!   order, and still answers every request that fails with an
//!   `NLMSG_ERROR`; so after each `sendmsg` the error replies of that batch
//!   are already queued: they are read (non-blocking) and matched to their
//!   requests by sequence number. Success is silence. If the socket ever
//!   overflows (ENOBUFS: error replies lost), every request of that batch
//!   is reported as failed with "outcome unknown", so the reconciler
//!   retries with a dump: no failure goes unnoticed. A pass of up to
//!   [`INLINE_MAX`] requests is written on the caller's task; a larger one
//!   on a blocking thread (`spawn_blocking`).
//! - **One ACK per request** ([`Executor::new`]): through the rtnetlink
//!   handle, [`IN_FLIGHT`] requests outstanding. ~1.5x slower on 100,000
//!   routes (docs/benchmarks.md), kept as the fallback and for comparison.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use futures::{stream, StreamExt};
use nix::errno::Errno;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::Serialize;

use super::{KernelError, Links, MAIN_TABLE, TORTIE_RT_PROTO};
use crate::diff::Plan;
use crate::route::{InstalledRoute, KernelRoute, RouteKind};

/// Requests sent per batch; the batches go out one after the other.
pub const BATCH: usize = 1024;
/// Requests in flight at once inside a batch.
pub const IN_FLIGHT: usize = 128;
/// Requests per `sendmsg` without ACK. Small enough that the error replies
/// of a batch in which everything fails fit the socket's receive buffer.
pub const NOACK_BATCH: usize = 256;
/// Receive buffer asked for the no-ACK socket (capped by `rmem_max`).
pub const NOACK_RCVBUF: usize = 4 << 20;

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
    /// The raw socket for batched writes without ACK; `None` = one ACK per
    /// request through `handle`. Taken while a blocking send runs.
    noack: Option<NoAckSocket>,
}

/// A raw NETLINK_ROUTE socket (in the executor's namespace) and the next
/// sequence number.
struct NoAckSocket {
    socket: Socket,
    seq: u32,
    /// The buffer error replies are read into, kept between passes (it
    /// was allocated and zeroed, 64 KiB, for every pass).
    rbuf: Vec<u8>,
}

/// Passes of up to this many requests are written on the caller's task:
/// a few `sendmsg` calls take less than handing the socket to a blocking
/// thread and back (two thread wake-ups per pass, for a learned route
/// usually one `sendmsg`). Larger ones go to a blocking thread.
pub const INLINE_MAX: usize = 64;

// ===== impl Executor =====

impl Executor {
    /// An executor writing through `handle`, one ACK per request.
    pub fn new(handle: Handle) -> Self {
        Executor {
            handle,
            writes: 0,
            noack: None,
        }
    }

    /// An executor that writes in batches without per-request ACKs on a raw
    /// socket of its own, opened in `netns` (`None` = the caller's); dumps
    /// still go through `handle` (opened in the same namespace).
    pub fn open(handle: Handle, netns: Option<&Path>) -> Result<Self, KernelError> {
        let ns = netns.map(Path::to_path_buf);
        let socket = std::thread::spawn(move || {
            crate::netns::enter(ns.as_deref()).map_err(|e| KernelError::Netns {
                path: e.path,
                source: e.source,
            })?;
            let fail = |source| KernelError::Socket {
                netns: ns.clone(),
                source,
            };
            let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
            socket.bind_auto().map_err(fail)?;
            socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
            // Error replies carry only the request's header; best effort.
            let _ = socket.set_cap_ack(true);
            let _ = socket.set_rx_buf_sz(NOACK_RCVBUF);
            // Reads drain what is queued and stop; a netlink send to the
            // kernel is processed synchronously and never waits.
            socket.set_non_blocking(true).map_err(fail)?;
            Ok::<_, KernelError>(socket)
        })
        .join()
        .map_err(|_| KernelError::Socket {
            netns: netns.map(Path::to_path_buf),
            source: std::io::Error::other("netns opener thread panicked"),
        })??;
        Ok(Executor {
            handle,
            writes: 0,
            noack: Some(NoAckSocket {
                socket,
                seq: 1,
                rbuf: Vec::with_capacity(64 * 1024),
            }),
        })
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
        if let Some(sock) = self.noack.as_mut().filter(|_| requests.len() <= INLINE_MAX) {
            let report = sock.execute(requests, links);
            self.writes += report.writes;
            return report;
        }
        if let Some(sock) = self.noack.take() {
            let links = links.clone();
            let run = tokio::task::spawn_blocking(move || {
                let mut sock = sock;
                let report = sock.execute(requests, &links);
                (sock, report)
            });
            let (sock, report) = match run.await {
                Ok(done) => done,
                Err(e) => {
                    // The socket is lost with the thread: fall back to ACKs.
                    tracing::error!(error = %e, "no-ACK writer failed; using one ACK per request");
                    return ApplyReport {
                        writes: 0,
                        failures: vec![Failure {
                            request: Request::Replace(KernelRoute::blackhole(
                                "0.0.0.0/32".parse().expect("valid prefix"),
                            )),
                            errno: None,
                            message: format!("batch writer thread failed: {e}; will retry"),
                        }],
                    };
                }
            };
            self.noack = Some(sock);
            self.writes += report.writes;
            return report;
        }
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

// ===== impl NoAckSocket =====

impl NoAckSocket {
    /// Blocking: sends `requests` in batches of [`NOACK_BATCH`] without
    /// ACK and collects the error replies of each batch after its `sendmsg`.
    /// With more than one batch, a second thread encodes the next batches
    /// while this one sends (the kernel's work happens inside `sendmsg`).
    fn execute(&mut self, requests: Vec<Request>, links: &Links) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let first = self.seq;
        let count = requests.len() as u32;
        if requests.len() <= NOACK_BATCH {
            let batch = encode_batch(&requests, 0, links, first);
            self.send_batch(batch, &requests, &mut rbuf, &mut report);
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Encoded>(4);
            let reqs = &requests;
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    for (k, chunk) in reqs.chunks(NOACK_BATCH).enumerate() {
                        let start = k * NOACK_BATCH;
                        let seq = first.wrapping_add(start as u32);
                        if tx.send(encode_batch(chunk, start, links, seq)).is_err() {
                            return;
                        }
                    }
                });
                for batch in rx {
                    self.send_batch(batch, reqs, &mut rbuf, &mut report);
                }
            });
        }
        self.seq = first.wrapping_add(count);
        self.rbuf = rbuf;
        report
    }

    /// Sends one encoded batch and records its failures.
    fn send_batch(
        &mut self,
        batch: Encoded,
        requests: &[Request],
        rbuf: &mut Vec<u8>,
        report: &mut ApplyReport,
    ) {
        report.failures.extend(batch.failures);
        if batch.sent.is_empty() {
            return;
        }
        report.writes += batch.sent.len() as u64;
        let errors = match self.socket.send(&batch.buf, 0) {
            Ok(_) => drain_errors(&self.socket, rbuf),
            Err(e) => Err(e),
        };
        match errors {
            Ok(errors) => {
                for (seq, code) in errors {
                    let Some(&(_, i)) = batch.sent.iter().find(|(s, _)| *s == seq) else {
                        continue;
                    };
                    if let Some(f) = failure(&requests[i], code) {
                        report.failures.push(f);
                    }
                }
            }
            Err(e) => {
                // Error replies lost (ENOBUFS) or the send failed: the
                // outcome of every request in the batch is unknown.
                tracing::warn!(error = %e, "no-ACK batch outcome unknown");
                report
                    .failures
                    .extend(batch.sent.iter().map(|&(_, i)| Failure {
                        request: requests[i].clone(),
                        errno: e.raw_os_error(),
                        message: format!("{}: outcome unknown ({e}); will retry", requests[i]),
                    }));
            }
        }
    }
}

/// One batch ready for `sendmsg`.
struct Encoded {
    /// The netlink messages, back to back.
    buf: Vec<u8>,
    /// (sequence number, index into the requests) of each message in `buf`.
    sent: Vec<(u32, usize)>,
    /// Requests that could not be built (e.g. a missing interface).
    failures: Vec<Failure>,
}

/// Encodes `chunk` (starting at request index `start`) with sequence
/// numbers from `seq` on (request `start + k` gets `seq + k`).
fn encode_batch(chunk: &[Request], start: usize, links: &Links, seq: u32) -> Encoded {
    let mut out = Encoded {
        buf: Vec::with_capacity(chunk.len() * 64),
        sent: Vec::with_capacity(chunk.len()),
        failures: Vec::new(),
    };
    for (k, req) in chunk.iter().enumerate() {
        match message(req, links) {
            Ok(msg) => {
                let s = seq.wrapping_add(k as u32);
                encode(req, msg, s, &mut out.buf);
                out.sent.push((s, start + k));
            }
            Err(message) => out.failures.push(Failure {
                request: req.clone(),
                errno: None,
                message,
            }),
        }
    }
    out
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

/// Appends `msg` as a netlink request for `req` (no ACK flag) to `buf`.
fn encode(req: &Request, msg: RouteMessage, seq: u32, buf: &mut Vec<u8>) {
    let (inner, flags) = match req {
        Request::Add(_) => (
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
        ),
        Request::Replace(_) => (
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        Request::Delete(_) => (RouteNetlinkMessage::DelRoute(msg), NLM_F_REQUEST),
    };
    let mut nl = NetlinkMessage::from(inner);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.finalize();
    let start = buf.len().next_multiple_of(4);
    buf.resize(start + nl.buffer_len(), 0);
    nl.serialize(&mut buf[start..]);
}

/// Reads every queued reply (the socket is non-blocking): (sequence number, errno) of
/// each error. ENOBUFS (replies lost) is an error.
fn drain_errors(socket: &Socket, rbuf: &mut Vec<u8>) -> std::io::Result<Vec<(u32, i32)>> {
    let mut out = Vec::new();
    loop {
        rbuf.clear();
        match socket.recv(rbuf, 0) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                let mut off = 0;
                while off + 16 <= n {
                    let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    else {
                        break;
                    };
                    let len = (msg.header.length as usize).max(16);
                    if let NetlinkPayload::Error(e) = &msg.payload {
                        if let Some(code) = e.code {
                            out.push((msg.header.sequence_number, code.get().abs()));
                        }
                    }
                    off += len.next_multiple_of(4);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// The failure for `req` failing with `errno`, or `None` where that counts
/// as success (a delete of a route that is already gone).
fn failure(req: &Request, errno: i32) -> Option<Failure> {
    let gone = errno == Errno::ESRCH as i32 || errno == Errno::ENOENT as i32;
    if matches!(req, Request::Delete(_)) && gone {
        return None;
    }
    Some(Failure {
        message: format!("{req}: {}", std::io::Error::from_raw_os_error(errno)),
        request: req.clone(),
        errno: Some(errno),
    })
}

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
