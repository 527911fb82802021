//! Tortie's BGP-4 speaker.
//!
//! A library, not a daemon: it knows nothing of Linux routes, Kubernetes or
//! files. The caller hands it a [`SpeakerConfig`] and locally originated
//! routes; it runs the sessions, the RIBs and the decision process, and hands
//! back a stream of best-path changes and a non-blocking status snapshot.
//! The route reflector (`tortie-rr`), the node agent's mesh and ToR peering
//! are all configurations of it.
//!
//! # Layout
//!
//! - `route`: prefixes and path attributes, independent of the wire.
//! - `packet/`: framing, decoding with RFC 4271 §6 / RFC 7606 handling,
//!   encoding and UPDATE packing: our own codec (netgauze-bgp-pkt is not
//!   RFC 7606-ready and is slower; the tests use it as an oracle).
//! - `config`: the speaker's configuration.
//! - `status`: the serde snapshot for tortiectl, /status and metrics.
//! - `api`: the handle ([`SpeakerHandle`]) and what flows through it.
//! - `explain`: what the speaker holds of one prefix, and why
//!   (`SpeakerHandle::explain`, `tortiectl explain`).
//! - `instance`: the owner task (config, peers, RIB), one dispatch
//!   (`events`); `connect`: connections accepted and our own attempts.
//! - `transport`: what carries a session (TCP, or an in-memory pipe that a
//!   test drives with paused time) and how connections are opened.
//! - `bfd_link/`: BFD sessions with the peers that ask for them, and
//!   what a BFD Down does to BGP.
//! - `memory`: giving memory back to the kernel after a burst of routes.
//! - `error`: errors of the API.

#![doc(html_no_source)]

pub mod api;
mod bfd_link;
pub mod config;
mod connect;
pub mod error;
mod events;
pub mod explain;
mod instance;
mod memory;
mod neighbor;
pub mod packet;
mod reconfig;
mod repolicy;
pub mod rib;
pub mod route;
pub mod status;

pub use api::{BestPath, BestPathChange, LocalRoute, ShutdownMode, SpeakerHandle};
pub use bfd::{
    Counters as BfdCounters, Diag as BfdDiag, DiscardReason as BfdDiscardReason, State as BfdState,
};
pub use config::{
    default_deferral_time, BfdConfig, DynamicPeerConfig, GracefulRestartConfig, MaxPrefix,
    PeerConfig, SpeakerConfig, DEFAULT_MAX_PEERS,
};
pub use error::Error;
pub use explain::PrefixExplain;
pub use instance::{start, start_with, start_with_bfd};
pub use memory::give_back as give_back_memory;
pub use memory::limit_arenas as limit_malloc_arenas;
pub use route::{Afi, NextHop, Origin, PathAttrs, Prefix};
pub use status::{BfdSessionView, PeerBfd, PeerStatus, Refused, SessionState, Status};

/// Connections: TCP, or in-memory pipes (see [`start_with`] and
/// [`SpeakerHandle::accept`]).
pub mod transport {
    pub use crate::neighbor::transport::{Dial, Dialer, Dialing, Stream, TcpDialer, PIPE_BUFFER};
}
