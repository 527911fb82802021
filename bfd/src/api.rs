//! The service's handle ([`BfdHandle`]) and what flows through it: the
//! requests, the per-session status a subscriber watches
//! ([`SessionStatus`]), the listing ([`SessionInfo`]) and the errors
//! ([`BfdError`]).
//!
//! A subscriber (the BGP speaker) gets a `watch::Receiver<SessionStatus>`
//! per session. The service publishes into it in the same step that
//! changes the state, so "Down after Up" is there the instant it is
//! decided, with its diagnostic. A watch keeps only the latest value: if
//! a session went down and up again between two looks, `downs` tells.
//! The sender is dropped when the session is removed.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{ConfigError, SessionConfig, SessionKey, Timers};
use crate::counters::Counters;
use crate::packet::{Diag, State};
use crate::session::{Session, Stats};

/// Requests queued to the service before the caller waits.
pub(crate) const REQUEST_QUEUE: usize = 64;

/// A session's state as its subscribers see it. Changes only with the
/// session's state, the remote's state, the negotiated intervals or the
/// discriminators: never once per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// bfd.SessionState.
    pub state: State,
    /// Why our state last changed (Down after Up: detection time expired,
    /// or the neighbour signalled it).
    pub local_diag: Diag,
    /// The remote's state as last heard. AdminDown with our state Down
    /// means the peer turned BFD off, not a failure (RFC 5882 §3.2).
    pub remote_state: State,
    /// The remote's diagnostic as last heard.
    pub remote_diag: Diag,
    /// Our discriminator.
    pub local_discr: u32,
    /// The remote's discriminator (0 until heard, and after silence).
    pub remote_discr: u32,
    /// Interval between our packets before jitter; None while the remote
    /// asks for none.
    pub tx_interval: Option<Duration>,
    /// How long a silence brings the session down; None until heard.
    pub detection_time: Option<Duration>,
    /// The remote's Detect Mult (0 until heard).
    pub remote_multiplier: u8,
    /// Times the session went Up.
    pub ups: u64,
    /// Times it went from Up to Down or AdminDown.
    pub downs: u64,
    /// When the state last changed.
    #[serde(skip)]
    pub since: Instant,
}

/// One session in the listing ([`BfdHandle::sessions`]).
#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    /// Its key.
    pub key: SessionKey,
    /// Its configured timers.
    pub timers: Timers,
    /// Its status.
    pub status: SessionStatus,
    /// Packets accepted for it.
    pub rx_packets: u64,
    /// Packets sent for it.
    pub tx_packets: u64,
}

/// Why a request failed.
#[derive(Debug, Error)]
pub enum BfdError {
    /// The configuration is refused.
    #[error("BFD session to {peer}: {source}")]
    Config {
        /// The session's peer.
        peer: IpAddr,
        /// What is wrong.
        #[source]
        source: ConfigError,
    },
    /// A session with this key exists.
    #[error("BFD session {0:?} exists: remove it first or reconfigure it")]
    Exists(SessionKey),
    /// Another session would receive the same packets.
    #[error(
        "BFD session {key:?} conflicts with {existing:?}: same peer on the same (or any) interface"
    )]
    Conflict {
        /// What was asked for.
        key: Box<SessionKey>,
        /// The session in the way.
        existing: Box<SessionKey>,
    },
    /// No session has this key.
    #[error("no BFD session {0:?}")]
    NotFound(SessionKey),
    /// A socket could not be made.
    #[error("BFD session to {peer}: {source}")]
    Io {
        /// The session's peer.
        peer: IpAddr,
        /// The system's error, naming the step.
        #[source]
        source: io::Error,
    },
    /// The service has stopped.
    #[error("the BFD service has stopped")]
    Stopped,
}

/// What the handle asks the service; each carries its reply.
#[derive(Debug)]
pub(crate) enum Request {
    Add(SessionConfig, Reply<watch::Receiver<SessionStatus>>),
    Remove(SessionKey, Reply<()>),
    Reconfigure(SessionKey, Timers, Reply<()>),
    AdminDown(SessionKey, bool, Reply<()>),
    Subscribe(SessionKey, Reply<watch::Receiver<SessionStatus>>),
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    Counters(oneshot::Sender<Counters>),
    Shutdown(oneshot::Sender<()>),
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, BfdError>>;

/// Talks to a running service. Cheap to clone; the service stops (and
/// tells every peer AdminDown) when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct BfdHandle {
    pub(crate) tx: mpsc::Sender<Request>,
}

// ===== impl SessionStatus =====

impl SessionStatus {
    /// The status of `s` now.
    pub(crate) fn of(s: &Session) -> SessionStatus {
        let r = s.remote();
        let Stats { ups, downs, .. } = s.stats();
        SessionStatus {
            state: s.state(),
            local_diag: s.diag(),
            remote_state: r.state,
            remote_diag: r.diag,
            local_discr: s.local_discr(),
            remote_discr: r.discr,
            tx_interval: s.tx_interval(),
            detection_time: s.detection_time(),
            remote_multiplier: r.detect_mult,
            ups,
            downs,
            since: s.since(),
        }
    }
}

// ===== impl BfdHandle =====

impl BfdHandle {
    /// Adds a session and subscribes to it. It starts Down and sends its
    /// first packet at once. Errors: the configuration
    /// ([`BfdError::Config`]), a session with the same key or the same
    /// demultiplexing path, a socket that could not be made.
    pub async fn add(
        &self,
        cfg: SessionConfig,
    ) -> Result<watch::Receiver<SessionStatus>, BfdError> {
        self.ask(|r| Request::Add(cfg, r)).await?
    }

    /// Removes a session: it sends AdminDown once (so the peer knows it
    /// was deliberate) and its subscribers' watches close.
    pub async fn remove(&self, key: &SessionKey) -> Result<(), BfdError> {
        self.ask(|r| Request::Remove(key.clone(), r)).await?
    }

    /// New timers for a session; while Up they are negotiated with a Poll
    /// Sequence without taking the session down.
    pub async fn reconfigure(&self, key: &SessionKey, timers: Timers) -> Result<(), BfdError> {
        self.ask(|r| Request::Reconfigure(key.clone(), timers, r))
            .await?
    }

    /// Holds a session in AdminDown (`true`), or lets it come up again.
    pub async fn set_admin_down(&self, key: &SessionKey, down: bool) -> Result<(), BfdError> {
        self.ask(|r| Request::AdminDown(key.clone(), down, r))
            .await?
    }

    /// Another subscription to an existing session.
    pub async fn subscribe(
        &self,
        key: &SessionKey,
    ) -> Result<watch::Receiver<SessionStatus>, BfdError> {
        self.ask(|r| Request::Subscribe(key.clone(), r)).await?
    }

    /// Every session, sorted by key.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, BfdError> {
        self.ask(Request::Sessions).await
    }

    /// The service's counters.
    pub async fn counters(&self) -> Result<Counters, BfdError> {
        self.ask(Request::Counters).await
    }

    /// Sends AdminDown on every session and stops the service.
    pub async fn shutdown(&self) -> Result<(), BfdError> {
        self.ask(Request::Shutdown).await
    }

    async fn ask<T>(&self, req: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, BfdError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(req(tx)).await.map_err(|_| BfdError::Stopped)?;
        rx.await.map_err(|_| BfdError::Stopped)
    }
}
