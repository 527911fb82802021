//! The plugin's inputs: the network configuration (stdin) and the `CNI_*`
//! environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use tortie_datastore::StoreConfig;

use crate::error::{code, CniError};

/// CNI versions this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// Fields the runtime or the spec may put in a network config, which we
/// accept without using them for anything but what the spec says.
const SPEC_FIELDS: [&str; 5] = [
    "args",
    "capabilities",
    "dns",
    "runtimeConfig",
    "disableCheck",
];

/// The network configuration, as the runtime passes it on stdin.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The CNI version of the config (and of our result).
    pub cni_version: String,
    /// The network name; part of every handle id.
    pub name: String,
    /// Must be `tortie`.
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// Where the datastore is (default: the file backend in
    /// `/var/lib/tortie`).
    #[serde(default)]
    pub datastore: StoreConfig,
    /// MTU of both veth ends (default 1500).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// This node's name (default: the host name).
    #[serde(default)]
    pub node_name: Option<String>,
    /// IP pools to allocate from, by name (default: every enabled pool
    /// that selects this node).
    #[serde(default)]
    pub pools: Vec<String>,
    /// Assign an IPv4 address (default true).
    #[serde(default = "yes", rename = "assignIPv4")]
    pub assign_ipv4: bool,
    /// Assign an IPv6 address (default false).
    #[serde(default, rename = "assignIPv6")]
    pub assign_ipv6: bool,
    /// Never borrow addresses from other nodes' blocks (default false).
    #[serde(default)]
    pub strict_affinity: bool,
    /// Give up after this many seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The previous plugin's result (CHECK, chained plugins).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments that are still in use.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// Anything else: checked by [`NetConf::parse`].
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// The `CNI_*` environment of one call.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`, split at `;` and `=`.
    pub args: BTreeMap<String, String>,
}

// ===== impl NetConf =====

impl NetConf {
    /// Parses and checks `stdin`.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("network config on stdin is not valid JSON: {e}"),
            )
        })?;
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("network config: {e}; see docs/cni.md for the fields"),
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {:?} is not supported; use one of {}",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        if conf.plugin_type != "tortie" {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("type {:?}: this plugin is \"tortie\"", conf.plugin_type),
            ));
        }
        if conf.name.is_empty() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "name: must not be empty",
            ));
        }
        if conf.other.contains_key("ipam") {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "ipam: tortie allocates from its own block IPAM and delegates to no IPAM plugin; remove \"ipam\" and choose pools with \"pools\"",
            ));
        }
        if let Some(k) = conf
            .other
            .keys()
            .find(|k| !SPEC_FIELDS.contains(&k.as_str()) && !k.starts_with("cni.dev/"))
        {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!(
                    "unknown field {k:?} in the network config; known: datastore, mtu, nodeName, pools, assignIPv4, assignIPv6, strictAffinity, timeoutSeconds"
                ),
            ));
        }
        if !(68..=65535).contains(&conf.mtu) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("mtu: {} is out of range; use 68..=65535", conf.mtu),
            ));
        }
        if !conf.assign_ipv4 && !conf.assign_ipv6 {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "assignIPv4 and assignIPv6 are both false: nothing to assign; set one to true",
            ));
        }
        if let StoreConfig::Etcd { endpoints, .. } = &conf.datastore {
            if endpoints.is_empty() {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "datastore.endpoints: empty; list at least one, e.g. http://127.0.0.1:2379",
                ));
            }
        }
        Ok(conf)
    }

    /// This node's name: `nodeName`, else the kernel's host name.
    pub fn node(&self) -> Result<String, CniError> {
        if let Some(n) = &self.node_name {
            return Ok(n.clone());
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    "nodeName: not set and the host name is unknown; set nodeName",
                )
            })
    }
}

impl NetConf {
    /// The addresses the pod asks for: the `ips` capability
    /// (`runtimeConfig.ips`, what `podman --ip` sends: `10.244.0.50/24` or
    /// `10.244.0.50`) and `CNI_ARGS` `IP=` (comma-separated), in that
    /// order, without duplicates.
    pub fn requested_ips(&self, env: &Env) -> Result<Vec<std::net::IpAddr>, CniError> {
        let mut texts: Vec<(String, &str)> = Vec::new();
        if let Some(ips) = self.other.get("runtimeConfig").and_then(|r| r.get("ips")) {
            let list = ips.as_array().ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!("runtimeConfig.ips: {ips} is not a list of addresses"),
                )
            })?;
            for v in list {
                let t = v.as_str().ok_or_else(|| {
                    CniError::new(
                        code::INVALID_CONFIG,
                        format!("runtimeConfig.ips: {v} is not an address"),
                    )
                })?;
                texts.push((t.to_string(), "runtimeConfig.ips"));
            }
        }
        if let Some(ip) = env.args.get("IP") {
            for t in ip.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                texts.push((t.to_string(), "CNI_ARGS IP"));
            }
        }
        let mut out = Vec::new();
        for (t, from) in texts {
            let addr = t
                .split_once('/')
                .map_or(t.as_str(), |(a, _)| a)
                .parse::<std::net::IpAddr>()
                .map_err(|_| {
                    CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "{from}: {t:?} is not an IP address (10.244.0.50 or 10.244.0.50/24)"
                        ),
                    )
                })?;
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        Ok(out)
    }
}

// ===== impl Env =====

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND").unwrap_or_default(),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS").map(PathBuf::from),
            ifname: var("CNI_IFNAME"),
            args: parse_args(&var("CNI_ARGS").unwrap_or_default()),
        }
    }

    /// `CNI_CONTAINERID`, required.
    pub fn container_id(&self) -> Result<&str, CniError> {
        required(
            self.container_id.as_deref(),
            "CNI_CONTAINERID",
            &self.command,
        )
    }

    /// `CNI_IFNAME`, required and a valid interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let name = required(self.ifname.as_deref(), "CNI_IFNAME", &self.command)?;
        if name.len() > 15 || name.contains(['/', ' ', ':']) {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_IFNAME={name:?}: not a Linux interface name (1-15 characters, no '/', ':' or space)"),
            ));
        }
        Ok(name)
    }

    /// `CNI_NETNS`, required.
    pub fn netns(&self) -> Result<&std::path::Path, CniError> {
        self.netns.as_deref().ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_NETNS is not set; {} needs the container's network namespace path",
                    self.command
                ),
            )
        })
    }
}

// ===== helpers =====

fn required<'a>(v: Option<&'a str>, name: &str, command: &str) -> Result<&'a str, CniError> {
    v.ok_or_else(|| {
        CniError::new(
            code::INVALID_ENV,
            format!("{name} is not set; {command} needs it"),
        )
    })
}

/// `K8S_POD_NAMESPACE=a;K8S_POD_NAME=b` -> map.
fn parse_args(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn default_mtu() -> u32 {
    1500
}

fn default_timeout() -> u64 {
    10
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetConf, CniError> {
        NetConf::parse(text.as_bytes())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"tortie"}"#).unwrap();
        assert_eq!(c.mtu, 1500);
        assert!(c.assign_ipv4 && !c.assign_ipv6);
        assert_eq!(c.datastore, StoreConfig::default());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("{", code::DECODE, "not valid JSON"),
            (
                r#"{"cniVersion":"0.3.1","name":"n","type":"tortie"}"#,
                1,
                "0.3.1",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#,
                7,
                "\"bridge\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","mtu":9}"#,
                7,
                "mtu: 9",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","pool":["a"]}"#,
                2,
                "\"pool\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","mtu":"x"}"#,
                7,
                "invalid type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","datastore":{"type":"etcd","endpoints":[]}}"#,
                7,
                "datastore.endpoints",
            ),
            (r#"{"cniVersion":"1.0.0","type":"tortie"}"#, 7, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","ipam":{"type":"host-local"}}"#,
                2,
                "remove \"ipam\"",
            ),
        ];
        for (text, code, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.code, code, "{text}: {e}");
            assert!(e.msg.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn spec_fields_and_args() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"tortie","runtimeConfig":{},
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "c1");
        let a = parse_args("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
        assert_eq!(a["K8S_POD_NAME"], "p");
        let env = Env {
            command: "ADD".into(),
            ifname: Some("eth0:1".into()),
            ..Env::default()
        };
        assert_eq!(env.ifname().unwrap_err().code, code::INVALID_ENV);
        assert!(env
            .container_id()
            .unwrap_err()
            .msg
            .contains("CNI_CONTAINERID"));
    }

    #[test]
    fn requested_addresses() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","runtimeConfig":{"ips":["10.244.0.50/24","fd00::5"]}}"#,
        )
        .unwrap();
        let env = Env {
            args: parse_args("IP=10.244.0.51, 10.244.0.50"),
            ..Env::default()
        };
        let got: Vec<String> = c
            .requested_ips(&env)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.244.0.50", "fd00::5", "10.244.0.51"]);
        let env = Env {
            args: parse_args("IP=ten"),
            ..Env::default()
        };
        let e = c.requested_ips(&env).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(
            e.msg.contains("CNI_ARGS IP: \"ten\" is not an IP address"),
            "{}",
            e.msg
        );
        let bad = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"tortie","runtimeConfig":{"ips":"10.0.0.1"}}"#)
            .unwrap();
        assert!(bad
            .requested_ips(&Env::default())
            .unwrap_err()
            .msg
            .contains("not a list"));
    }
}
