//! NOTIFICATION codes (RFC 4271 §4.5, RFC 7313 §5) and the constructors of
//! [`DecodeError`] the decoders use, so that every error names the field,
//! the value and what is wrong.

use super::{DecodeError, Notification};

/// Error code 1: Message Header Error (RFC 4271 §6.1).
pub const HEADER_ERROR: u8 = 1;
/// Error code 2: OPEN Message Error (RFC 4271 §6.2).
pub const OPEN_ERROR: u8 = 2;
/// Error code 3: UPDATE Message Error (RFC 4271 §6.3).
pub const UPDATE_ERROR: u8 = 3;
/// Error code 7: ROUTE-REFRESH Message Error (RFC 7313 §5).
pub const ROUTE_REFRESH_ERROR: u8 = 7;

/// 1/1 Connection Not Synchronized.
pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
/// 1/2 Bad Message Length.
pub const BAD_MESSAGE_LENGTH: u8 = 2;
/// 1/3 Bad Message Type.
pub const BAD_MESSAGE_TYPE: u8 = 3;

/// 2/0 unspecific OPEN error (malformed optional parameters).
pub const OPEN_UNSPECIFIC: u8 = 0;
/// 2/1 Unsupported Version Number.
pub const UNSUPPORTED_VERSION: u8 = 1;
/// 2/2 Bad Peer AS.
pub const BAD_PEER_AS: u8 = 2;
/// 2/3 Bad BGP Identifier.
pub const BAD_BGP_IDENTIFIER: u8 = 3;
/// 2/4 Unsupported Optional Parameter.
pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
/// 2/6 Unacceptable Hold Time.
pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;

/// 3/1 Malformed Attribute List.
pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
/// 3/2 Unrecognized Well-known Attribute.
pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
/// 3/9 Optional Attribute Error.
pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
/// 3/10 Invalid Network Field.
pub const INVALID_NETWORK_FIELD: u8 = 10;

/// 7/1 Invalid Message Length (RFC 7313 §5).
pub const RR_INVALID_LENGTH: u8 = 1;

// ===== impl DecodeError =====

impl DecodeError {
    /// A decode error that asks for NOTIFICATION `code`/`subcode` with `data`.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            notification: Notification {
                code,
                subcode,
                data,
            },
            reason: reason.into(),
        }
    }

    /// 1/2 Bad Message Length; the data is the erroneous length field.
    pub(crate) fn bad_length(len: u16, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(
            HEADER_ERROR,
            BAD_MESSAGE_LENGTH,
            len.to_be_bytes().to_vec(),
            reason,
        )
    }

    /// 3/1 Malformed Attribute List (no data, RFC 4271 §6.3).
    pub(crate) fn malformed_attr_list(reason: impl Into<String>) -> DecodeError {
        DecodeError::new(UPDATE_ERROR, MALFORMED_ATTRIBUTE_LIST, Vec::new(), reason)
    }

    /// 3/10 Invalid Network Field (no data, RFC 4271 §6.3).
    pub(crate) fn invalid_network(reason: impl Into<String>) -> DecodeError {
        DecodeError::new(UPDATE_ERROR, INVALID_NETWORK_FIELD, Vec::new(), reason)
    }

    /// 2/0 malformed OPEN optional parameters.
    pub(crate) fn open_malformed(reason: impl Into<String>) -> DecodeError {
        DecodeError::new(OPEN_ERROR, OPEN_UNSPECIFIC, Vec::new(), reason)
    }
}
