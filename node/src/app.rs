//! Start-up, the main loop and shutdown.
//!
//! ```text
//! start: admin port -> netlink -> underlay address -> datastore (retried)
//!        -> register Node (retried) -> felix (adopts routes) -> watchers -> agent
//!        -> status reporter (CalicoNodeStatus), object status writer
//! run:   until SIGTERM / SIGINT
//! stop:  BGP graceful restart (peers keep our routes), marker written,
//!        kernel routes left in place
//! ```
//!
//! Nothing is removed from the kernel at start or at exit: felix adopts the
//! routes a previous run left and only changes them once the agent's
//! picture is complete (see `agent`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bgp_speaker::ShutdownMode;
use felix::reconciler::{self, ReconcilerConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tortie_config::node::{DatastoreSetting, IpForwardingSetting, NodeSettings};
use tortie_daemon::marker::Marker;
use tortie_datastore::{follow, AnyStore, StoreConfig};
use tracing::{info, warn};

use crate::agent::{self, AgentConfig};
use crate::cluster::{interest, WATCHED};
use crate::housekeeping::Housekeeping;
use crate::object_status::{self, WriterConfig};
use crate::peers::LocalBgp;
use crate::register::{self, RegisterError, Registration};
use crate::status::{NodeStatus, Phase};
use crate::status_report::{self, ReporterConfig};
use crate::{admin, underlay};

/// How long a shutdown may take before we exit anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Datastore retry delays at start.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Capacity of the agent's input channel.
const INPUTS: usize = 1024;
/// felix coalesces changes this long before a pass.
const FELIX_COALESCE: Duration = Duration::from_millis(1);

/// `--check`: settings and address detection, printed.
pub async fn check(settings: &NodeSettings) -> anyhow::Result<()> {
    let kernel = felix::kernel::open(None).context("netlink")?;
    let underlay = underlay::detect(
        &kernel.handle,
        &settings.address,
        settings.address_v6.as_ref(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let id = router_id(settings, &underlay)?;
    let v6 = underlay
        .address_v6
        .map(|a| format!(" and {a}"))
        .unwrap_or_default();
    println!(
        "OK: node {} at {}{v6} on {}, router ID {id}, datastore {}, admin {}",
        settings.node_name,
        underlay.address,
        underlay.interface,
        location(&settings.datastore),
        settings.admin
    );
    Ok(())
}

/// Runs the agent until SIGTERM/SIGINT (Ok) or a fatal error.
pub async fn run(settings: NodeSettings) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let started_unix = status_report::unix_now();

    // The admin port first: a failure then costs nothing else.
    let listener = tokio::net::TcpListener::bind(settings.admin)
        .await
        .with_context(|| format!("admin: cannot listen on {}", settings.admin))?;
    let kernel = felix::kernel::open(None).context("cannot open netlink")?;
    let underlay = underlay::detect(
        &kernel.handle,
        &settings.address,
        settings.address_v6.as_ref(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let router_id = router_id(&settings, &underlay)?;
    let marker = Marker::new(
        &settings.state_dir,
        format!(
            "router-id {} node {}",
            underlay.address.addr(),
            settings.node_name
        ),
    );
    if let Some(other) = marker.foreign_owner() {
        warn!(path = %marker.path().display(), owner = %other, "the graceful restart marker is another's (node name or address): starting fresh, and it is replaced");
    }
    let restarting = marker.restarted_within(Duration::from_secs(settings.restart_time.into()));
    let wait_for = if restarting {
        marker.peers()
    } else {
        Vec::new()
    };
    info!(
        node = %settings.node_name,
        address = %underlay.address,
        interface = %underlay.interface,
        datastore = %location(&settings.datastore),
        restarting,
        "starting tortie-node"
    );

    let channels = agent::Channels::new(NodeStatus {
        node: settings.node_name.clone(),
        address: Some(underlay.address),
        address_v6: underlay.address_v6,
        interface: underlay.interface.clone(),
        restarting,
        ..NodeStatus::default()
    });
    let shared = Arc::new(admin::Shared {
        status: channels.status_rx.clone(),
        refresh: channels.refresh.clone(),
        speaker: channels.speaker_rx.clone(),
        desired: channels.desired_rx.clone(),
        kernel: kernel.handle.clone(),
        metrics: crate::metrics::Metrics::new(channels.status_rx.clone(), channels.bgp_rx.clone()),
        store: std::sync::OnceLock::new(),
        felix: std::sync::OnceLock::new(),
    });
    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin::serve(listener, shared.clone(), async {
        let _ = admin_stopped.await;
    }));
    info!(admin = %settings.admin, "admin HTTP server listening");

    let store_config = store_config(&settings.datastore);
    let registration = Registration {
        name: settings.node_name.clone(),
        address: underlay.address,
        address_v6: underlay.address_v6,
        as_number: settings.as_number,
        labels: settings.labels.clone(),
        cluster_id: settings.route_reflector_cluster_id,
    };
    let started = tokio::select! {
        s = connect_and_register(&store_config, &registration, &channels) => Some(s?),
        _ = sigterm.recv() => None,
        _ = sigint.recv() => None,
    };
    let Some(store) = started else {
        info!("stopped before the datastore answered");
        let _ = stop_admin.send(());
        return Ok(());
    };

    let felix = reconciler::start(ReconcilerConfig {
        coalesce: FELIX_COALESCE,
        ip_forwarding: settings.ip_forwarding == IpForwardingSetting::Enabled,
        ..ReconcilerConfig::default()
    })
    .context("cannot start the route reconciler")?;
    let _ = shared.store.set(store.clone());
    let _ = shared.felix.set(felix.queries());
    let (tx, rx) = mpsc::channel(INPUTS);
    let mut watchers: Vec<_> = WATCHED
        .iter()
        .map(|kind| {
            let only = interest(*kind, &settings.node_name);
            follow::follow_only(store.clone(), *kind, only, tx.clone())
        })
        .collect();
    watchers.push(follow::probe(store.clone(), tx.clone()));
    // Reads the agent's published status; the agent never waits for it.
    let reporter = status_report::spawn(
        ReporterConfig {
            node: settings.node_name.clone(),
            store: store.clone(),
            writes: shared.metrics.status_writes(),
            started_unix,
        },
        channels.status_rx.clone(),
    );
    // The same for the problems onto the objects' statuses (Kubernetes).
    let object_writer = object_status::spawn(
        WriterConfig {
            node: settings.node_name.clone(),
            store: store.clone(),
            writes: shared.metrics.object_status_writes(),
        },
        channels.status_rx.clone(),
    );
    let outputs = agent::spawn(
        AgentConfig {
            name: settings.node_name.clone(),
            underlay: underlay.clone(),
            store: store.clone(),
            location: location(&settings.datastore),
            local_bgp: LocalBgp {
                router_id,
                restart_time: settings.restart_time,
                restarting,
                wait_for,
            },
            secrets_dir: settings.secrets_dir.clone(),
            felix,
            housekeeping: Housekeeping::new(
                kernel.handle.clone(),
                store.clone(),
                settings.node_name.clone(),
                underlay.interface.clone(),
                marker.clone(),
                settings.restart_time,
            ),
        },
        channels,
        tx,
        rx,
    );

    let signal = wait_signal(&mut sigterm, &mut sigint).await;
    info!(
        signal,
        "shutting down: kernel routes stay, peers keep ours for the restart time"
    );
    for w in &watchers {
        w.abort();
    }
    reporter.abort();
    object_writer.abort();
    let speaker = outputs.speaker.borrow().clone();
    if let Some(speaker) = speaker {
        let established: Vec<_> = speaker
            .status()
            .peers
            .iter()
            .filter(|p| p.state == bgp_speaker::SessionState::Established)
            .map(|p| p.address)
            .collect();
        tokio::select! {
            done = tokio::time::timeout(SHUTDOWN_TIMEOUT, speaker.shutdown(ShutdownMode::Graceful)) => {
                if done.is_err() {
                    warn!("the BGP speaker did not stop in time");
                }
            }
            s = wait_signal(&mut sigterm, &mut sigint) => warn!(signal = s, "second signal: exiting without waiting for the speaker"),
        }
        if let Err(e) = marker.write(&established) {
            warn!(path = %marker.path().display(), error = %e, "cannot write the graceful restart marker");
        }
    }
    let _ = stop_admin.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
    info!("stopped");
    Ok(())
}

/// The BGP router ID: `routerId`, else the node's IPv4 address; an
/// IPv6-only node without `routerId` cannot run BGP, and is refused.
fn router_id(
    settings: &NodeSettings,
    underlay: &crate::routes::Underlay,
) -> anyhow::Result<std::net::Ipv4Addr> {
    match (settings.router_id, underlay.address.addr()) {
        (Some(id), _) => Ok(id),
        (None, std::net::IpAddr::V4(a)) => Ok(a),
        (None, std::net::IpAddr::V6(a)) => bail!(
            "no BGP router ID: the node's address {a} is IPv6 and a router ID is 32 bits \
             (an IPv4 address); set routerId (--router-id, TORTIE_ROUTER_ID) to an IPv4 \
             address unique in the cluster, or to `hash` to derive one from the node name \
             (as Calico's CALICO_ROUTER_ID=hash)"
        ),
    }
}

/// Opens the datastore and registers our Node, retrying (with the reason
/// in `/status`) while the datastore is unreachable. A Node of another
/// name with our address is fatal.
async fn connect_and_register(
    config: &StoreConfig,
    me: &Registration,
    channels: &agent::Channels,
) -> anyhow::Result<AnyStore> {
    let mut delay = RETRY_MIN;
    loop {
        let attempt = async {
            let store = AnyStore::open(config).await.map_err(RegisterError::from)?;
            register::register(&store, me).await?;
            Ok::<_, RegisterError>(store)
        }
        .await;
        match attempt {
            Ok(store) => {
                info!(node = %me.name, address = %me.address, "registered");
                return Ok(store);
            }
            Err(e @ RegisterError::AddressTaken { .. }) => bail!(e),
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "datastore unavailable; kernel routes are kept as they are");
                channels.status.send_modify(|s| {
                    let mut s2 = (**s).clone();
                    s2.phase = Phase::WaitingForDatastore;
                    s2.problems = vec![format!("datastore: cannot register Node/{}: {e}", me.name)];
                    *s = Arc::new(s2);
                });
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn wait_signal(sigterm: &mut Signal, sigint: &mut Signal) -> &'static str {
    tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    }
}

fn store_config(d: &DatastoreSetting) -> StoreConfig {
    StoreConfig::from(d)
}

/// `file:DIR`, `etcd:URL,...` or `kubernetes[:KUBECONFIG]`, for logs and
/// `/status`.
pub fn location(d: &DatastoreSetting) -> String {
    match d {
        DatastoreSetting::File(dir) => format!("file:{}", dir.display()),
        DatastoreSetting::Etcd { endpoints, .. } => format!("etcd:{}", endpoints.join(",")),
        DatastoreSetting::Kubernetes(None) => "kubernetes".into(),
        DatastoreSetting::Kubernetes(Some(path)) => format!("kubernetes:{}", path.display()),
    }
}
