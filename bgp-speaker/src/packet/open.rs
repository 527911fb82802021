//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional
//! parameters length (RFC 9072), both ways. Written by hand: the fields are
//! few, and the error mapping (2/0, 2/1, 2/3, 2/4, 2/6) must be ours.
//!
//! Relational checks (peer AS 2/2, unsupported capability 2/7, identifier
//! equal to ours) belong to the session, which knows the configuration.

use std::net::Ipv4Addr;

use super::error::*;
use super::frame::{finish_header, start_message, OPEN};
use super::{Capabilities, DecodeError, GracefulRestartCap, Open, HEADER_LEN};
use crate::route::Afi;

/// The only BGP version we speak (RFC 4271).
const VERSION: u8 = 4;
/// AS_TRANS (RFC 6793 §9): My AS of a speaker whose ASN needs 4 octets.
pub(crate) const AS_TRANS: u32 = 23456;

/// Optional parameter type: capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// Optional parameter type marking RFC 9072 extended parameters.
const PARAM_EXTENDED: u8 = 255;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_EXTENDED_MESSAGE: u8 = 6;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_ENHANCED_ROUTE_REFRESH: u8 = 70;

/// GR flags (RFC 4724 §3, RFC 8538 §2): R, N; per family: F.
const GR_RESTART: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING: u8 = 0x80;
/// Room for capabilities in a 4096-octet OPEN with RFC 9072 parameters
/// (header, 10 fixed octets, 3 of extended length, 3 of parameter header).
const MAX_CAPS_LEN: usize = 4096 - HEADER_LEN - 10 - 3 - 3;

/// Decodes the OPEN `msg` (header included, framed).
pub(crate) fn decode_open(msg: &[u8]) -> Result<Open, DecodeError> {
    let body = &msg[HEADER_LEN..];
    let version = body[0];
    if version != VERSION {
        // RFC 4271 §6.2: data = the largest supported version, 2 octets.
        return Err(DecodeError::new(
            OPEN_ERROR,
            UNSUPPORTED_VERSION,
            u16::from(VERSION).to_be_bytes().to_vec(),
            format!("OPEN version {version} is not 4"),
        ));
    }
    let my_as = u16::from_be_bytes([body[1], body[2]]);
    let hold_time = u16::from_be_bytes([body[3], body[4]]);
    if hold_time == 1 || hold_time == 2 {
        // RFC 4271 §6.2: hold time MUST be 0 or at least 3.
        return Err(DecodeError::new(
            OPEN_ERROR,
            UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
            format!("OPEN hold time {hold_time} is neither 0 nor >= 3"),
        ));
    }
    let router_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
    if router_id.is_unspecified() {
        // RFC 6286 §2.1: the identifier is any non-zero 32-bit value (it need
        // not be a unicast address), so zero is the only invalid one.
        return Err(DecodeError::new(
            OPEN_ERROR,
            BAD_BGP_IDENTIFIER,
            Vec::new(),
            "OPEN BGP identifier is 0.0.0.0",
        ));
    }
    let capabilities = read_params(&body[9..])?;
    let asn = match capabilities.four_octet_as {
        // RFC 6793 §4.1: with the capability, its value is the AS (My AS
        // then normally holds AS_TRANS).
        Some(a) => a,
        None => u32::from(my_as),
    };
    if asn == 0 {
        // RFC 7607 §4: AS 0 in OPEN is Bad Peer AS.
        return Err(DecodeError::new(
            OPEN_ERROR,
            BAD_PEER_AS,
            my_as.to_be_bytes().to_vec(),
            "OPEN peer AS is 0",
        ));
    }
    Ok(Open {
        version,
        asn,
        hold_time,
        router_id,
        capabilities,
    })
}

/// Reads the optional parameters (from the length octet on).
fn read_params(buf: &[u8]) -> Result<Capabilities, DecodeError> {
    let short_len = usize::from(buf[0]);
    let extended = short_len == 255 && buf.get(1) == Some(&PARAM_EXTENDED);
    let (params, hdr) = if extended {
        // RFC 9072 §2: 255, type 255, then a 2-octet length; each parameter
        // then has a 2-octet length too.
        let Some(l) = buf.get(2..4) else {
            return Err(DecodeError::open_malformed(
                "OPEN extended optional parameters length is truncated",
            ));
        };
        (usize::from(u16::from_be_bytes([l[0], l[1]])), 4)
    } else {
        (short_len, 1)
    };
    let rest = &buf[hdr..];
    if rest.len() != params {
        return Err(DecodeError::open_malformed(format!(
            "OPEN optional parameters length {params} but {} octets follow",
            rest.len()
        )));
    }
    let mut caps = Capabilities::default();
    let mut i = 0;
    while i < rest.len() {
        let ptype = rest[i];
        let (plen, phdr) = if extended {
            match rest.get(i + 1..i + 3) {
                Some(l) => (usize::from(u16::from_be_bytes([l[0], l[1]])), 3),
                None => (usize::MAX, 3),
            }
        } else {
            match rest.get(i + 1) {
                Some(l) => (usize::from(*l), 2),
                None => (usize::MAX, 2),
            }
        };
        let Some(value) = rest.get(i + phdr..(i + phdr).saturating_add(plen)) else {
            return Err(DecodeError::open_malformed(format!(
                "OPEN optional parameter type {ptype} at offset {i} overruns the parameters"
            )));
        };
        if ptype != PARAM_CAPABILITIES {
            // RFC 4271 §6.2: an unrecognized optional parameter.
            return Err(DecodeError::new(
                OPEN_ERROR,
                UNSUPPORTED_OPTIONAL_PARAMETER,
                Vec::new(),
                format!("OPEN optional parameter type {ptype} is not supported"),
            ));
        }
        read_capabilities(value, &mut caps)?;
        i += phdr + plen;
    }
    Ok(caps)
}

/// Reads the capabilities of one capabilities parameter into `caps`.
fn read_capabilities(buf: &[u8], caps: &mut Capabilities) -> Result<(), DecodeError> {
    let mut i = 0;
    while i < buf.len() {
        let code = buf[i];
        let Some(&len) = buf.get(i + 1) else {
            return Err(DecodeError::open_malformed(format!(
                "capability {code} at offset {i} has no length"
            )));
        };
        let Some(v) = buf.get(i + 2..i + 2 + usize::from(len)) else {
            return Err(DecodeError::open_malformed(format!(
                "capability {code} length {len} overruns its parameter"
            )));
        };
        let bad_len = |want: &str| {
            DecodeError::open_malformed(format!(
                "capability {code} has length {len}, expected {want}"
            ))
        };
        match code {
            CAP_MULTIPROTOCOL => {
                if v.len() != 4 {
                    return Err(bad_len("4"));
                }
                match family(u16::from_be_bytes([v[0], v[1]]), v[3]) {
                    Some(afi) if !caps.multiprotocol.contains(&afi) => caps.multiprotocol.push(afi),
                    Some(_) => {}
                    None => caps.unknown.push((code, v.to_vec())),
                }
            }
            CAP_ROUTE_REFRESH | CAP_ENHANCED_ROUTE_REFRESH | CAP_EXTENDED_MESSAGE => {
                if !v.is_empty() {
                    return Err(bad_len("0"));
                }
                match code {
                    CAP_ROUTE_REFRESH => caps.route_refresh = true,
                    CAP_ENHANCED_ROUTE_REFRESH => caps.enhanced_route_refresh = true,
                    _ => caps.extended_message = true,
                }
            }
            CAP_FOUR_OCTET_AS => {
                if v.len() != 4 {
                    return Err(bad_len("4"));
                }
                caps.four_octet_as = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
            }
            CAP_GRACEFUL_RESTART => {
                if v.len() < 2 || (v.len() - 2) % 4 != 0 {
                    return Err(bad_len("2 + 4n"));
                }
                let flags = u16::from_be_bytes([v[0], v[1]]);
                let mut gr = GracefulRestartCap {
                    restart_state: flags & GR_RESTART != 0,
                    notification: flags & GR_NOTIFICATION != 0,
                    restart_time: flags & GR_TIME_MASK,
                    families: Vec::new(),
                };
                for f in v[2..].chunks_exact(4) {
                    // Families we do not carry are left out (RFC 4724 §3).
                    if let Some(afi) = family(u16::from_be_bytes([f[0], f[1]]), f[2]) {
                        gr.families.push((afi, f[3] & GR_FORWARDING != 0));
                    }
                }
                caps.graceful_restart = Some(gr);
            }
            _ => caps.unknown.push((code, v.to_vec())),
        }
        i += 2 + usize::from(len);
    }
    Ok(())
}

/// Maps AFI/SAFI to the unicast families we carry.
pub(crate) fn family(afi: u16, safi: u8) -> Option<Afi> {
    match (afi, safi) {
        (1, 1) => Some(Afi::Ipv4),
        (2, 1) => Some(Afi::Ipv6),
        _ => None,
    }
}

/// The AFI number of a family (RFC 4760 §3; SAFI is always 1, unicast).
pub(crate) fn afi_number(afi: Afi) -> u16 {
    match afi {
        Afi::Ipv4 => 1,
        Afi::Ipv6 => 2,
    }
}

/// Encodes an OPEN: version 4, My AS (AS_TRANS when `open.asn` needs 4
/// octets, RFC 6793 §4.1), hold time, identifier, and one capabilities
/// parameter holding, in order: one multiprotocol capability per family,
/// route refresh, enhanced route refresh, 4-octet AS
/// (`capabilities.four_octet_as`, which the session sets to its ASN),
/// graceful restart (R, N, time, F bit per family), extended message, then
/// the `unknown` ones as given. Parameters longer than 255 octets use the
/// RFC 9072 extended format. The `version` field is ignored (always 4).
pub fn encode_open(open: &Open) -> Vec<u8> {
    let c = &open.capabilities;
    let mut caps = Vec::with_capacity(64);
    for afi in &c.multiprotocol {
        caps.extend_from_slice(&[CAP_MULTIPROTOCOL, 4]);
        caps.extend_from_slice(&afi_number(*afi).to_be_bytes());
        caps.extend_from_slice(&[0, 1]);
    }
    if c.route_refresh {
        caps.extend_from_slice(&[CAP_ROUTE_REFRESH, 0]);
    }
    if c.enhanced_route_refresh {
        caps.extend_from_slice(&[CAP_ENHANCED_ROUTE_REFRESH, 0]);
    }
    if let Some(asn) = c.four_octet_as {
        caps.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
        caps.extend_from_slice(&asn.to_be_bytes());
    }
    if let Some(gr) = &c.graceful_restart {
        // 2 + 4 per family; more than 63 families cannot occur (2 exist).
        let len = 2 + 4 * gr.families.len().min(63);
        caps.extend_from_slice(&[CAP_GRACEFUL_RESTART, len as u8]);
        let mut flags = gr.restart_time & GR_TIME_MASK;
        if gr.restart_state {
            flags |= GR_RESTART;
        }
        if gr.notification {
            flags |= GR_NOTIFICATION;
        }
        caps.extend_from_slice(&flags.to_be_bytes());
        for (afi, fwd) in gr.families.iter().take(63) {
            caps.extend_from_slice(&afi_number(*afi).to_be_bytes());
            caps.extend_from_slice(&[1, if *fwd { GR_FORWARDING } else { 0 }]);
        }
    }
    if c.extended_message {
        caps.extend_from_slice(&[CAP_EXTENDED_MESSAGE, 0]);
    }
    for (code, value) in &c.unknown {
        // A capability value is at most 255 octets; longer ones are cut.
        // An OPEN is at most 4096 octets: capabilities that would not fit
        // are left out rather than cut.
        let v = &value[..value.len().min(255)];
        if caps.len() + 2 + v.len() > MAX_CAPS_LEN {
            continue;
        }
        caps.extend_from_slice(&[*code, v.len() as u8]);
        caps.extend_from_slice(v);
    }

    let mut out = Vec::with_capacity(HEADER_LEN + 16 + caps.len());
    start_message(&mut out, OPEN);
    out.push(VERSION);
    let my_as = u16::try_from(open.asn).unwrap_or(AS_TRANS as u16);
    out.extend_from_slice(&my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());
    if caps.is_empty() {
        out.push(0);
    } else if caps.len() + 2 <= 255 {
        out.extend_from_slice(&[(caps.len() + 2) as u8, PARAM_CAPABILITIES, caps.len() as u8]);
        out.extend_from_slice(&caps);
    } else {
        // RFC 9072 §2.
        let plen = caps.len() as u16;
        out.extend_from_slice(&[255, PARAM_EXTENDED]);
        out.extend_from_slice(&(plen + 3).to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&plen.to_be_bytes());
        out.extend_from_slice(&caps);
    }
    finish_header(&mut out);
    out
}
