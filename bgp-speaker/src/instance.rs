//! The owner task: holds the configuration, the peers and the RIB, and
//! processes every input in one place.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::api::{BestPathChange, Command, SpeakerHandle, CHANNEL_CAPACITY};
use crate::config::SpeakerConfig;
use crate::error::Error;
use crate::status::{PeerStatus, SessionState, Status};

/// Starts a speaker. Returns its handle and the stream of best-path changes
/// (batched). Fails if the configuration is invalid or the listen address
/// cannot be bound.
pub async fn start(
    config: SpeakerConfig,
) -> Result<(SpeakerHandle, mpsc::Receiver<Vec<BestPathChange>>), Error> {
    config.check().map_err(Error::Config)?;
    let (cmd_tx, mut cmd_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (_best_tx, best_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (status_tx, status_rx) = watch::channel(Arc::new(snapshot(&config)));
    tokio::spawn(async move {
        let mut config = config;
        while let Some(cmd) = cmd_rx.recv().await {
            match cmd {
                Command::Reconfigure(new, reply) => {
                    let res = new.check().map_err(Error::Config);
                    if res.is_ok() {
                        config = new;
                        let _ = status_tx.send(Arc::new(snapshot(&config)));
                    }
                    let _ = reply.send(res);
                }
                Command::Originate(_) | Command::Withdraw(_) => {}
                Command::Shutdown(_, done) => {
                    let _ = done.send(());
                    break;
                }
            }
        }
    });
    Ok((
        SpeakerHandle {
            commands: cmd_tx,
            status: status_rx,
        },
        best_rx,
    ))
}

fn snapshot(config: &SpeakerConfig) -> Status {
    Status {
        router_id: Some(config.router_id),
        asn: config.asn,
        cluster_id: config.cluster_id,
        loc_rib_prefixes: 0,
        peers: config
            .peers
            .iter()
            .map(|p| PeerStatus {
                address: p.address,
                asn: p.asn,
                dynamic: false,
                rr_client: p.rr_client,
                state: SessionState::Idle,
                since_unix: 0,
                uptime_secs: 0,
                prefixes_received: 0,
                prefixes_accepted: 0,
                prefixes_advertised: 0,
                updates_received: 0,
                updates_sent: 0,
                messages_received: 0,
                messages_sent: 0,
                flaps: 0,
                last_error: None,
                negotiated: None,
            })
            .collect(),
    }
}
