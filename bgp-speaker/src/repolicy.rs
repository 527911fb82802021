//! A peer's filters or export settings changed by reconfiguration: applied
//! to the running session, which stays Established.
//!
//! - Export (its `export_filter`, `export_local_only`,
//!   `export_aggregates`, `next_hop_self`, `keep_next_hop`): the new rules
//!   run over the Loc-RIB and the peer is sent the difference, announced
//!   or withdrawn (`rib/table/reclass.rs`).
//! - Import (`import_filter`, `import_within`): its routes the new rules
//!   refuse leave the Loc-RIB at once. For the routes it sent that we
//!   refused and would now take, we need their attributes again, and we
//!   keep none of refused routes (soft reconfiguration inbound would hold a
//!   second copy of every route a filter refuses, for the rare change of a
//!   filter): the peer is sent a ROUTE-REFRESH (RFC 2918) for those
//!   families, as BIRD does, when it announced the capability. Enhanced
//!   route refresh (RFC 7313) is not needed for this: what the peer has
//!   sent us is in step with what it holds; only our view of it changed.
//!   A peer without the capability is reset (Cease, Other Configuration
//!   Change), the one case that still drops the session.

use std::net::{IpAddr, Ipv6Addr};

use crate::config::PeerConfig;
use crate::instance::Instance;
use crate::neighbor::session::ToSession;
use crate::rib::export::ExportClass;
use crate::rib::policy::NO_POLICY;
use crate::rib::{PeerId, PeerPolicy};

/// What a reconfiguration does to a peer whose configuration changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InPlace {
    /// Applied to the running session (or kept for the next one).
    Apply,
    /// The session must be reset: other settings changed, or routes we
    /// refused would now pass and the peer cannot send them again.
    Reset,
}

// ===== impl Instance: repolicy =====

impl Instance {
    /// Whether peer `id` can take `new` without a reset (see the module
    /// doc). Changes nothing.
    pub(crate) fn in_place(&mut self, id: PeerId, new: &PeerConfig) -> InPlace {
        let Some(n) = self.neighbors.get(&id) else {
            return InPlace::Reset;
        };
        if !same_session(&n.config, new) {
            return InPlace::Reset;
        }
        let import_same = n.config.import_filter == new.import_filter
            && n.config.import_within == new.import_within;
        let Some(agreed) = n.est().and_then(|c| c.agreed.as_ref()) else {
            // No session: the next one starts with the new settings (and
            // stale routes, if any, are judged by them now).
            return InPlace::Apply;
        };
        if import_same || agreed.route_refresh {
            return InPlace::Apply;
        }
        let within = new.import_within.as_deref();
        if self
            .rib
            .refresh_needed(id, within, &new.import_filter)
            .is_empty()
        {
            InPlace::Apply
        } else {
            InPlace::Reset
        }
    }

    /// Applies the filters and export settings of `new` (checked by
    /// [`Instance::in_place`]) to peer `id`; its BFD settings are the
    /// caller's (`bfd_reconfigure`).
    pub(crate) fn repolicy(&mut self, id: PeerId, new: &PeerConfig) {
        let local_asn = self.config.asn;
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let import_changed = n.config.import_filter != new.import_filter
            || n.config.import_within != new.import_within;
        n.config = PeerConfig {
            bfd: n.config.bfd,
            ..new.clone()
        };
        let Some(local_addr) = n.established.and(n.local_addr) else {
            // Down: kept for the next session; stale routes judged now.
            let policy = PeerPolicy {
                export: export_class(&n.config, local_asn, IpAddr::from([0, 0, 0, 0]), None),
                import_within: n.config.import_within.clone(),
                import_filter: n.config.import_filter.clone(),
                export_filter: n.config.export_filter.clone(),
            };
            self.rib.repolicy(id, policy);
            return;
        };
        let refresh = if import_changed {
            self.rib
                .refresh_needed(id, new.import_within.as_deref(), &new.import_filter)
        } else {
            Vec::new()
        };
        let policy = PeerPolicy {
            export: export_class(&n.config, local_asn, local_addr, n.local_link_local),
            import_within: n.config.import_within.clone(),
            import_filter: n.config.import_filter.clone(),
            export_filter: n.config.export_filter.clone(),
        };
        let done = self.rib.repolicy(id, policy);
        tracing::info!(
            peer = %n.config.address,
            refused = done.refused,
            export_changed = done.export_changed,
            refresh = ?refresh,
            "filters changed by reconfiguration; the session stays"
        );
        for afi in refresh {
            if !n.refresh_due.contains(&afi) {
                n.refresh_due.push(afi);
            }
        }
    }

    /// Sends the ROUTE-REFRESH requests peer `id` is due, while its
    /// session has room for them.
    pub(crate) fn send_refreshes(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let Some(conn) = n.est() else { return };
        let tx = conn.tx.clone();
        while let Some(afi) = n.refresh_due.first().copied() {
            if tx.try_send(ToSession::RouteRefresh(afi)).is_err() {
                return;
            }
            tracing::debug!(peer = %n.config.address, ?afi, "ROUTE-REFRESH sent");
            n.refresh_due.remove(0);
        }
    }
}

/// How a peer is treated on export, from its configuration and the
/// session's local addresses (the RIB sets the export rules' id).
pub(crate) fn export_class(
    c: &PeerConfig,
    local_asn: u32,
    local_addr: IpAddr,
    local_link_local: Option<Ipv6Addr>,
) -> ExportClass {
    let ebgp = c.asn != local_asn;
    ExportClass {
        asn: c.asn,
        ebgp,
        rr_client: c.rr_client,
        next_hop_self: c.next_hop_self,
        local_addr,
        local_link_local,
        keep_next_hop: c.keep_next_hop,
        local_only: c.export_local_only,
        aggregates: c.export_aggregates,
        policy: NO_POLICY,
    }
}

/// Whether `a` and `b` differ only in what applies to a running session:
/// BFD, filters and export settings.
fn same_session(a: &PeerConfig, b: &PeerConfig) -> bool {
    *a == PeerConfig {
        bfd: a.bfd,
        import_filter: a.import_filter.clone(),
        export_filter: a.export_filter.clone(),
        import_within: a.import_within.clone(),
        export_local_only: a.export_local_only,
        export_aggregates: a.export_aggregates,
        next_hop_self: a.next_hop_self,
        keep_next_hop: a.keep_next_hop,
        ..b.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filters_bfd_and_export_settings_keep_the_session() {
        let a = PeerConfig::new("192.0.2.1".parse().unwrap(), 65000);
        let mut b = a.clone();
        b.export_local_only = true;
        b.next_hop_self = true;
        b.import_within = Some(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(same_session(&a, &b));
        for change in [
            |c: &mut PeerConfig| c.asn = 65001,
            |c: &mut PeerConfig| c.hold_time = 30,
            |c: &mut PeerConfig| c.password = Some("k".into()),
            |c: &mut PeerConfig| c.rr_client = true,
            |c: &mut PeerConfig| c.allow_local_as = 1,
        ] {
            let mut c = b.clone();
            change(&mut c);
            assert!(!same_session(&a, &c), "{c:?}");
        }
    }
}
