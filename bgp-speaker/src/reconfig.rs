//! Applying a new configuration to a running speaker: only what changed is
//! touched; an invalid configuration changes nothing.

use crate::config::{PeerConfig, SpeakerConfig};
use crate::error::Error;
use crate::instance::{listener_gtsm, listener_keys, local_facts, Instance};
use crate::neighbor::negotiate::code;
use crate::repolicy::InPlace;
use crate::rib::PeerId;

/// Cease subcode 6, "Other Configuration Change" (RFC 4486).
const OTHER_CONFIG_CHANGE: u8 = 6;

// ===== impl Instance: reconfigure =====

impl Instance {
    /// Checks `new`, then applies it: the steps that can fail come first
    /// and change nothing when they do (a new listen address is bound and
    /// given its MD5 keys and GTSM settings beside the old listener, which
    /// it replaces only then; keys moved on the same listener are moved
    /// back); then peers
    /// that were removed or changed are closed, and new ones started.
    /// Sessions of unchanged peers are left alone; a peer whose BFD,
    /// filters or export settings alone changed keeps its session
    /// (`repolicy`), and so does a dynamic peer whose range's filters
    /// changed. A change of AS number or router id resets all.
    pub(crate) fn reconfigure(&mut self, new: SpeakerConfig) -> Result<(), Error> {
        new.check().map_err(Error::Config)?;
        // Unchanged if equal to what was asked or to what is bound (port 0).
        let bound = self.listener.as_ref().map(|l| l.addr);
        if new.listen != self.config.listen && new.listen != bound {
            let fresh = match new.listen {
                Some(addr) => {
                    let l = self.bind(addr)?;
                    let none = SpeakerConfig::new(new.router_id, new.asn);
                    listener_keys(&l.socket, &none, &new)?;
                    listener_gtsm(&l, &new)?;
                    Some(l)
                }
                None => None,
            };
            self.listener = fresh;
        } else if let Some(l) = &self.listener {
            if let Err(e) =
                listener_keys(&l.socket, &self.config, &new).and_then(|()| listener_gtsm(l, &new))
            {
                // Put the running configuration's keys and GTSM back.
                let _ = listener_keys(&l.socket, &new, &self.config);
                let _ = listener_gtsm(l, &self.config);
                return Err(e);
            }
        }
        let reset_all = new.asn != self.config.asn || new.router_id != self.config.router_id;
        let old = std::mem::replace(&mut self.config, new);
        self.rib.set_local(local_facts(&self.config));

        let ids: Vec<PeerId> = self.neighbors.keys().copied().collect();
        let mut in_place = Vec::new();
        for id in ids {
            let n = &self.neighbors[&id];
            let (addr, dynamic) = (n.config.address, n.dynamic);
            let unchanged = |p: &PeerConfig| *p == n.config;
            let wanted = self.config.peers.iter().find(|p| p.address == addr);
            let (wanted, unchanged) = (wanted.cloned(), wanted.is_some_and(unchanged));
            let verdict = if dynamic {
                let range = self.dynamic_match(addr);
                match (wanted, range) {
                    (Some(_), _) | (None, None) => Some(code::PEER_DECONFIGURED),
                    (None, Some(_)) if reset_all => Some(code::PEER_DECONFIGURED),
                    (None, Some(d)) => {
                        // The range's filters apply to its running
                        // sessions as a static peer's do; its other
                        // settings, to the peer's next session.
                        let p = PeerConfig {
                            import_filter: d.import_filter,
                            export_filter: d.export_filter,
                            ..self.neighbors[&id].config.clone()
                        };
                        if p == self.neighbors[&id].config {
                            None
                        } else if self.in_place(id, &p) == InPlace::Apply {
                            in_place.push((id, p));
                            None
                        } else {
                            Some(OTHER_CONFIG_CHANGE)
                        }
                    }
                }
            } else {
                match wanted {
                    None => Some(code::PEER_DECONFIGURED),
                    Some(_) if reset_all => Some(OTHER_CONFIG_CHANGE),
                    Some(_) if unchanged => None,
                    // BFD, filters or export settings changed: the
                    // session stays (`bfd_reconfigure`, `repolicy`).
                    Some(p) if self.in_place(id, &p) == InPlace::Apply => {
                        in_place.push((id, p));
                        None
                    }
                    Some(_) => Some(OTHER_CONFIG_CHANGE),
                }
            };
            if let Some(subcode) = verdict {
                tracing::info!(peer = %addr, subcode, "peer removed or changed by reconfiguration");
                self.remove_neighbor_with(id, subcode);
            }
        }
        let existing: Vec<_> = self
            .neighbors
            .values()
            .filter(|n| !n.dynamic)
            .map(|n| n.config.address)
            .collect();
        let added: Vec<_> = self
            .config
            .peers
            .iter()
            .filter(|p| !existing.contains(&p.address))
            .cloned()
            .collect();
        for p in added {
            tracing::info!(peer = %p.address, "peer added by reconfiguration");
            self.add_neighbor(p, false);
        }
        for (id, p) in in_place {
            let n = &self.neighbors[&id];
            if p.bfd != n.config.bfd {
                tracing::info!(peer = %n.config.address, "BFD settings changed by reconfiguration; the BGP session stays");
                self.bfd_reconfigure(id, p.bfd);
            }
            if p != self.neighbors[&id].config {
                self.repolicy(id, &p);
            }
        }
        if old.graceful_restart != self.config.graceful_restart {
            tracing::info!("graceful restart settings apply to new sessions");
        }
        Ok(())
    }
}
