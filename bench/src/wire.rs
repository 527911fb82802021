//! Pre-encoded BGP traffic for the generator, built with the speaker's own
//! codec (`bgp_speaker::packet`) before any session starts, so that
//! sending costs nothing but `write`.

use std::net::Ipv4Addr;

use bgp_speaker::packet::{
    encode_announce, encode_end_of_rib, encode_open, encode_withdraw, Capabilities, EncodeCtx,
    Open, MAX_LEN,
};
use bgp_speaker::{Afi, NextHop, PathAttrs, Prefix};
use ipnet::{IpNet, Ipv4Net};

/// The first generated prefix: 100.64.0.0/32 (RFC 6598 space), then
/// 100.64.0.1/32, ... one /32 per route.
pub const FIRST_PREFIX: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);

/// `n` unique IPv4 /32 prefixes starting at [`FIRST_PREFIX`].
pub fn prefixes(n: u32) -> Vec<Prefix> {
    let base = u32::from(FIRST_PREFIX);
    (0..n)
        .map(|i| {
            let net = Ipv4Net::new(Ipv4Addr::from(base + i), 32).expect("/32 is a valid length");
            IpNet::V4(net)
        })
        .collect()
}

/// The index of a generated /32 (its offset from [`FIRST_PREFIX`]), or
/// `None` for any other prefix.
pub fn prefix_index(p: &Prefix, n: u32) -> Option<u32> {
    match p {
        IpNet::V4(v4) if v4.prefix_len() == 32 => {
            let i = u32::from(v4.addr()).checked_sub(u32::from(FIRST_PREFIX))?;
            (i < n).then_some(i)
        }
        _ => None,
    }
}

/// Our OPEN: IPv4 unicast, 4-octet AS, route refresh; nothing else.
pub fn open(asn: u32, router_id: Ipv4Addr, hold_time: u16) -> Vec<u8> {
    encode_open(&Open {
        version: 4,
        asn,
        hold_time,
        router_id,
        capabilities: Capabilities {
            multiprotocol: vec![Afi::Ipv4],
            four_octet_as: Some(asn),
            route_refresh: true,
            ..Capabilities::default()
        },
    })
}

/// The iBGP UPDATEs announcing `prefixes` (ORIGIN IGP, empty AS_PATH,
/// NEXT_HOP `next_hop`, LOCAL_PREF 100), packed up to 4096 bytes each,
/// followed by the IPv4 End-of-RIB; one contiguous buffer.
pub fn announce_blob(prefixes: &[Prefix], next_hop: Ipv4Addr) -> Vec<u8> {
    let mut attrs = PathAttrs::local(NextHop::V4(next_hop));
    attrs.local_pref = Some(100);
    let mut msgs = Vec::new();
    encode_announce(&ctx(), &attrs, prefixes, &mut msgs);
    msgs.push(encode_end_of_rib(Afi::Ipv4));
    msgs.concat()
}

/// The UPDATEs withdrawing `prefixes`, packed; one contiguous buffer.
pub fn withdraw_blob(prefixes: &[Prefix]) -> Vec<u8> {
    let mut msgs = Vec::new();
    encode_withdraw(&ctx(), prefixes, &mut msgs);
    msgs.concat()
}

// ===== helpers =====

/// Every receiver we measure offers 4-octet ASNs; without extended messages
/// the limit is 4096 bytes.
fn ctx() -> EncodeCtx {
    EncodeCtx {
        asn4: true,
        max_len: MAX_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_speaker::packet::{decode, frame, DecodeCtx, Message};

    fn decode_all(mut buf: &[u8]) -> Vec<Message> {
        let ctx = DecodeCtx {
            asn4: true,
            ibgp: true,
            max_len: MAX_LEN,
            families: vec![Afi::Ipv4],
        };
        let mut out = Vec::new();
        while let Some(n) = frame(buf, MAX_LEN).unwrap() {
            out.push(decode(&buf[..n], &ctx).unwrap());
            buf = &buf[n..];
        }
        assert!(buf.is_empty(), "{} trailing bytes", buf.len());
        out
    }

    #[test]
    fn prefixes_are_unique_and_indexed() {
        let p = prefixes(70_000);
        assert_eq!(p[0].to_string(), "100.64.0.0/32");
        assert_eq!(p[69_999].to_string(), "100.65.17.111/32");
        assert_eq!(prefix_index(&p[69_999], 70_000), Some(69_999));
        assert_eq!(prefix_index(&p[69_999], 69_999), None);
        assert_eq!(prefix_index(&"10.0.0.0/32".parse().unwrap(), 10), None);
        assert_eq!(prefix_index(&"100.64.0.0/24".parse().unwrap(), 10), None);
    }

    #[test]
    fn announce_blob_decodes_to_every_prefix_then_end_of_rib() {
        let p = prefixes(5000);
        let msgs = decode_all(&announce_blob(&p, Ipv4Addr::new(10, 77, 0, 2)));
        // 5 bytes per /32: about 810 per 4096-byte UPDATE.
        assert_eq!(msgs.len(), 7 + 1, "{} messages", msgs.len());
        let mut seen = Vec::new();
        for m in &msgs[..msgs.len() - 1] {
            let Message::Update(u) = m else {
                panic!("{m:?}")
            };
            assert!(u.issues.is_empty(), "{:?}", u.issues);
            assert_eq!(u.announced[0].attrs.local_pref, Some(100));
            seen.extend(u.announced[0].nlri.iter().copied());
        }
        assert_eq!(seen, p);
        let Message::Update(eor) = msgs.last().unwrap() else {
            panic!()
        };
        assert_eq!(eor.end_of_rib, Some(Afi::Ipv4));
    }

    #[test]
    fn withdraw_blob_decodes_to_every_prefix() {
        let p = prefixes(2000);
        let withdrawn: Vec<_> = decode_all(&withdraw_blob(&p))
            .into_iter()
            .flat_map(|m| match m {
                Message::Update(u) => u.withdrawn,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(withdrawn, p);
    }

    #[test]
    fn open_decodes() {
        let buf = open(64512, Ipv4Addr::new(10, 77, 0, 2), 3);
        let msgs = decode_all(&buf);
        let Message::Open(o) = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!((o.asn, o.hold_time), (64512, 3));
        assert_eq!(o.capabilities.multiprotocol, vec![Afi::Ipv4]);
    }
}
