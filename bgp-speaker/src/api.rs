//! The speaker's public handle: start it, feed it local routes, reconfigure
//! it, read its status, stop it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::SpeakerConfig;
use crate::error::Error;
use crate::neighbor::transport::Stream;
use crate::route::{PathAttrs, Prefix};
use crate::status::Status;

/// Capacity of the command and best-path channels. Bounded: a slow consumer
/// slows the decision process, it does not grow memory.
pub(crate) const CHANNEL_CAPACITY: usize = 1024;

/// A route this speaker originates (e.g. a node's pod block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRoute {
    pub prefix: Prefix,
    /// Attributes; usually `PathAttrs::local(next_hop)`. The next hop is
    /// replaced by the session's local address when sent to a peer.
    pub attrs: PathAttrs,
}

/// A change of the best path of one prefix in the Loc-RIB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestPathChange {
    pub prefix: Prefix,
    /// The new best path, or `None` when the prefix is gone.
    pub best: Option<BestPath>,
}

/// The winner of the decision process for one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestPath {
    pub attrs: Arc<PathAttrs>,
    /// The peer it was learned from; `None` for a local route.
    pub peer: Option<IpAddr>,
}

/// How to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Send Cease / Administrative Shutdown (RFC 4486 subcode 2): peers
    /// drop our routes at once.
    Hard,
    /// A planned restart: peers that negotiated graceful restart keep our
    /// routes as stale for our restart time. Per Established session:
    /// - graceful restart with the N bit (RFC 8538) on both sides: Cease /
    ///   Administrative Reset (RFC 4486 subcode 4), which such a peer
    ///   takes as a restart;
    /// - graceful restart without the N bit (BIRD 2.0, for one): the TCP
    ///   connection is closed without a NOTIFICATION (RFC 4724 §4), since
    ///   such a peer drops our routes at any NOTIFICATION;
    /// - no graceful restart: Cease / Administrative Reset (our routes go
    ///   anyway; it says why).
    ///
    /// Sessions not yet Established get Cease / Administrative Reset.
    Graceful,
}

/// Messages from handles to the instance task.
#[derive(Debug)]
pub(crate) enum Command {
    Reconfigure(SpeakerConfig, oneshot::Sender<Result<(), Error>>),
    Ping(oneshot::Sender<()>),
    /// A connection a peer opened, accepted elsewhere.
    Accept(Stream, SocketAddr),
    /// Publish a snapshot with the counters as they are now, and send it.
    Status(oneshot::Sender<Arc<Status>>),
    /// What the speaker holds of a prefix (or the longest one holding it).
    Explain(Prefix, oneshot::Sender<crate::explain::PrefixExplain>),
    Originate(Vec<LocalRoute>),
    Withdraw(Vec<Prefix>),
    Shutdown(ShutdownMode, oneshot::Sender<()>),
}

/// A cheap, cloneable handle to a running speaker.
#[derive(Clone, Debug)]
pub struct SpeakerHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) status: watch::Receiver<Arc<Status>>,
}

// ===== impl SpeakerHandle =====

impl SpeakerHandle {
    /// The latest status snapshot. Never blocks the sessions. A snapshot
    /// is published at once when a session changes state, a peer comes or
    /// goes, or the restart deferral ends; counters (messages, prefixes,
    /// the Loc-RIB size) that changed alone are published at the next
    /// second, so they may be up to a second old here: see
    /// [`Self::fresh_status`]. (A snapshot after every UPDATE was work per
    /// peer for every UPDATE.)
    pub fn status(&self) -> Arc<Status> {
        self.status.borrow().clone()
    }

    /// A snapshot with every counter as it is now (published to the
    /// watchers too).
    pub async fn fresh_status(&self) -> Result<Arc<Status>, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// A receiver that wakes on each new status snapshot (see
    /// [`Self::status`] for when one is published). Do not hold its borrow
    /// guard across an `.await`: it blocks the speaker from publishing.
    pub fn watch_status(&self) -> watch::Receiver<Arc<Status>> {
        self.status.clone()
    }

    /// Applies a new configuration: peers added or removed, or whose
    /// settings changed, are started, stopped or restarted; all other
    /// sessions are left alone. An invalid configuration is rejected and the
    /// running one stays.
    pub async fn reconfigure(&self, config: SpeakerConfig) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure(config, tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Answers once the speaker task has taken this request: a liveness
    /// check (`/healthz`) that changes nothing.
    pub async fn ping(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Ping(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Hands the speaker a connection that the peer at `from` opened, as
    /// its listener does with each connection it accepts: the same checks
    /// (a configured or dynamic peer, the limits) apply. For a peer with
    /// GTSM (`ttl_security`) that includes the TTL of the connection's
    /// SYN, which only a listener with `TCP_SAVE_SYN` keeps: from any
    /// other, such a peer's TCP connection is refused (a pipe passes).
    pub async fn accept(&self, stream: Stream, from: SocketAddr) -> Result<(), Error> {
        self.commands
            .send(Command::Accept(stream, from))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// What the speaker knows of `prefix`, or of the longest prefix
    /// holding it that it knows (an address as a /32 or /128 finds its
    /// block): every path held in decision order with why each lost, and
    /// each peer's announcement, import and export rules for it
    /// ([`crate::explain`]).
    pub async fn explain(&self, prefix: Prefix) -> Result<crate::explain::PrefixExplain, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Explain(prefix, tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Adds or replaces locally originated routes.
    pub async fn originate(&self, routes: Vec<LocalRoute>) -> Result<(), Error> {
        self.commands
            .send(Command::Originate(routes))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Withdraws locally originated routes.
    pub async fn withdraw(&self, prefixes: Vec<Prefix>) -> Result<(), Error> {
        self.commands
            .send(Command::Withdraw(prefixes))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Stops every session and the speaker, and waits until done.
    pub async fn shutdown(&self, mode: ShutdownMode) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown(mode, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}
