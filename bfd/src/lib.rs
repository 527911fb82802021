//! Bidirectional Forwarding Detection for Tortie: RFC 5880 asynchronous
//! mode over RFC 5881 single-hop and RFC 5883 multihop UDP, IPv4 and
//! IPv6, so that the BGP speaker learns of a dead neighbour in a fraction
//! of a second instead of a hold time.
//!
//! The caller runs a [`Bfd`] service (it owns the sockets), adds sessions
//! through its [`BfdHandle`] with a [`SessionConfig`], and watches each
//! one's [`SessionStatus`]. No authentication, no Echo function, no
//! Demand mode of our own (see `docs/bfd.md`).
//!
//! ```no_run
//! # async fn f() -> Result<(), bfd::BfdError> {
//! use bfd::{Bfd, SessionConfig, State, Timers};
//! use std::time::Duration;
//!
//! let bfd = Bfd::spawn();
//! let cfg = SessionConfig::single_hop("192.0.2.2".parse().unwrap())
//!     .with_timers(Timers::new(Duration::from_millis(100), 3));
//! let mut status = bfd.add(cfg).await?;
//! while status.changed().await.is_ok() {
//!     let s = *status.borrow_and_update();
//!     if s.state == State::Down && s.downs > 0 {
//!         println!("neighbour lost: {:?}", s.local_diag);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`packet`]: Control packet codec, the §6.8.6 checks that need no
//!   session.
//! - [`session`]: one session's state machine, pure (packets and time in,
//!   packets and transitions out).
//! - [`demux`]: which session a packet is for, and the checks that need
//!   it (TTL, A bit, addresses).
//! - [`config`]: session configuration and its validation.
//! - [`counters`]: packets and discards by reason.
//! - [`net`]: the [`Network`] seam and its UDP sockets.
//! - `service`: the owner task ([`Bfd`]); [`api`]: its handle, status and
//!   errors.

pub mod api;
pub mod config;
pub mod counters;
pub mod demux;
pub mod net;
pub mod packet;
mod service;
pub mod session;

pub use api::{BfdError, BfdHandle, SessionInfo, SessionStatus};
pub use config::{AuthType, ConfigError, SessionConfig, SessionKey, Timers};
pub use counters::{Counters, DiscardReason};
pub use net::{Network, UdpNetwork};
pub use packet::{ControlPacket, Diag, State};
pub use service::Bfd;
