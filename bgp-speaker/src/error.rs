//! Errors the speaker returns to its caller.

use std::net::{IpAddr, SocketAddr};

/// An error of the speaker's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration breaks an invariant; the message names the field.
    #[error("invalid speaker configuration: {0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// TCP MD5 could not be set for a peer.
    #[error("cannot set TCP MD5 key for peer {peer}: {source}")]
    Md5 {
        peer: IpAddr,
        #[source]
        source: std::io::Error,
    },
    /// The listener's GTSM settings (RFC 5082: TTL 255, the minimum TTL,
    /// keeping SYNs) could not be set.
    #[error("cannot set GTSM (IP_TTL, IP_MINTTL, TCP_SAVE_SYN) on the listener {addr}: {source}")]
    Gtsm {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The speaker task is gone (shut down or crashed).
    #[error("the BGP speaker is not running")]
    Stopped,
}
