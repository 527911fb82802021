//! What the reconciler reports: why a pass ran, what it did, and the
//! published status (re-exported from [`crate::reconciler`]).

use std::time::Duration;

use serde::Serialize;

/// Why a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PassReason {
    /// A new desired state arrived.
    Desired,
    /// Asked for with [`ReconcilerHandle::resync`](crate::reconciler::ReconcilerHandle::resync).
    OnDemand,
    /// The periodic timer.
    Periodic,
    /// A kernel notification disagreed with the desired state.
    Kernel,
    /// Retrying failed writes.
    Retry,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Why it ran (the first reason scheduled since the previous pass).
    pub reason: PassReason,
    /// Whether it dumped and diffed everything (else it only re-added
    /// routes the kernel announced as deleted).
    pub full: bool,
    /// Routes of ours found by the dump (0 for a targeted heal).
    pub installed: usize,
    /// Routes wanted.
    pub desired: usize,
    /// Routes added, replaced, deleted (planned).
    pub add: usize,
    /// See `add`.
    pub replace: usize,
    /// See `add`.
    pub delete: usize,
    /// Netlink writes sent.
    pub writes: u64,
    /// Netlink writes for `vxlan.tortie`, its address, neighbour and FDB
    /// entries (full passes only; 0 when they were right).
    pub vxlan_writes: u64,
    /// `nft` batches sent for NAT outgoing (full passes only; 0 when our
    /// tables were right).
    pub nat_writes: u64,
    /// Writes that failed, one line each, naming the route.
    pub failures: Vec<String>,
    /// Routes held back until their workload interface exists (the CNI
    /// plugin writes a pod's endpoint before it makes its interface).
    pub waiting: usize,
    /// Wall time of dump + diff + apply.
    pub duration: Duration,
}

/// The reconciler's published state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Passes run.
    pub passes: u64,
    /// Generation of the newest desired state the last pass applied (see
    /// [`ReconcilerHandle::set_desired`](crate::reconciler::ReconcilerHandle::set_desired)).
    pub applied: u64,
    /// Netlink writes sent since start.
    pub writes: u64,
    /// Whether a desired state has arrived (before that, nothing is touched).
    pub has_desired: bool,
    /// Warnings about the current desired state.
    pub warnings: Vec<String>,
    /// The last pass.
    pub last_pass: Option<PassReport>,
    /// Times the notification socket overflowed (each forces a full pass).
    pub kernel_overruns: u64,
    /// Whether the kernel notification stream is still alive (if not, only
    /// the periodic resync heals).
    pub kernel_events: bool,
    /// Problems of the last IP forwarding check, one line each (the
    /// sysctl, the cause, the fix: [`crate::forwarding`]); empty when
    /// forwarding is set, or is not ours to set. Checked on each full
    /// pass, so a problem clears at the first full pass that finds the
    /// sysctls right.
    pub forwarding: Vec<String>,
}
