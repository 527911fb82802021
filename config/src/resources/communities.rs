//! BGP communities of a BGPConfiguration, as Calico defines them:
//! `communities` names values (`{name, value}`), and each entry of
//! `prefixAdvertisements` (`{cidr, communities}`) tags the routes a node
//! originates inside `cidr` with its communities, each a name from
//! `communities` or a literal value. A value is standard, `aa:nn` (two
//! 16-bit numbers, RFC 1997), or large, `aa:nn:mm` (three 32-bit numbers,
//! RFC 8092). A route inside several entries' cidrs gets all their
//! communities (Calico's BIRD function adds them entry by entry).

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// `communities[]`: a name for a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// The name `prefixAdvertisements` use.
    pub name: String,
    /// `aa:nn` or `aa:nn:mm`.
    pub value: String,
}

/// `prefixAdvertisements[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// The routes concerned: those inside it (or equal to it).
    pub cidr: String,
    /// Names from `communities`, or values.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// One community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    /// `aa:nn` (COMMUNITIES, RFC 1997).
    Standard(u16, u16),
    /// `aa:nn:mm` (LARGE_COMMUNITY, RFC 8092).
    Large(u32, u32, u32),
}

/// What one `prefixAdvertisements` entry adds: its cidr and its values,
/// resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixCommunities {
    pub cidr: IpNet,
    pub values: Vec<CommunityValue>,
}

// ===== impl CommunityValue =====

impl CommunityValue {
    /// The COMMUNITIES word of a standard value.
    pub fn standard_word(self) -> Option<u32> {
        match self {
            CommunityValue::Standard(a, n) => Some(u32::from(a) << 16 | u32::from(n)),
            CommunityValue::Large(..) => None,
        }
    }

    /// The LARGE_COMMUNITY triple of a large value.
    pub fn large_triple(self) -> Option<[u32; 3]> {
        match self {
            CommunityValue::Large(a, n, m) => Some([a, n, m]),
            CommunityValue::Standard(..) => None,
        }
    }
}

impl FromStr for CommunityValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let digits = parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !digits || !(2..=3).contains(&parts.len()) {
            return Err(format!(
                "{s:?} is not a community: aa:nn (standard, 16-bit numbers) or aa:nn:mm (large, 32-bit numbers)"
            ));
        }
        if parts.len() == 2 {
            let n = |p: &str| {
                p.parse::<u16>().map_err(|_| {
                    format!("{s:?}: a standard community (aa:nn) has 16-bit numbers (0..=65535)")
                })
            };
            return Ok(CommunityValue::Standard(n(parts[0])?, n(parts[1])?));
        }
        let n = |p: &str| {
            p.parse::<u32>().map_err(|_| {
                format!("{s:?}: a large community (aa:nn:mm) has 32-bit numbers (0..=4294967295)")
            })
        };
        Ok(CommunityValue::Large(
            n(parts[0])?,
            n(parts[1])?,
            n(parts[2])?,
        ))
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(a, n) => write!(f, "{a}:{n}"),
            CommunityValue::Large(a, n, m) => write!(f, "{a}:{n}:{m}"),
        }
    }
}

// ===== helpers =====

/// Checks `communities` and `prefixAdvertisements` as Calico's validator
/// does (every value well formed; every name of a prefix advertisement
/// defined) and returns them resolved. Errors name the field.
pub(crate) fn resolve(
    communities: &[Community],
    adverts: &[PrefixAdvertisement],
) -> Result<Vec<PrefixCommunities>, ConfigError> {
    let mut named = std::collections::BTreeMap::new();
    for (i, c) in communities.iter().enumerate() {
        if c.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("spec.communities[{i}].name"),
                "\"\"",
                "a name for the value, used in prefixAdvertisements",
            ));
        }
        let value: CommunityValue = c.value.parse().map_err(|e: String| {
            ConfigError::invalid(format!("spec.communities[{i}].value"), &c.value, e)
        })?;
        if named.insert(c.name.as_str(), value).is_some() {
            return Err(ConfigError::invalid(
                format!("spec.communities[{i}].name"),
                format!("{:?}", c.name),
                "defined twice; names are unique",
            ));
        }
    }
    let mut out = Vec::new();
    for (i, a) in adverts.iter().enumerate() {
        let field = format!("spec.prefixAdvertisements[{i}].cidr");
        let cidr = parse_cidr(&a.cidr).map_err(|e| ConfigError::invalid(field, &a.cidr, e))?;
        if a.communities.is_empty() {
            return Err(ConfigError::invalid(
                format!("spec.prefixAdvertisements[{i}].communities"),
                "[]",
                "at least one community (a name from spec.communities or aa:nn / aa:nn:mm)",
            ));
        }
        let mut values = Vec::new();
        for (j, c) in a.communities.iter().enumerate() {
            let value = match c.parse::<CommunityValue>() {
                Ok(v) => v,
                Err(e) => *named.get(c.as_str()).ok_or_else(|| {
                    let known: Vec<&str> = named.keys().copied().collect();
                    ConfigError::invalid(
                        format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                        format!("{c:?}"),
                        format!(
                            "neither a name defined in spec.communities (defined: {}) nor a value: {e}",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    )
                })?,
            };
            if !values.contains(&value) {
                values.push(value);
            }
        }
        values.sort();
        out.push(PrefixCommunities { cidr, values });
    }
    Ok(out)
}

/// A prefix with its host bits clear, or one address (a /32 or /128).
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| "not a CIDR (write e.g. 10.244.0.0/16)".to_string())?;
    if net.trunc() != net {
        return Err(format!("host bits set: write {}", net.trunc()));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv(cidr: &str, communities: &[&str]) -> PrefixAdvertisement {
        PrefixAdvertisement {
            cidr: cidr.into(),
            communities: communities.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn values_parse_as_calico_checks_them() {
        use CommunityValue::*;
        assert_eq!("65001:100".parse(), Ok(Standard(65001, 100)));
        assert_eq!("4200000000:1:2".parse(), Ok(Large(4_200_000_000, 1, 2)));
        assert_eq!(Standard(1, 2).standard_word(), Some(0x0001_0002));
        assert_eq!(Large(1, 2, 3).large_triple(), Some([1, 2, 3]));
        for bad in [
            "65536:1",
            "1:2:4294967296",
            "1",
            "1:2:3:4",
            "a:b",
            "1:",
            "-1:2",
        ] {
            assert!(bad.parse::<CommunityValue>().is_err(), "{bad}");
        }
        assert_eq!(Large(1, 2, 3).to_string(), "1:2:3");
    }

    #[test]
    fn names_and_literals_resolve() {
        let defined = vec![
            Community {
                name: "no-export-ish".into(),
                value: "65000:100".into(),
            },
            Community {
                name: "big".into(),
                value: "65000:1:2".into(),
            },
        ];
        let got = resolve(
            &defined,
            &[
                adv("10.244.0.0/16", &["no-export-ish", "65000:200", "big"]),
                adv("192.0.2.7", &["65000:100", "no-export-ish"]),
            ],
        )
        .unwrap();
        assert_eq!(got[0].cidr, "10.244.0.0/16".parse::<IpNet>().unwrap());
        assert_eq!(
            got[0].values,
            vec![
                CommunityValue::Standard(65000, 100),
                CommunityValue::Standard(65000, 200),
                CommunityValue::Large(65000, 1, 2),
            ]
        );
        assert_eq!(got[1].cidr, "192.0.2.7/32".parse::<IpNet>().unwrap());
        assert_eq!(got[1].values.len(), 1, "a value given twice counts once");
    }

    #[test]
    fn errors_name_the_field() {
        let e = resolve(&[], &[adv("10.0.0.0/8", &["gold"])]).unwrap_err();
        assert_eq!(
            e.field(),
            Some("spec.prefixAdvertisements[0].communities[0]")
        );
        assert!(e.to_string().contains("defined: none"), "{e}");
        let e = resolve(&[], &[adv("10.0.0.1/8", &["1:1"])]).unwrap_err();
        assert!(e.to_string().contains("write 10.0.0.0/8"), "{e}");
        let e = resolve(
            &[Community {
                name: "x".into(),
                value: "70000:1".into(),
            }],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("spec.communities[0].value"));
        assert!(e.to_string().contains("16-bit"), "{e}");
    }
}
