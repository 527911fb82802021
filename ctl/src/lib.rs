//! `tortiectl`, Tortie's command line: the node's BGP status, resources
//! (calicoctl's verbs), IPAM, the node's routes and why one is or is not
//! there (`explain`), and the lab. The library
//! part also drives the multi-node tests (`lab::Lab`).
//!
//! # Layout
//!
//! - `node_status`: `node status` (the agent's `/status` as a peer table).
//! - `node_statuses`: `node status` with a datastore (every node's
//!   `CalicoNodeStatus`, a peer table per node).
//! - `routes`: `routes` (the agent's `/routes`: kernel routes and why).
//! - `explain`: `explain <prefix|address|namespace/pod>` (the agent's
//!   `/explain`: why a route is or is not in the kernel).
//! - `resources`: `get`, `apply -f`, `delete`.
//! - `ipam`: `ipam show`.
//! - `lab/`: `lab up | down | status | demo` (netns cluster of real
//!   tortie-node processes; with `--kubelets`, of real kubelet nodes with
//!   Tortie installed from `deploy/`).
//! - `http`, `table`, `yaml_out`: helpers.
//!
//! The user reference is `docs/operations.md` and `docs/getting-started.md`.

pub mod explain;
pub mod http;
pub mod ipam;
pub mod lab;
pub mod node_status;
pub mod node_statuses;
pub mod resources;
pub mod routes;
pub mod table;
pub mod yaml_out;
