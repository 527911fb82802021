//! Helpers: hex in and out, message builders that compute the length
//! fields, decode contexts, and a readable diff of two byte strings.

use bgp_speaker::packet::{DecodeCtx, EncodeCtx};
use bgp_speaker::Afi;

/// Parses hex, ignoring whitespace and `_`.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'_')
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// 16 ones (the marker) as hex.
pub const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// A message of type `t` with `body` (hex) and the right length.
pub fn msg(t: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut v = hex(MARKER);
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(t);
    v.extend_from_slice(&body);
    v
}

/// An UPDATE from its three fields (hex), lengths computed.
pub fn update(withdrawn: &str, attrs: &str, nlri: &str) -> Vec<u8> {
    let (w, a) = (hex(withdrawn), hex(attrs));
    let mut body = Vec::new();
    body.extend_from_slice(&(w.len() as u16).to_be_bytes());
    body.extend_from_slice(&w);
    body.extend_from_slice(&(a.len() as u16).to_be_bytes());
    body.extend_from_slice(&a);
    body.extend_from_slice(&hex(nlri));
    msg(2, &to_hex(&body))
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decode context: both families, 4096 octets.
pub fn dctx(asn4: bool, ibgp: bool) -> DecodeCtx {
    DecodeCtx {
        asn4,
        ibgp,
        max_len: 4096,
        families: vec![Afi::Ipv4, Afi::Ipv6],
    }
}

pub fn ectx(asn4: bool) -> EncodeCtx {
    EncodeCtx {
        asn4,
        max_len: 4096,
    }
}

/// Panics with both byte strings, 16 per line, differing octets in [].
pub fn assert_bytes_eq(name: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let mut s = format!(
        "{name}: bytes differ (got {} octets, want {})\n",
        got.len(),
        want.len()
    );
    let n = got.len().max(want.len());
    for line in (0..n).step_by(16) {
        let show = |b: &[u8], other: &[u8]| -> String {
            (line..(line + 16).min(n))
                .map(|i| match (b.get(i), other.get(i)) {
                    (Some(x), Some(y)) if x == y => format!(" {x:02x} "),
                    (Some(x), _) => format!("[{x:02x}]"),
                    (None, _) => " -- ".to_string(),
                })
                .collect()
        };
        s += &format!("{line:04x} got  {}\n", show(got, want));
        s += &format!("{line:04x} want {}\n", show(want, got));
    }
    panic!("{s}");
}
