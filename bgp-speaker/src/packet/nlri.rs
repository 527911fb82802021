//! Prefixes on the wire (RFC 4271 §4.3 NLRI encoding, RFC 4760 §5): one
//! length octet in bits, then the fewest octets holding that many bits.
//! Decoded prefixes have their host bits cleared.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::route::{Afi, Prefix};

/// Why a prefix list could not be read (the caller picks the NOTIFICATION).
#[derive(Debug)]
pub(crate) struct NlriError(pub String);

/// Reads every prefix of family `afi` in `buf`, appending them to `out`.
pub(crate) fn read_prefixes(buf: &[u8], afi: Afi, out: &mut Vec<Prefix>) -> Result<(), NlriError> {
    let max_bits = match afi {
        Afi::Ipv4 => 32,
        Afi::Ipv6 => 128,
    };
    // Room for the common case (IPv4 /24s, IPv6 /64s) in one allocation
    // rather than a growth per doubling.
    out.reserve(match afi {
        Afi::Ipv4 => buf.len() / 4,
        Afi::Ipv6 => buf.len() / 9,
    });
    let mut i = 0;
    while i < buf.len() {
        let bits = buf[i];
        if bits > max_bits {
            return Err(NlriError(format!(
                "prefix length {bits} at offset {i} exceeds {max_bits}"
            )));
        }
        let n = usize::from(bits).div_ceil(8);
        let Some(bytes) = buf.get(i + 1..i + 1 + n) else {
            return Err(NlriError(format!(
                "prefix /{bits} at offset {i} needs {n} octets, {} remain",
                buf.len() - i - 1
            )));
        };
        out.push(make_prefix(afi, bits, bytes));
        i += 1 + n;
    }
    Ok(())
}

/// Builds a prefix of `bits` bits (already checked) from its octets.
fn make_prefix(afi: Afi, bits: u8, bytes: &[u8]) -> Prefix {
    match afi {
        Afi::Ipv4 => {
            let mut a = [0u8; 4];
            a[..bytes.len()].copy_from_slice(bytes);
            let v = u32::from_be_bytes(a) & mask32(bits);
            // `bits` <= 32 was checked; the fallback is unreachable.
            Prefix::V4(Ipv4Net::new(Ipv4Addr::from(v), bits).unwrap_or_default())
        }
        Afi::Ipv6 => {
            let mut a = [0u8; 16];
            a[..bytes.len()].copy_from_slice(bytes);
            let v = u128::from_be_bytes(a) & mask128(bits);
            Prefix::V6(Ipv6Net::new(Ipv6Addr::from(v), bits).unwrap_or_default())
        }
    }
}

fn mask32(bits: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0)
}

fn mask128(bits: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0)
}

/// Encoded size of one prefix.
pub(crate) fn prefix_len(p: &Prefix) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Appends one prefix (host bits cleared). The address is copied whole
/// and the surplus cut off: cheaper than a copy of variable length.
pub(crate) fn write_prefix(out: &mut Vec<u8>, p: &Prefix) {
    let bits = p.prefix_len();
    let n = usize::from(bits).div_ceil(8);
    out.push(bits);
    let end = out.len() + n;
    match p {
        Prefix::V4(n4) => {
            let v = u32::from(n4.addr()) & mask32(bits);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Prefix::V6(n6) => {
            let v = u128::from(n6.addr()) & mask128(bits);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_cleared_and_lengths_checked() {
        let mut v = Vec::new();
        read_prefixes(&[16, 10], Afi::Ipv4, &mut v).unwrap_err();
        read_prefixes(&[33, 1, 2, 3, 4, 5], Afi::Ipv4, &mut v).unwrap_err();
        read_prefixes(&[12, 10, 0xff, 0], Afi::Ipv4, &mut v).unwrap();
        assert_eq!(
            v,
            vec![
                "10.240.0.0/12".parse::<Prefix>().unwrap(),
                "0.0.0.0/0".parse().unwrap()
            ]
        );
        let mut out = Vec::new();
        write_prefix(&mut out, &"10.255.0.1/12".parse().unwrap());
        assert_eq!(out, vec![12, 10, 0xf0]);
    }
}
