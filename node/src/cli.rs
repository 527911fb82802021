//! The command line: every setting is a flag with a `TORTIE_*` environment
//! variable (what a DaemonSet sets), over an optional settings file
//! (`--config`), over the defaults. See `tortie_config::node`.

// The doc comments below are `--help` text (clap), where `[:KUBECONFIG]`
// means an optional part, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use tortie_config::node::{parse_labels, NodeSettingsLayer};
use tortie_config::resources::AsNumber;

/// Tortie's node agent: BGP speaker and dataplane of one node.
#[derive(Debug, Parser)]
#[command(name = "tortie-node", version, about)]
pub struct Cli {
    /// A settings file (YAML, the camelCase names of these settings).
    #[arg(long, env = "TORTIE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// This node's name [default: the host name].
    #[arg(long, env = "TORTIE_NODE_NAME")]
    pub node_name: Option<String>,
    /// The datastore: file:DIR, etcd:URL[,URL...] or kubernetes[:KUBECONFIG] [default: file:/var/lib/tortie].
    #[arg(long, env = "TORTIE_DATASTORE")]
    pub datastore: Option<String>,
    /// Key prefix in etcd [default: /tortie/v1].
    #[arg(long, env = "TORTIE_ETCD_PREFIX")]
    pub etcd_prefix: Option<String>,
    /// The node's address with its prefix length (192.168.1.10/24),
    /// autodetect, or none (an IPv6-only node whose address is --ip6)
    /// [default: autodetect].
    #[arg(long, env = "TORTIE_IP")]
    pub ip: Option<String>,
    /// The node's IPv6 address with its prefix length (fd00:1::10/64),
    /// autodetect (by --ip6-autodetection-method) or none: dual stack
    /// beside --ip, or an IPv6-only node's address with --ip none
    /// [default: none].
    #[arg(long, env = "TORTIE_IP6")]
    pub ip6: Option<String>,
    /// The BGP router ID: an IPv4 address, or `hash` (from the node name)
    /// [default: the node's IPv4 address; required without one].
    #[arg(long, env = "TORTIE_ROUTER_ID")]
    pub router_id: Option<String>,
    /// first-found, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX],
    /// cidr=CIDR[,CIDR] or can-reach=ADDRESS [default: first-found].
    #[arg(long, env = "TORTIE_IP_AUTODETECTION_METHOD")]
    pub ip_autodetection_method: Option<String>,
    /// How --ip6 autodetect finds the IPv6 address: the methods of
    /// --ip-autodetection-method over global IPv6 addresses (on the --ip
    /// interface of a dual-stack node) [default: the first global IPv6
    /// address of the --ip interface; first-found with --ip none].
    #[arg(long, env = "TORTIE_IP6_AUTODETECTION_METHOD")]
    pub ip6_autodetection_method: Option<String>,
    /// The node's AS number, written into its Node [default: the
    /// BGPConfiguration's, else 64512].
    #[arg(long, env = "TORTIE_AS_NUMBER")]
    pub as_number: Option<AsNumber>,
    /// Labels merged into the node's Node: key=value[,key=value...].
    #[arg(long, env = "TORTIE_LABELS", value_parser = parse_labels)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Makes this node a route reflector with this cluster id (written into
    /// its Node).
    #[arg(long, env = "TORTIE_ROUTE_REFLECTOR_CLUSTER_ID")]
    pub route_reflector_cluster_id: Option<std::net::Ipv4Addr>,
    /// Admin HTTP address (/status, /metrics, /healthz, /readyz)
    /// [default: 127.0.0.1:9099].
    #[arg(long, env = "TORTIE_ADMIN")]
    pub admin: Option<String>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives such as info,bgp_speaker=debug [default: info].
    #[arg(long, env = "TORTIE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// text or json [default: text].
    #[arg(long, env = "TORTIE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Where the graceful restart marker is kept [default: /run/tortie].
    #[arg(long, env = "TORTIE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Graceful restart time advertised to peers, seconds [default: 120].
    #[arg(long, env = "TORTIE_RESTART_TIME")]
    pub restart_time: Option<u16>,
    /// Where BGPPeer passwords given by secretKeyRef are read:
    /// DIR/SECRET/KEY [default: /etc/tortie/secrets].
    #[arg(long, env = "TORTIE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Enabled or Disabled: whether the agent sets net.ipv4.ip_forward
    /// (and net.ipv6.conf.all.forwarding with an IPv6 pool) to 1, as
    /// Felix's ipForwarding [default: Enabled].
    #[arg(long, env = "TORTIE_IP_FORWARDING")]
    pub ip_forwarding: Option<String>,
    /// Check the settings and the address detection, print the outcome and
    /// exit (0 if usable, 1 if not).
    #[arg(long)]
    pub check: bool,
}

// ===== impl Cli =====

impl Cli {
    /// The flags and environment as one settings layer.
    pub fn layer(&self) -> NodeSettingsLayer {
        NodeSettingsLayer {
            node_name: self.node_name.clone(),
            datastore: self.datastore.clone(),
            etcd_prefix: self.etcd_prefix.clone(),
            ip: self.ip.clone(),
            ip_autodetection_method: self.ip_autodetection_method.clone(),
            ip6: self.ip6.clone(),
            ip6_autodetection_method: self.ip6_autodetection_method.clone(),
            router_id: self.router_id.clone(),
            as_number: self.as_number,
            labels: self.labels.clone(),
            route_reflector_cluster_id: self.route_reflector_cluster_id,
            admin: self.admin.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
            state_dir: self.state_dir.clone(),
            restart_time: self.restart_time,
            secrets_dir: self.secrets_dir.clone(),
            ip_forwarding: self.ip_forwarding.clone(),
        }
    }
}
