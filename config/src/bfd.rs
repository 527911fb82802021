//! BFD for a BGP peer (RFC 5880, issue 13): as users write it (a
//! BGPPeer's `bfd` and Calico's `failureDetectionMode`, a tortie-rr
//! peer's `bfd`: [`BfdSpec`], [`FailureDetectionMode`]) and as the
//! speaker runs it ([`BfdConfig`]), with [`resolve`] between them.
//!
//! Intervals are written as Calico writes durations (Go's syntax, with a
//! unit): `300ms`, `1s`, `0.5s`. A bare number is refused: BGP's own
//! times are seconds, BFD's milliseconds, and a number without a unit
//! would be read wrong one way or the other.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;

/// Default Desired Min TX and Required Min RX interval: 300 ms (FRR's,
/// and the `bfd` crate's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(300);
/// Default detection multiplier: down after three missed packets.
pub const DEFAULT_MULTIPLIER: u8 = 3;
/// Shortest interval accepted (the `bfd` crate's bound: below it a shared
/// 2-core node cannot keep a steady beat).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted (the `bfd` crate's bound).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// BFD as the speaker runs it for one peer. The session is single hop
/// (RFC 5881) when the peer is on a subnet of the BGP session's local
/// address, multihop (RFC 5883) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BfdConfig {
    /// Required Min RX Interval: the peer sends no faster than this.
    pub min_rx: Duration,
    /// Desired Min TX Interval: how often we would like to send.
    pub min_tx: Duration,
    /// Detect Mult: the peer declares us down after this many intervals
    /// without a packet (and we it after its multiplier).
    pub multiplier: u8,
    /// Only with a directly connected peer (Calico's
    /// `BFDIfDirectlyConnected`): none at all, rather than multihop, when
    /// the peer is not on a subnet of ours.
    pub directly_connected_only: bool,
}

/// `bfd` as written: a Tortie extension of Calico's BGPPeer (and the same
/// per peer in tortie-rr's file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdSpec {
    /// `true`: BFD with this peer, single hop or multihop. Default: off,
    /// unless Calico's `failureDetectionMode: BFDIfDirectlyConnected`
    /// asks for it (the timers here then apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Required Min RX Interval (default 300ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rx: Option<Interval>,
    /// Desired Min TX Interval (default 300ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx: Option<Interval>,
    /// Detect Mult, 1..=255 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<i64>,
}

/// Calico's BGPPeer `failureDetectionMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureDetectionMode {
    /// No BFD (unless `bfd.enabled`).
    #[default]
    None,
    /// BFD when the peer is directly connected (on a subnet of the node),
    /// as Calico's BIRD does; none otherwise.
    BFDIfDirectlyConnected,
}

/// An interval as written (`300ms`); checked by [`resolve`], which names
/// the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval(pub String);

// ===== impl BfdConfig =====

impl Default for BfdConfig {
    /// 300 ms both ways, multiplier 3, single hop or multihop.
    fn default() -> BfdConfig {
        BfdConfig {
            min_rx: DEFAULT_INTERVAL,
            min_tx: DEFAULT_INTERVAL,
            multiplier: DEFAULT_MULTIPLIER,
            directly_connected_only: false,
        }
    }
}

// ===== impl FailureDetectionMode =====

impl FailureDetectionMode {
    /// The default (for `skip_serializing_if`).
    pub fn is_none(&self) -> bool {
        *self == FailureDetectionMode::None
    }
}

// ===== impl Interval =====

impl Interval {
    /// The duration, or why the text is not one.
    pub fn parse(&self) -> Result<Duration, String> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        // A number is kept, to be refused by `resolve` with its field.
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration with its unit, such as 300ms or 1s")
        })? {
            Raw::Int(n) => Ok(Interval(n.to_string())),
            Raw::Text(t) => Ok(Interval(t)),
        }
    }
}

// ===== resolve =====

/// The BFD a peer runs with, from Calico's `failureDetectionMode`
/// (BGPPeer only; `None` elsewhere) and Tortie's `bfd`; `path` is their
/// parent (`spec`, `peers[0]`), for the errors' field names.
///
/// - `bfd.enabled: true`: BFD, single hop or multihop.
/// - `failureDetectionMode: BFDIfDirectlyConnected`: BFD with a directly
///   connected peer only, with `bfd`'s timers if given.
/// - Both: `enabled: true` wins (any peer). `enabled: false` beside
///   `BFDIfDirectlyConnected` contradicts it: an error.
/// - Neither: no BFD. A `bfd` block that enables nothing but sets timers
///   is an error (the user meant something): say `enabled: true` or
///   `enabled: false`.
pub fn resolve(
    path: &str,
    mode: FailureDetectionMode,
    spec: Option<&BfdSpec>,
) -> Result<Option<BfdConfig>, ConfigError> {
    let empty = BfdSpec::default();
    let spec = spec.unwrap_or(&empty);
    let field = |name: &str| format!("{path}.bfd.{name}");
    let interval = |name: &str, v: &Option<Interval>| -> Result<Duration, ConfigError> {
        let Some(v) = v else {
            return Ok(DEFAULT_INTERVAL);
        };
        let d = v
            .parse()
            .map_err(|why| ConfigError::invalid(field(name), format!("{v:?}"), why))?;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&d) {
            return Err(ConfigError::invalid(
                field(name),
                v,
                "out of range; use 10ms to 60s (300ms is usual, 100ms for fast failover)",
            ));
        }
        Ok(d)
    };
    let config = BfdConfig {
        min_rx: interval("minRx", &spec.min_rx)?,
        min_tx: interval("minTx", &spec.min_tx)?,
        multiplier: match spec.multiplier {
            None => DEFAULT_MULTIPLIER,
            Some(m) => u8::try_from(m).ok().filter(|m| *m >= 1).ok_or_else(|| {
                ConfigError::invalid(
                    field("multiplier"),
                    m,
                    "out of range; use 1..=255 (3 is usual)",
                )
            })?,
        },
        directly_connected_only: false,
    };
    let direct = mode == FailureDetectionMode::BFDIfDirectlyConnected;
    match (spec.enabled, direct) {
        (Some(true), _) => Ok(Some(config)),
        (Some(false), true) => Err(ConfigError::invalid(
            field("enabled"),
            false,
            "contradicts failureDetectionMode: BFDIfDirectlyConnected; remove one of them",
        )),
        (Some(false), false) => Ok(None),
        (None, true) => Ok(Some(BfdConfig {
            directly_connected_only: true,
            ..config
        })),
        (None, false) if *spec != empty => Err(ConfigError::invalid(
            field("enabled"),
            "(missing)",
            "BFD is off unless enabled: true (or Calico's failureDetectionMode: \
             BFDIfDirectlyConnected); set enabled to true or false",
        )),
        (None, false) => Ok(None),
    }
}

// ===== helpers =====

/// Go-style durations with a unit, fractions allowed: `300ms`, `1s`,
/// `1.5s`, `1s500ms`, `2m`; also `us`. Rounded to microseconds (BFD's
/// unit on the wire).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("not a duration: {why} (write e.g. 300ms or 1s)");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "a number without a unit: write {t}ms for milliseconds"
        ));
    }
    let mut micros: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number at the end without a unit"))?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad("a number is missing"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            other => return Err(bad(&format!("unknown unit {other:?}; use ms, s or m"))),
        };
        micros += value * scale;
        rest = tail;
    }
    if micros > 3600e6 {
        return Err(bad("longer than an hour"));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: serde_json::Value) -> BfdSpec {
        serde_json::from_value(yaml).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_with_units() {
        for (text, want) in [
            ("300ms", ms(300)),
            ("1s", ms(1000)),
            ("0.5s", ms(500)),
            ("1s500ms", ms(1500)),
            ("2m", ms(120_000)),
            ("250000us", ms(250)),
            (" 100ms ", ms(100)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for (text, why) in [
            ("300", "a number without a unit: write 300ms"),
            ("", "empty"),
            ("ms", "a number is missing"),
            ("3h", "unknown unit \"h\""),
            ("1s5", "without a unit"),
            ("1.2.3s", "a number is missing"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn enabled_gives_the_timers_or_the_defaults() {
        let none = FailureDetectionMode::None;
        assert_eq!(resolve("spec", none, None).unwrap(), None);
        let on = spec(serde_json::json!({"enabled": true}));
        assert_eq!(
            resolve("spec", none, Some(&on)).unwrap(),
            Some(BfdConfig::default())
        );
        let fast = spec(serde_json::json!(
            {"enabled": true, "minRx": "100ms", "minTx": "0.1s", "multiplier": 5}
        ));
        assert_eq!(
            resolve("spec", none, Some(&fast)).unwrap(),
            Some(BfdConfig {
                min_rx: ms(100),
                min_tx: ms(100),
                multiplier: 5,
                directly_connected_only: false,
            })
        );
        let off = spec(serde_json::json!({"enabled": false, "minRx": "100ms"}));
        assert_eq!(resolve("spec", none, Some(&off)).unwrap(), None);
    }

    #[test]
    fn calicos_mode_means_directly_connected_peers_only() {
        let direct = FailureDetectionMode::BFDIfDirectlyConnected;
        assert_eq!(
            resolve("spec", direct, None).unwrap(),
            Some(BfdConfig {
                directly_connected_only: true,
                ..BfdConfig::default()
            })
        );
        let timers = spec(serde_json::json!({"minTx": "100ms"}));
        let got = resolve("spec", direct, Some(&timers)).unwrap().unwrap();
        assert!(got.directly_connected_only);
        assert_eq!((got.min_tx, got.min_rx), (ms(100), ms(300)));
        let any = spec(serde_json::json!({"enabled": true}));
        let got = resolve("spec", direct, Some(&any)).unwrap().unwrap();
        assert!(!got.directly_connected_only, "enabled: true wins");
        let mode: FailureDetectionMode =
            serde_json::from_value(serde_json::json!("BFDIfDirectlyConnected")).unwrap();
        assert_eq!(mode, direct);
    }

    #[test]
    fn errors_name_the_field() {
        let none = FailureDetectionMode::None;
        for (json, mode, field, says) in [
            (
                serde_json::json!({"enabled": true, "minRx": "5ms"}),
                none,
                "peers[2].bfd.minRx",
                "out of range; use 10ms to 60s",
            ),
            (
                serde_json::json!({"enabled": true, "minTx": 300}),
                none,
                "peers[2].bfd.minTx",
                "write 300ms",
            ),
            (
                serde_json::json!({"enabled": true, "minTx": "fast"}),
                none,
                "peers[2].bfd.minTx",
                "not a duration",
            ),
            (
                serde_json::json!({"enabled": true, "multiplier": 0}),
                none,
                "peers[2].bfd.multiplier",
                "use 1..=255",
            ),
            (
                serde_json::json!({"enabled": true, "multiplier": 256}),
                none,
                "peers[2].bfd.multiplier",
                "use 1..=255",
            ),
            (
                serde_json::json!({"minRx": "100ms"}),
                none,
                "peers[2].bfd.enabled",
                "BFD is off unless enabled: true",
            ),
            (
                serde_json::json!({"enabled": false}),
                FailureDetectionMode::BFDIfDirectlyConnected,
                "peers[2].bfd.enabled",
                "contradicts failureDetectionMode",
            ),
        ] {
            let s = spec(json.clone());
            let err = resolve("peers[2]", mode, Some(&s)).unwrap_err();
            assert_eq!(err.field(), Some(field), "{json}: {err}");
            assert!(err.to_string().contains(says), "{json}: {err}");
        }
        let unknown = serde_json::from_value::<BfdSpec>(serde_json::json!({"interval": "1s"}));
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    }

    /// A BGPPeer: Calico's mode and Tortie's block load and validate,
    /// errors name `spec.bfd...`.
    #[test]
    fn bgppeer_fields() {
        use crate::resources::{load_documents, BGPPeerSpec};
        let doc = |spec: &str| {
            format!(
                "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: tor}}\n\
                 spec:\n  peerIP: 192.168.1.254\n  asNumber: 65001\n{spec}"
            )
        };
        let loaded = load_documents(&doc(
            "  failureDetectionMode: BFDIfDirectlyConnected\n  bfd: {minRx: 100ms, minTx: 100ms}\n",
        ))
        .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let peer = loaded.resources[0]
            .clone()
            .into_typed::<BGPPeerSpec>()
            .unwrap();
        let got = resolve(
            "spec",
            peer.spec.failure_detection_mode,
            peer.spec.bfd.as_ref(),
        );
        assert_eq!(
            got.unwrap(),
            Some(BfdConfig {
                min_rx: ms(100),
                min_tx: ms(100),
                multiplier: 3,
                directly_connected_only: true,
            })
        );
        let err = load_documents(&doc("  bfd: {enabled: true, multiplier: 0}\n")).unwrap_err();
        assert_eq!(err.field(), Some("spec.bfd.multiplier"), "{err}");
        let err = load_documents(&doc("  failureDetectionMode: Sometimes\n")).unwrap_err();
        assert_eq!(err.field(), Some("spec.failureDetectionMode"), "{err}");
    }

    /// tortie-rr's file: `bfd` per peer, errors name `peers[i].bfd...`.
    #[test]
    fn rr_file_peers() {
        use crate::rr::RrConfig;
        let file = |bfd: &str| {
            format!(
                "routerId: 172.30.0.1\nasNumber: 64512\npeers:\n\
                 \x20 - {{address: 172.30.0.2, asNumber: 65002}}\n\
                 \x20 - {{address: 172.30.0.3, asNumber: 65003, bfd: {bfd}}}\n"
            )
        };
        let rr = RrConfig::from_yaml(&file("{enabled: true, minRx: 100ms, minTx: 100ms}")).unwrap();
        assert_eq!(rr.peers[0].bfd, None);
        assert_eq!(
            rr.peers[1].bfd,
            Some(BfdConfig {
                min_rx: ms(100),
                min_tx: ms(100),
                multiplier: 3,
                directly_connected_only: false,
            })
        );
        let err = RrConfig::from_yaml(&file("{enabled: true, minTx: 100}")).unwrap_err();
        assert_eq!(err.field(), Some("peers[1].bfd.minTx"), "{err}");
        assert!(err.to_string().contains("write 100ms"), "{err}");
        let err = RrConfig::from_yaml(&file("{enabled: true, detectMult: 3}")).unwrap_err();
        assert!(err.to_string().contains("detectMult"), "{err}");
    }
}
