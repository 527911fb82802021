//! Codec tables: rows of (hex bytes, expected `Message`), checked both
//! ways: decode(bytes) == message, and the encoder of that message gives
//! back the same bytes (hex diff on failure). Each row's bytes are also fed
//! to netgauze's strict parser, an independent check that the hand-written
//! hex is a valid BGP message.

use std::net::Ipv4Addr;

use bgp_speaker::packet::*;
use bgp_speaker::route::{AsSegment, RawAttr};
use bgp_speaker::{Afi, NextHop, Origin, PathAttrs, Prefix};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use crate::common::*;

/// How a row's message is encoded back.
enum Enc {
    Open,
    Keepalive,
    Notification,
    RouteRefresh,
    Announce(EncodeCtx),
    Withdraw(EncodeCtx),
    EndOfRib,
    /// Decode only (the encoder writes another, equivalent form).
    None,
}

struct Row {
    name: &'static str,
    bytes: Vec<u8>,
    ctx: DecodeCtx,
    msg: Message,
    enc: Enc,
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn announce(attrs: PathAttrs, nlri: &[&str]) -> Message {
    Message::Update(Update {
        announced: vec![Announcement {
            attrs,
            nlri: nlri.iter().map(|s| p(s)).collect(),
        }],
        ..Update::default()
    })
}

fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    v.push(Row {
        name: "KEEPALIVE",
        bytes: hex(&format!("{MARKER} 0013 04")),
        ctx: dctx(true, false),
        msg: Message::Keepalive,
        enc: Enc::Keepalive,
    });
    v.push(Row {
        name: "NOTIFICATION 6/2 with an RFC 8203 message",
        bytes: hex(&format!("{MARKER} 0019 03  06 02 03 627965")),
        ctx: dctx(true, false),
        msg: Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: b"\x03bye".to_vec(),
        }),
        enc: Enc::Notification,
    });
    v.push(Row {
        name: "ROUTE-REFRESH IPv6 BoRR",
        bytes: hex(&format!("{MARKER} 0017 05  0002 01 01")),
        ctx: dctx(true, false),
        msg: Message::RouteRefresh {
            afi: Afi::Ipv6,
            subtype: 1,
        },
        enc: Enc::RouteRefresh,
    });
    v.push(Row {
        name: "OPEN with all our capabilities, 4-octet AS",
        bytes: hex(&format!(
            "{MARKER} 0043 01  04 5ba0 00b4 0a000001 26 02 24
             01 04 0001 00 01   01 04 0002 00 01   02 00   46 00
             41 04 fa56ea01
             40 0a 4078 0001 01 80 0002 01 00
             06 00"
        )),
        ctx: dctx(true, false),
        msg: Message::Open(Open {
            version: 4,
            asn: 4_200_000_001,
            hold_time: 180,
            router_id: ip("10.0.0.1"),
            capabilities: Capabilities {
                multiprotocol: vec![Afi::Ipv4, Afi::Ipv6],
                four_octet_as: Some(4_200_000_001),
                route_refresh: true,
                enhanced_route_refresh: true,
                graceful_restart: Some(GracefulRestartCap {
                    restart_state: false,
                    notification: true,
                    restart_time: 120,
                    families: vec![(Afi::Ipv4, true), (Afi::Ipv6, false)],
                }),
                extended_message: true,
                unknown: vec![],
            },
        }),
        enc: Enc::Open,
    });
    let ebgp = PathAttrs {
        as_path: vec![AsSegment::Sequence(vec![65000, 65001])],
        med: Some(100),
        ..PathAttrs::local(NextHop::V4(ip("192.0.2.1")))
    };
    v.push(Row {
        name: "UPDATE IPv4, one prefix, eBGP",
        bytes: hex(&format!(
            "{MARKER} 003a 02  0000 001f
             40 01 01 00
             40 02 0a 02 02 0000fde8 0000fde9
             40 03 04 c0000201
             80 04 04 00000064
             18 0a0001"
        )),
        ctx: dctx(true, false),
        msg: announce(ebgp, &["10.0.1.0/24"]),
        enc: Enc::Announce(ectx(true)),
    });
    let ibgp = PathAttrs {
        local_pref: Some(100),
        communities: vec![0xfde8_0001, 0xffff_ff01],
        ..PathAttrs::local(NextHop::V4(ip("10.0.0.1")))
    };
    v.push(Row {
        name: "UPDATE IPv4, many prefixes, iBGP with communities",
        bytes: hex(&format!(
            "{MARKER} 0047 02  0000 0020
             40 01 01 00   40 02 00   40 03 04 0a000001   40 05 04 00000064
             c0 08 08 fde80001 ffffff01
             1a 0af40000  1a 0af40040  20 0af40101  00"
        )),
        ctx: dctx(true, true),
        msg: announce(
            ibgp,
            &[
                "10.244.0.0/26",
                "10.244.0.64/26",
                "10.244.1.1/32",
                "0.0.0.0/0",
            ],
        ),
        enc: Enc::Announce(ectx(true)),
    });
    let v6 = PathAttrs {
        as_path: vec![AsSegment::Sequence(vec![65000])],
        ..PathAttrs::local(NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        })
    };
    v.push(Row {
        name: "UPDATE IPv6 MP_REACH_NLRI with a link-local next hop",
        bytes: hex(&format!(
            "{MARKER} 0067 02  0000 0050
             90 0e 003f 0002 01 20 20010db8000000000000000000000001
                                   fe800000000000000000000000000001 00
                40 20010db800010000
                80 fd000000000000000000000000000001
             40 01 01 00
             40 02 06 02 01 0000fde8"
        )),
        ctx: dctx(true, false),
        msg: announce(v6, &["2001:db8:1::/64", "fd00::1/128"]),
        enc: Enc::Announce(ectx(true)),
    });
    v.push(Row {
        name: "UPDATE IPv4 withdrawals",
        bytes: hex(&format!(
            "{MARKER} 0020 02  0009 18 0a0001 20 0a000101 0000"
        )),
        ctx: dctx(true, false),
        msg: Message::Update(Update {
            withdrawn: vec![p("10.0.1.0/24"), p("10.0.1.1/32")],
            ..Update::default()
        }),
        enc: Enc::Withdraw(ectx(true)),
    });
    v.push(Row {
        name: "UPDATE IPv6 withdrawals in MP_UNREACH_NLRI",
        bytes: hex(&format!(
            "{MARKER} 0027 02  0000 0010  90 0f 000c 0002 01 40 20010db800010000"
        )),
        ctx: dctx(true, false),
        msg: Message::Update(Update {
            withdrawn: vec![p("2001:db8:1::/64")],
            ..Update::default()
        }),
        enc: Enc::Withdraw(ectx(true)),
    });
    v.push(Row {
        name: "End-of-RIB IPv4",
        bytes: hex(&format!("{MARKER} 0017 02 0000 0000")),
        ctx: dctx(true, false),
        msg: Message::Update(Update {
            end_of_rib: Some(Afi::Ipv4),
            ..Update::default()
        }),
        enc: Enc::EndOfRib,
    });
    v.push(Row {
        name: "End-of-RIB IPv6",
        bytes: hex(&format!("{MARKER} 001d 02 0000 0006 80 0f 03 0002 01")),
        ctx: dctx(true, false),
        msg: Message::Update(Update {
            end_of_rib: Some(Afi::Ipv6),
            ..Update::default()
        }),
        enc: Enc::EndOfRib,
    });
    let as4 = PathAttrs {
        as_path: vec![AsSegment::Sequence(vec![65000, 4_200_000_001, 65001])],
        aggregator: Some((4_200_000_001, ip("10.0.0.9"))),
        ..PathAttrs::local(NextHop::V4(ip("192.0.2.1")))
    };
    v.push(Row {
        name: "2-octet AS session: AS_TRANS, AS4_PATH and AS4_AGGREGATOR",
        bytes: hex(&format!(
            "{MARKER} 0056 02  0000 003b
             40 01 01 00
             40 02 08 02 03 fde8 5ba0 fde9
             40 03 04 c0000201
             c0 07 06 5ba0 0a000009
             c0 11 0e 02 03 0000fde8 fa56ea01 0000fde9
             c0 12 08 fa56ea01 0a000009
             18 c63364"
        )),
        ctx: dctx(false, false),
        msg: announce(as4, &["198.51.100.0/24"]),
        enc: Enc::Announce(ectx(false)),
    });
    let merged = PathAttrs {
        as_path: vec![AsSegment::Sequence(vec![65002, 65000, 4_200_000_001])],
        ..PathAttrs::local(NextHop::V4(ip("192.0.2.1")))
    };
    v.push(Row {
        name:
            "2-octet AS session: AS4_PATH merged after an old speaker prepended (RFC 6793 §4.2.3)",
        bytes: update(
            "",
            "40 01 01 00
             40 02 08 02 03 fdea fde8 5ba0
             40 03 04 c0000201
             c0 11 0a 02 02 0000fde8 fa56ea01",
            "18 c63364",
        ),
        ctx: dctx(false, false),
        msg: announce(merged, &["198.51.100.0/24"]),
        enc: Enc::None,
    });
    let rr = PathAttrs {
        local_pref: Some(100),
        originator_id: Some(ip("10.0.0.2")),
        cluster_list: vec![ip("10.0.0.254"), ip("10.0.0.253")],
        ..PathAttrs::local(NextHop::V4(ip("10.0.0.2")))
    };
    v.push(Row {
        name: "UPDATE reflected: ORIGINATOR_ID and CLUSTER_LIST",
        bytes: hex(&format!(
            "{MARKER} 0043 02  0000 0027
             40 01 01 00   40 02 00   40 03 04 0a000002   40 05 04 00000064
             80 09 04 0a000002
             80 0a 08 0a0000fe 0a0000fd
             1a 0af40080"
        )),
        ctx: dctx(true, true),
        msg: announce(rr, &["10.244.0.128/26"]),
        enc: Enc::Announce(ectx(true)),
    });
    let unknown = PathAttrs {
        origin: Origin::Incomplete,
        unknown: vec![RawAttr {
            flags: 0xe0,
            type_code: 99,
            value: vec![0xab, 0xcd],
        }],
        ..PathAttrs::local(NextHop::V4(ip("192.0.2.1")))
    };
    v.push(Row {
        name: "unknown optional transitive kept with the Partial bit; non-transitive dropped",
        bytes: update(
            "",
            "40 01 01 02  40 02 00  40 03 04 c0000201  c0 63 02 abcd  80 64 01 00",
            "08 0a",
        ),
        ctx: dctx(true, false),
        msg: announce(unknown, &["10.0.0.0/8"]),
        enc: Enc::None,
    });
    v
}

fn encode(row: &Row) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match (&row.enc, &row.msg) {
        (Enc::None, _) => return None,
        (Enc::Open, Message::Open(o)) => out.push(encode_open(o)),
        (Enc::Keepalive, _) => out.push(encode_keepalive()),
        (Enc::Notification, Message::Notification(n)) => out.push(encode_notification(n)),
        (Enc::RouteRefresh, Message::RouteRefresh { afi, subtype }) => {
            out.push(encode_route_refresh(*afi, *subtype))
        }
        (Enc::Announce(c), Message::Update(u)) => {
            let unsent = encode_announce(c, &u.announced[0].attrs, &u.announced[0].nlri, &mut out);
            assert!(unsent.is_empty(), "{}: {unsent:?} not encoded", row.name);
        }
        (Enc::Withdraw(c), Message::Update(u)) => encode_withdraw(c, &u.withdrawn, &mut out),
        (Enc::EndOfRib, Message::Update(u)) => out.push(encode_end_of_rib(u.end_of_rib.unwrap())),
        _ => panic!("{}: encoder does not match the message", row.name),
    }
    assert_eq!(
        out.len(),
        1,
        "{}: expected one message, got {}",
        row.name,
        out.len()
    );
    out.pop()
}

#[test]
fn codec_table_decodes_to_the_expected_message() {
    for row in rows() {
        assert_eq!(
            frame(&row.bytes, 4096),
            Ok(Some(row.bytes.len())),
            "{}",
            row.name
        );
        let got = decode(&row.bytes, &row.ctx).unwrap_or_else(|e| panic!("{}: {e}", row.name));
        assert_eq!(got, row.msg, "{}", row.name);
    }
}

#[test]
fn codec_table_encodes_to_the_expected_bytes() {
    let mut checked = 0;
    for row in rows() {
        if let Some(bytes) = encode(&row) {
            assert_bytes_eq(row.name, &bytes, &row.bytes);
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} rows were encoded");
}

#[test]
fn codec_table_bytes_are_valid_for_netgauze_too() {
    for row in rows() {
        let mut ctx = if row.ctx.asn4 {
            BgpParsingContext::default()
        } else {
            BgpParsingContext::asn2_default()
        };
        let r = BgpMessage::parse(&mut SliceReader::new(&row.bytes), &mut ctx);
        assert!(r.is_ok(), "{}: netgauze rejects the row: {r:?}", row.name);
    }
}
