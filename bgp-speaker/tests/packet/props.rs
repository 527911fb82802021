//! Property tests: hostile input never panics `frame`/`decode`, and
//! `decode` inverts `encode_announce` / `encode_withdraw`, with messages
//! split at the maximum length and never over it.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_speaker::packet::*;
use bgp_speaker::route::{AsSegment, RawAttr};
use bgp_speaker::{Afi, NextHop, Origin, PathAttrs, Prefix};
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use crate::common::*;

/// Valid messages to mutate (the codec table's kinds, built here).
fn samples() -> Vec<Vec<u8>> {
    let attrs = PathAttrs {
        as_path: vec![
            AsSegment::Sequence(vec![65000, 4_200_000_001]),
            AsSegment::Set(vec![1, 2]),
        ],
        med: Some(5),
        aggregator: Some((4_200_000_001, Ipv4Addr::new(10, 0, 0, 9))),
        communities: vec![1, 2],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 2)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 3)],
        ext_communities: vec![[1; 8]],
        large_communities: vec![[1, 2, 3]],
        ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)))
    };
    let v4: Vec<Prefix> = vec![
        "10.0.0.0/8".parse().unwrap(),
        "10.1.1.1/32".parse().unwrap(),
    ];
    let v6: Vec<Prefix> = vec!["2001:db8::/32".parse().unwrap()];
    let mut out = vec![
        encode_keepalive(),
        encode_notification(&Notification {
            code: 6,
            subcode: 4,
            data: vec![1, 2, 3],
        }),
        encode_route_refresh(Afi::Ipv4, 0),
        encode_end_of_rib(Afi::Ipv6),
        encode_open(&Open {
            version: 4,
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(1, 2, 3, 4),
            capabilities: Capabilities {
                multiprotocol: vec![Afi::Ipv4, Afi::Ipv6],
                four_octet_as: Some(4_200_000_001),
                route_refresh: true,
                graceful_restart: Some(GracefulRestartCap {
                    restart_time: 120,
                    families: vec![(Afi::Ipv4, true)],
                    ..Default::default()
                }),
                ..Default::default()
            },
        }),
    ];
    for asn4 in [true, false] {
        encode_announce(&ectx(asn4), &attrs, &v4, &mut out);
        let mut a6 = attrs.clone();
        a6.next_hop = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        encode_announce(&ectx(asn4), &a6, &v6, &mut out);
    }
    encode_withdraw(&ectx(true), &[v4[0], v6[0]], &mut out);
    out
}

/// Frames then decodes; must not panic whatever the input.
fn frame_and_decode(buf: &[u8], ctx: &DecodeCtx) {
    let mut rest = buf;
    while let Ok(Some(n)) = frame(rest, ctx.max_len) {
        let _ = decode(&rest[..n], ctx);
        rest = &rest[n..];
    }
    // decode on a raw buffer must not panic either.
    let _ = decode(buf, ctx);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    SetU16(usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        // Length fields: the header's and those right after it.
        (prop_oneof![Just(16usize), 19..40usize], any::<u16>())
            .prop_map(|(i, v)| Mutation::SetU16(i, v)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let n = buf.len();
    match *m {
        Mutation::Flip(i, b) => buf[i % n] ^= b | 1,
        Mutation::Insert(i, b) => buf.insert(i % (n + 1), b),
        Mutation::Delete(i) => {
            buf.remove(i % n);
        }
        Mutation::SetU16(i, v) if i + 2 <= n => buf[i..i + 2].copy_from_slice(&v.to_be_bytes()),
        Mutation::SetU16(..) => {}
    }
}

fn any_ctx() -> impl Strategy<Value = DecodeCtx> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(4096usize), Just(65535usize)],
    )
        .prop_map(|(asn4, ibgp, max_len)| DecodeCtx {
            asn4,
            ibgp,
            max_len,
            families: vec![Afi::Ipv4, Afi::Ipv6],
        })
}

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn segment(max_asn: u32) -> impl Strategy<Value = AsSegment> {
    (any::<bool>(), prop::collection::vec(1..=max_asn, 1..8)).prop_map(|(set, v)| {
        if set {
            AsSegment::Set(v)
        } else {
            AsSegment::Sequence(v)
        }
    })
}

/// Attributes that survive a round trip: what RFC 7606 would drop or a
/// 2-octet session cannot carry is not generated (see the comments).
fn attrs(afi: Afi, ibgp: bool) -> impl Strategy<Value = PathAttrs> {
    let next_hop = match afi {
        Afi::Ipv4 => unicast_v4().prop_map(NextHop::V4).boxed(),
        Afi::Ipv6 => (any::<u128>(), prop::option::of(any::<u128>()))
            .prop_map(|(g, l)| NextHop::V6 {
                // Not multicast (ff00::/8): a multicast next hop is withdrawn.
                global: Ipv6Addr::from(g & !(0xffu128 << 120)),
                link_local: l.map(Ipv6Addr::from),
            })
            .boxed(),
    };
    // Confederation segments only from iBGP, and only leading (RFC 5065),
    // with 2-octet ASNs (AS4_PATH does not carry them, RFC 6793 §3).
    let confed = if ibgp {
        prop::option::of(prop::collection::vec(1u32..=65535, 1..4)).boxed()
    } else {
        Just(None).boxed()
    };
    let unknown =
        prop::collection::btree_map(33u8..=254, prop::collection::vec(any::<u8>(), 0..300), 0..3)
            .prop_map(|m| {
                m.into_iter()
                    .map(|(type_code, value)| RawAttr {
                        flags: 0xe0,
                        type_code,
                        value,
                    })
                    .collect::<Vec<_>>()
            });
    (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            confed,
            prop::collection::vec(segment(u32::MAX), 0..4),
            next_hop,
        ),
        (
            prop::option::of(any::<u32>()),
            any::<u32>(),
            any::<bool>(),
            prop::option::of((1u32..=u32::MAX, unicast_v4())),
        ),
        (
            prop::collection::vec(any::<u32>(), 0..5),
            prop::option::of(unicast_v4()),
            prop::collection::vec(unicast_v4(), 0..3),
        ),
        (
            prop::collection::vec(any::<[u8; 8]>(), 0..3),
            prop::collection::vec(any::<[u32; 3]>(), 0..3),
            unknown,
        ),
    )
        .prop_map(
            move |(
                (origin, confed, mut path, next_hop),
                (med, lp, atomic, aggregator),
                (communities, originator_id, cluster_list),
                (ext_communities, large_communities, unknown),
            )| {
                if let Some(c) = confed {
                    path.insert(0, AsSegment::ConfedSequence(c));
                }
                PathAttrs {
                    origin,
                    as_path: path,
                    next_hop,
                    med,
                    local_pref: ibgp.then_some(lp),
                    atomic_aggregate: atomic,
                    aggregator,
                    communities,
                    originator_id,
                    cluster_list,
                    ext_communities,
                    large_communities,
                    unknown,
                }
            },
        )
}

/// RFC 6793 §4.2.3: with a 2-octet AGGREGATOR AS, the receiver ignores
/// AS4_PATH, so a 4-octet path cannot survive a 2-octet session.
fn lossless(a: &PathAttrs, asn4: bool) -> bool {
    let four = a.as_path.iter().any(|s| match s {
        AsSegment::Sequence(v) | AsSegment::Set(v) => v.iter().any(|x| *x > 0xffff),
        _ => false,
    });
    asn4 || !four
        || a.aggregator
            .is_none_or(|(asn, _)| asn > 0xffff || asn == 23456)
}

fn check_round_trip(
    ectx: &EncodeCtx,
    ibgp: bool,
    a: &PathAttrs,
    nlri: &[Prefix],
) -> Result<usize, TestCaseError> {
    let mut out = Vec::new();
    encode_announce(ectx, a, nlri, &mut out);
    let dctx = DecodeCtx {
        asn4: ectx.asn4,
        ibgp,
        max_len: ectx.max_len,
        families: vec![Afi::Ipv4, Afi::Ipv6],
    };
    let mut got = Vec::new();
    for (i, m) in out.iter().enumerate() {
        prop_assert!(
            m.len() <= ectx.max_len,
            "message {i} is {} > {}",
            m.len(),
            ectx.max_len
        );
        prop_assert_eq!(frame(m, ectx.max_len), Ok(Some(m.len())));
        let Message::Update(u) =
            decode(m, &dctx).map_err(|e| TestCaseError::fail(e.to_string()))?
        else {
            return Err(TestCaseError::fail("not an UPDATE"));
        };
        prop_assert!(u.issues.is_empty(), "issues: {:?}", u.issues);
        prop_assert_eq!(u.announced.len(), 1);
        prop_assert_eq!(&u.announced[0].attrs, a);
        got.extend_from_slice(&u.announced[0].nlri);
        // Full: the next prefix would not have fit.
        if i + 1 < out.len() {
            let next = &nlri[got.len()];
            let room = 1 + usize::from(next.prefix_len()).div_ceil(8);
            prop_assert!(
                m.len() + room > ectx.max_len,
                "message {i} of {} octets could take {next}",
                m.len()
            );
        }
    }
    prop_assert_eq!(got, nlri.to_vec());
    Ok(out.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..300), ctx in any_ctx()) {
        frame_and_decode(&buf, &ctx);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(t in 1u8..=5, body in prop::collection::vec(any::<u8>(), 0..300), ctx in any_ctx()) {
        let buf = msg(t, &to_hex(&body));
        frame_and_decode(&buf, &ctx);
    }

    #[test]
    fn mutated_valid_messages_never_panic(which in any::<usize>(), muts in prop::collection::vec(mutation(), 1..4), ctx in any_ctx()) {
        let s = samples();
        let mut buf = s[which % s.len()].clone();
        for m in &muts {
            if !buf.is_empty() {
                apply(&mut buf, m);
            }
        }
        frame_and_decode(&buf, &ctx);
    }

    #[test]
    fn announce_round_trips_ipv4(asn4 in any::<bool>(), a in any::<bool>().prop_flat_map(|i| attrs(Afi::Ipv4, i).prop_map(move |a| (i, a))), nlri in prop::collection::vec(v4_prefix(), 1..400), ext in any::<bool>()) {
        let (ibgp, a) = a;
        prop_assume!(lossless(&a, asn4));
        let ectx = EncodeCtx { asn4, max_len: if ext { 65535 } else { 4096 } };
        check_round_trip(&ectx, ibgp, &a, &nlri)?;
    }

    #[test]
    fn announce_round_trips_ipv6(asn4 in any::<bool>(), a in any::<bool>().prop_flat_map(|i| attrs(Afi::Ipv6, i).prop_map(move |a| (i, a))), nlri in prop::collection::vec(v6_prefix(), 1..300)) {
        let (ibgp, a) = a;
        prop_assume!(lossless(&a, asn4));
        check_round_trip(&EncodeCtx { asn4, max_len: 4096 }, ibgp, &a, &nlri)?;
    }

    #[test]
    fn withdraw_round_trips(v4 in prop::collection::vec(v4_prefix(), 0..900), v6 in prop::collection::vec(v6_prefix(), 0..300), ext in any::<bool>()) {
        let max_len = if ext { 65535 } else { 4096 };
        let mut mixed: Vec<Prefix> = v4.iter().chain(v6.iter()).copied().collect();
        mixed.reverse();
        let mut out = Vec::new();
        encode_withdraw(&EncodeCtx { asn4: true, max_len }, &mixed, &mut out);
        let mut got = Vec::new();
        for m in &out {
            prop_assert!(m.len() <= max_len);
            let Message::Update(u) = decode(m, &DecodeCtx { asn4: true, ibgp: false, max_len, families: vec![Afi::Ipv4, Afi::Ipv6] }).map_err(|e| TestCaseError::fail(e.to_string()))? else {
                return Err(TestCaseError::fail("not an UPDATE"));
            };
            prop_assert!(u.announced.is_empty() && u.end_of_rib.is_none());
            got.extend(u.withdrawn);
        }
        // IPv4 messages first, then IPv6; order kept within a family.
        let want: Vec<Prefix> = mixed.iter().filter(|p| p.addr().is_ipv4()).chain(mixed.iter().filter(|p| p.addr().is_ipv6())).copied().collect();
        prop_assert_eq!(got, want);
    }
}

fn host_routes(n: u32) -> Vec<Prefix> {
    (0..n)
        .map(|i| Prefix::V4(Ipv4Net::new(Ipv4Addr::from(0x0af4_0000 + i), 32).unwrap()))
        .collect()
}

#[test]
fn two_thousand_prefixes_split_at_4096() {
    let a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let n = check_round_trip(&ectx(true), false, &a, &host_routes(2000)).unwrap();
    // 2000 x 5 octets, about 4,050 octets of NLRI per message.
    assert_eq!(n, 3, "2000 /32s should take 3 messages at 4096");
}

#[test]
fn twenty_thousand_prefixes_split_at_65535() {
    let a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let ctx = EncodeCtx {
        asn4: true,
        max_len: 65535,
    };
    let n = check_round_trip(&ctx, false, &a, &host_routes(20_000)).unwrap();
    assert_eq!(
        n, 2,
        "100,000 octets of NLRI should take 2 messages at 65535"
    );
    let mut out = Vec::new();
    encode_withdraw(&ctx, &host_routes(20_000), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|m| m.len() <= 65535));
}

#[test]
fn attributes_too_big_for_the_message_send_nothing_and_are_returned() {
    let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(10, 0, 0, 1)));
    a.communities = (0..1100).collect();
    let mut out = Vec::new();
    let unsent = encode_announce(&ectx(true), &a, &host_routes(3), &mut out);
    assert!(out.is_empty(), "a 4,400-octet COMMUNITIES cannot fit 4096");
    assert_eq!(
        unsent,
        host_routes(3),
        "returned, for the caller to withdraw"
    );
    let unsent = encode_announce(
        &EncodeCtx {
            asn4: true,
            max_len: 65535,
        },
        &a,
        &host_routes(1),
        &mut out,
    );
    assert_eq!((out.len(), unsent.len()), (1, 0));
}

#[test]
fn confed_path_survives_as4_aggregator_on_a_2_octet_session() {
    // Found by announce_round_trips_*: AS4_AGGREGATOR without AS4_PATH
    // used to drop the AS_PATH.
    let a = PathAttrs {
        local_pref: Some(0),
        as_path: vec![AsSegment::ConfedSequence(vec![1])],
        aggregator: Some((65536, Ipv4Addr::new(0, 0, 0, 1))),
        ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(0, 0, 0, 1)))
    };
    check_round_trip(&ectx(false), true, &a, &host_routes(1)).unwrap();
}

fn any_open() -> impl Strategy<Value = Open> {
    let afis = prop::collection::btree_set(prop_oneof![Just(Afi::Ipv4), Just(Afi::Ipv6)], 0..3);
    let gr = prop::option::of(
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            prop::collection::vec(
                (prop_oneof![Just(Afi::Ipv4), Just(Afi::Ipv6)], any::<bool>()),
                0..3,
            ),
        )
            .prop_map(|(r, n, t, f)| GracefulRestartCap {
                restart_state: r,
                notification: n,
                restart_time: t,
                families: f,
            }),
    );
    // Unknown capability codes: none that we interpret.
    let unknown = prop::collection::vec(
        (
            prop::sample::select(vec![3u8, 5, 9, 67, 69, 71, 73, 128, 131, 255]),
            prop::collection::vec(any::<u8>(), 0..120),
        ),
        0..5,
    );
    (
        any::<u32>(),
        any::<bool>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        afis,
        (any::<bool>(), any::<bool>(), any::<bool>()),
        gr,
        unknown,
    )
        .prop_map(
            |(asn, cap4, hold_time, id, afis, (rr, err, ext), gr, unknown)| {
                let asn = if cap4 { asn.max(1) } else { (asn % 65535) + 1 };
                Open {
                    version: 4,
                    asn,
                    hold_time,
                    router_id: Ipv4Addr::from(id),
                    capabilities: Capabilities {
                        multiprotocol: afis.into_iter().collect(),
                        four_octet_as: cap4.then_some(asn),
                        route_refresh: rr,
                        enhanced_route_refresh: err,
                        graceful_restart: gr,
                        extended_message: ext,
                        unknown,
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// OPEN round trip, including parameters over 255 octets, which take
    /// the RFC 9072 extended format.
    #[test]
    fn open_round_trips(open in any_open()) {
        let bytes = encode_open(&open);
        prop_assert!(bytes.len() <= 4096);
        prop_assert_eq!(frame(&bytes, 4096), Ok(Some(bytes.len())));
        let got = decode(&bytes, &dctx(true, false)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, Message::Open(open));
    }
}

#[test]
fn long_capabilities_use_rfc9072_extended_parameters() {
    let open = Open {
        version: 4,
        asn: 65000,
        hold_time: 90,
        router_id: Ipv4Addr::new(1, 1, 1, 1),
        capabilities: Capabilities {
            unknown: vec![(200, vec![7; 200]), (201, vec![8; 200])],
            ..Default::default()
        },
    };
    let bytes = encode_open(&open);
    // Optional parameters length 255, then type 255 (RFC 9072 §2).
    assert_eq!(&bytes[28..30], &[255, 255]);
    assert_eq!(
        decode(&bytes, &dctx(true, false)).unwrap(),
        Message::Open(open)
    );
}
