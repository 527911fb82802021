//! `tortie-cni`: Tortie's CNI plugin (CNI spec 1.0.0 and 1.1.0).
//!
//! The runtime runs the binary with `CNI_COMMAND` (ADD, DEL, CHECK, GC,
//! STATUS, VERSION) and the other `CNI_*` variables in the environment and
//! the network config on stdin; the plugin prints a result (or a CNI error)
//! on stdout. ADD allocates the pod's addresses from the block IPAM
//! (`tortie-ipam`), makes a routed veth pair (no bridge), writes the
//! `WorkloadEndpoint` the node agent routes from, and returns the result.
//! It never talks to the agent, so it never waits on it.
//!
//! # Layout
//!
//! - `main.rs`: process glue (env, stdin, stdout, exit status).
//! - `lib.rs`: [`run`], the dispatch.
//! - `config.rs`: [`config::NetConf`] and [`config::Env`].
//! - `commands.rs`: one function per command.
//! - `annotations.rs`: Calico's IPAM annotations on a Kubernetes Pod
//!   (`cni.projectcalico.org/ipAddrs`, `ipv4pools`, ...).
//! - `plan.rs`: [`plan::Plan`], what ADD allocates (config, runtime and
//!   annotations together).
//! - `link.rs`: netlink: veth pair, pod and host settings.
//! - `error.rs`: [`error::CniError`] and the spec's codes.
//!
//! The user reference is `docs/cni.md`.

use std::time::Duration;

use serde_json::Value;

pub mod annotations;
pub mod commands;
pub mod config;
pub mod error;
pub mod link;
pub mod plan;

use config::{Env, NetConf};
use error::{code, CniError};

/// Runs one command; `Some(json)` is printed on success.
pub async fn run(env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == "VERSION" {
        return Ok(Some(commands::version(stdin)));
    }
    let conf = NetConf::parse(stdin)?;
    let limit = Duration::from_secs(conf.timeout_seconds.max(1));
    let work = async {
        match env.command.as_str() {
            "ADD" => commands::add(&conf, env).await.map(Some),
            "DEL" => commands::del(&conf, env).await.map(|()| None),
            "CHECK" => commands::check(&conf, env).await.map(|()| None),
            "GC" => commands::gc(&conf).await.map(|()| None),
            "STATUS" => commands::status(&conf).await.map(|()| None),
            "" => Err(CniError::new(
                code::INVALID_ENV,
                "CNI_COMMAND is not set; this is a CNI plugin, run by a container runtime",
            )),
            other => Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_COMMAND={other:?}: use ADD, DEL, CHECK, GC, STATUS or VERSION"),
            )),
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(CniError::new(
            code::TRY_AGAIN,
            format!(
                "{} did not finish within timeoutSeconds={}; is the datastore slow?",
                env.command, conf.timeout_seconds
            ),
        )),
    }
}
