//! Codec benchmarks: decode and encode of a 1-prefix UPDATE and of a packed
//! 500 x /32 UPDATE, ours next to raw netgauze on the same bytes.
//!
//! - decode: ours = `packet::decode` (framing walk, RFC 7606 checks, our
//!   types); netgauze = `BgpMessage::parse` (strict).
//! - encode: ours = `encode_announce` from `PathAttrs` + prefixes (attribute
//!   encoding included, one fresh Vec per message, the caller's output
//!   list reused as the session does); netgauze =
//!   `WritablePdu::write` of the already-built `BgpMessage` into a fresh
//!   Vec of the right capacity.
//!
//! Run: `cargo bench -p bgp-speaker --bench codec`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bgp_speaker::packet::{decode, encode_announce, DecodeCtx, EncodeCtx};
use bgp_speaker::route::AsSegment;
use bgp_speaker::{Afi, NextHop, PathAttrs, Prefix};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipnet::Ipv4Net;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use netgauze_parse_utils::WritablePdu;

fn attrs() -> PathAttrs {
    PathAttrs {
        as_path: vec![AsSegment::Sequence(vec![65000, 65001])],
        med: Some(100),
        ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)))
    }
}

fn prefixes(n: u32) -> Vec<Prefix> {
    (0..n)
        .map(|i| Prefix::V4(Ipv4Net::new(Ipv4Addr::from(0x0af4_0000 + i), 32).unwrap()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let ectx = EncodeCtx {
        asn4: true,
        max_len: 4096,
    };
    let dctx = DecodeCtx {
        asn4: true,
        ibgp: false,
        max_len: 4096,
        families: vec![Afi::Ipv4, Afi::Ipv6],
    };
    let a = attrs();
    for (name, n) in [("1-prefix", 1u32), ("500x32", 500)] {
        let nlri = prefixes(n);
        let mut out = Vec::new();
        encode_announce(&ectx, &a, &nlri, &mut out);
        assert_eq!(out.len(), 1, "{name} must be one message");
        let bytes = out.pop().unwrap();
        let ng = BgpMessage::parse(
            &mut SliceReader::new(&bytes),
            &mut BgpParsingContext::default(),
        )
        .expect("netgauze parses our UPDATE");
        assert!(decode(&bytes, &dctx).is_ok());

        let mut g = c.benchmark_group(format!("decode/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("ours", |b| b.iter(|| decode(black_box(&bytes), &dctx)));
        let mut ctx = BgpParsingContext::default();
        g.bench_function("netgauze", |b| {
            b.iter(|| BgpMessage::parse(&mut SliceReader::new(black_box(&bytes)), &mut ctx))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("encode/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut out = Vec::with_capacity(4);
        g.bench_function("ours", |b| {
            b.iter(|| {
                out.clear();
                encode_announce(&ectx, black_box(&a), black_box(&nlri), &mut out);
                out.len()
            })
        });
        g.bench_function("netgauze", |b| {
            b.iter(|| {
                let mut buf = Vec::with_capacity(bytes.len());
                black_box(&ng).write(&mut buf).unwrap();
                buf
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
