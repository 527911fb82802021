//! BFD Control packets (RFC 5880 §4.1): encoding, and decoding with the
//! reception checks of §6.8.6 that need no session.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checks that need a session (which one the Your Discriminator names,
//! whether it uses authentication, the received TTL) are the demux's
//! (`crate::demux`). This crate sends no authentication section: encoding
//! writes the 24-byte mandatory section only.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::counters::DiscardReason;

/// The protocol version this crate speaks (RFC 5880 §4.1 "Vers").
pub const VERSION: u8 = 1;

/// Length of the mandatory section, and of every packet we send.
pub const HEADER_LEN: usize = 24;

/// Smallest valid Length with the A bit set: the mandatory section plus
/// Auth Type and Auth Len (RFC 5880 §6.8.6).
pub const MIN_AUTH_LEN: usize = 26;

/// A session state (RFC 5880 §4.1 "Sta", §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// 0: held down by configuration.
    AdminDown,
    /// 1: no session, or it failed.
    Down,
    /// 2: we hear the remote system, it has not yet heard us.
    Init,
    /// 3: both systems hear each other.
    Up,
}

/// A diagnostic code: why the session last left Up (RFC 5880 §4.1 "Diag").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Diag {
    /// 0: No Diagnostic.
    None,
    /// 1: Control Detection Time Expired: no packet for a detection time.
    ControlDetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFunctionFailed,
    /// 3: Neighbor Signaled Session Down: the remote said Down or AdminDown.
    NeighborSignaledSessionDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdministrativelyDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9-31: reserved; kept so that what we received can be shown.
    Reserved(u8),
}

/// The single-bit fields of the second byte (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    /// P: the sender asks for verification (a Poll Sequence, §6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// A: an authentication section follows.
    pub auth: bool,
    /// D: the sender wants Demand mode.
    pub demand: bool,
    /// M: reserved for multipoint; must be zero.
    pub multipoint: bool,
}

/// A decoded BFD Control packet. Intervals are in microseconds, as on the
/// wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPacket {
    /// Why the sender's session last changed state.
    pub diag: Diag,
    /// The sender's session state.
    pub state: State,
    /// P, F, C, A, D, M.
    pub flags: Flags,
    /// The sender's detection multiplier (never 0 once decoded).
    pub detect_mult: u8,
    /// The sender's discriminator (never 0 once decoded).
    pub my_discr: u32,
    /// Our discriminator as the sender knows it, or 0.
    pub your_discr: u32,
    /// How often the sender wants to send, in µs.
    pub desired_min_tx: u32,
    /// How often the sender can receive, in µs; 0: stop sending.
    pub required_min_rx: u32,
    /// Echo interval the sender can receive, in µs; 0: no echo.
    pub required_min_echo_rx: u32,
    /// Auth Type of the authentication section when the A bit is set.
    pub auth_type: Option<u8>,
}

/// Why a received datagram is not a valid Control packet (RFC 5880
/// §6.8.6, the checks that need no session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the version and length fields.
    #[error("{len} bytes: too short for a BFD Control packet")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// Version is not 1.
    #[error("version {0}, expected 1")]
    BadVersion(u8),
    /// Length below 24, or below 26 with the A bit, or an authentication
    /// section whose Auth Len does not fit.
    #[error("length {length} invalid (A bit {auth})")]
    BadLength {
        /// The Length field.
        length: u8,
        /// The A bit.
        auth: bool,
    },
    /// Length larger than the UDP payload.
    #[error("length {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// The UDP payload length.
        payload: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier 0")]
    DetectMultZero,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator 0")]
    MyDiscriminatorZero,
    /// Your Discriminator is zero while State is Init or Up.
    #[error("your discriminator 0 in state {0:?}")]
    YourDiscriminatorZero(State),
}

// ===== impl State =====

impl State {
    /// The two-bit wire value.
    pub fn to_bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// From the two-bit wire value (higher bits ignored).
    pub fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Lower-case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

// ===== impl Diag =====

impl Diag {
    /// The five-bit wire value.
    pub fn to_bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(v) => v & 0x1f,
        }
    }

    /// From the five-bit wire value (higher bits ignored).
    pub fn from_bits(bits: u8) -> Diag {
        match bits & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            v => Diag::Reserved(v),
        }
    }

    /// Lower-case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Diag::None => "none",
            Diag::ControlDetectionTimeExpired => "control_detection_time_expired",
            Diag::EchoFunctionFailed => "echo_function_failed",
            Diag::NeighborSignaledSessionDown => "neighbor_signaled_session_down",
            Diag::ForwardingPlaneReset => "forwarding_plane_reset",
            Diag::PathDown => "path_down",
            Diag::ConcatenatedPathDown => "concatenated_path_down",
            Diag::AdministrativelyDown => "administratively_down",
            Diag::ReverseConcatenatedPathDown => "reverse_concatenated_path_down",
            Diag::Reserved(_) => "reserved",
        }
    }
}

// ===== impl Flags =====

impl Flags {
    /// The six low bits of the second byte.
    pub fn to_bits(self) -> u8 {
        (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.auth) << 2)
            | (u8::from(self.demand) << 1)
            | u8::from(self.multipoint)
    }

    /// From the second byte (the state bits ignored).
    pub fn from_bits(bits: u8) -> Flags {
        Flags {
            poll: bits & 0x20 != 0,
            final_: bits & 0x10 != 0,
            control_plane_independent: bits & 0x08 != 0,
            auth: bits & 0x04 != 0,
            demand: bits & 0x02 != 0,
            multipoint: bits & 0x01 != 0,
        }
    }
}

// ===== impl ControlPacket =====

impl ControlPacket {
    /// The 24-byte wire form (no authentication section; Length 24).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = (VERSION << 5) | self.diag.to_bits();
        b[1] = (self.state.to_bits() << 6) | self.flags.to_bits();
        b[2] = self.detect_mult;
        b[3] = HEADER_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }

    /// Decodes a UDP payload, in the order RFC 5880 §6.8.6 lists the
    /// checks: version, Length against the A bit, Length against the
    /// payload, Detect Mult, M bit, My Discriminator, and Your
    /// Discriminator 0 outside Down/AdminDown. Bytes past Length are
    /// ignored.
    pub fn decode(buf: &[u8]) -> Result<ControlPacket, DecodeError> {
        if buf.len() < 4 {
            return Err(DecodeError::TooShort { len: buf.len() });
        }
        let version = buf[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let flags = Flags::from_bits(buf[1]);
        let length = buf[3];
        let min = if flags.auth { MIN_AUTH_LEN } else { HEADER_LEN };
        if usize::from(length) < min {
            return Err(DecodeError::BadLength {
                length,
                auth: flags.auth,
            });
        }
        if usize::from(length) > buf.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                payload: buf.len(),
            });
        }
        let auth_type = if flags.auth {
            // Auth Len counts the whole section, type and length included.
            let auth_len = usize::from(buf[25]);
            if auth_len < 2 || HEADER_LEN + auth_len > usize::from(length) {
                return Err(DecodeError::BadLength { length, auth: true });
            }
            Some(buf[24])
        } else {
            None
        };
        let detect_mult = buf[2];
        if detect_mult == 0 {
            return Err(DecodeError::DetectMultZero);
        }
        if flags.multipoint {
            return Err(DecodeError::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let my_discr = word(4);
        if my_discr == 0 {
            return Err(DecodeError::MyDiscriminatorZero);
        }
        let state = State::from_bits(buf[1] >> 6);
        let your_discr = word(8);
        if your_discr == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::YourDiscriminatorZero(state));
        }
        Ok(ControlPacket {
            diag: Diag::from_bits(buf[0]),
            state,
            flags,
            detect_mult,
            my_discr,
            your_discr,
            desired_min_tx: word(12),
            required_min_rx: word(16),
            required_min_echo_rx: word(20),
            auth_type,
        })
    }
}

// ===== impl DecodeError =====

impl DecodeError {
    /// The counter this discard goes to.
    pub fn reason(&self) -> DiscardReason {
        match self {
            DecodeError::TooShort { .. } => DiscardReason::TooShort,
            DecodeError::BadVersion(_) => DiscardReason::BadVersion,
            DecodeError::BadLength { .. } => DiscardReason::BadLength,
            DecodeError::LengthExceedsPayload { .. } => DiscardReason::LengthExceedsPayload,
            DecodeError::DetectMultZero => DiscardReason::DetectMultZero,
            DecodeError::Multipoint => DiscardReason::Multipoint,
            DecodeError::MyDiscriminatorZero => DiscardReason::MyDiscriminatorZero,
            DecodeError::YourDiscriminatorZero(_) => DiscardReason::YourDiscriminatorZero,
        }
    }
}
