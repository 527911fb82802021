//! The dataplane library that tortie-node runs: desired state in, kernel
//! routes (and VXLAN, NAT) out. It knows nothing of BGP.
//!
//! # Layout
//!
//! - [`route`]: the route vocabulary (`KernelRoute`, `InstalledRoute`).
//! - [`desired`]: pure: [`desired::DesiredState`] -> desired kernel routes.
//! - [`diff`]: pure: (desired, kernel dump) -> [`diff::Plan`].
//! - [`kernel`]: rtnetlink in a namespace: dump ours, one write executor.
//! - [`endpoint`]: host side of a workload veth (name, proxy ARP, MAC).
//! - [`endpoint_gc`]: stale workload interfaces, removed after a grace period.
//! - [`sysctl`]: sysctls read and written from a setns'd thread.
//! - [`forwarding`]: the node's IP forwarding sysctls (`ipForwarding`).
//! - [`pass`]: pass reports and the reconciler status.
//! - [`reconciler`]: the task: coalesce events, dump, diff, apply, resync.
//! - [`vxlan`]: pure: desired state -> `vxlan.tortie` device and peer entries.
//! - [`nat`]: NAT outgoing in our own nftables tables.
//! - [`netns`]: entering a network namespace on a thread of its own.
//! - [`written`]: when felix last wrote each route (`tortiectl explain`).

#![warn(missing_docs)]

pub mod desired;
pub mod diff;
pub mod endpoint;
pub mod endpoint_gc;
pub mod forwarding;
pub mod kernel;
pub mod nat;
pub mod netns;
pub mod pass;
pub mod reconciler;
pub mod route;
pub mod sysctl;
pub mod vxlan;
pub mod written;
