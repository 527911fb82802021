//! The admin HTTP server: `/status`, `/metrics`, `/healthz`, `/readyz`.
//! Any other path is 404.
//!
//! - `/healthz`: 200 when the process is alive and the speaker task answers
//!   a round trip within 2 s; 503 otherwise. For liveness probes.
//! - `/readyz`: 200 when the configuration is loaded, the speaker started
//!   and the process is not shutting down; 503 otherwise. For readiness.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bgp_speaker::{PeerStatus, SessionState};
use serde::Serialize;
use tokio::net::TcpListener;

use tortie_daemon::http::{json, text};

use crate::metrics;
use crate::state::Shared;

/// `/status` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub router_id: Option<std::net::Ipv4Addr>,
    pub as_number: u32,
    pub cluster_id: Option<std::net::Ipv4Addr>,
    pub loc_rib_prefixes: u64,
    pub config: ConfigView,
    pub peers: Vec<PeerView>,
    /// Inbound connections closed at once, by why, since start.
    pub connections_refused: RefusedView,
    /// While a peer uses GTSM (`ttlSecurity`): the kernel's count of
    /// segments dropped for a TTL below a socket's minimum, in this
    /// network namespace (`bgp_speaker::Status::kernel_min_ttl_drops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_min_ttl_drops: Option<u64>,
    /// Clients taken from the datastore, when the file asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore_clients: Option<crate::clients::ClientsStatus>,
}

/// Which configuration runs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub path: String,
    /// Unix time the running configuration was applied.
    pub applied_unix: u64,
    /// We started with the graceful restart R bit set.
    pub restarting: bool,
}

/// `connectionsRefused` in `/status` (`bgp_speaker::Refused`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedView {
    pub not_a_peer: u64,
    pub peer_limit: u64,
    pub superseded: u64,
    /// GTSM: the SYN came with a TTL below the peer's minimum.
    pub ttl_security: u64,
}

/// One peer in `/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub address: IpAddr,
    pub asn: u32,
    pub dynamic: bool,
    pub client: bool,
    pub state: SessionState,
    /// Unix time of the last state change (0: never changed).
    pub since_unix: u64,
    pub uptime_secs: u64,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
    pub updates_received: u64,
    pub updates_sent: u64,
    pub flaps: u64,
    pub last_error: Option<String>,
    /// BFD, for a peer with `bfd` (its session, whether it holds BGP
    /// down); the service's counters are in `/metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd: Option<bgp_speaker::PeerBfd>,
}

// ===== impl PeerView =====

impl From<&PeerStatus> for PeerView {
    fn from(p: &PeerStatus) -> Self {
        PeerView {
            address: p.address,
            asn: p.asn,
            dynamic: p.dynamic,
            client: p.rr_client,
            state: p.state,
            since_unix: p.since_unix,
            uptime_secs: p.uptime_secs,
            prefixes_received: p.prefixes_received,
            prefixes_accepted: p.prefixes_accepted,
            prefixes_advertised: p.prefixes_advertised,
            updates_received: p.updates_received,
            updates_sent: p.updates_sent,
            flaps: p.flaps,
            last_error: p.last_error.clone(),
            bfd: p.bfd.clone(),
        }
    }
}

// ===== server =====

/// Serves the admin endpoints on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(stop)
        .await
}

/// The routes; everything else falls through to 404.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(shared)
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    // Counters as they are now (the watched snapshot may be a second old).
    let status = match shared.handle.fresh_status().await {
        Ok(s) => s,
        Err(_) => shared.handle.status(),
    };
    let applied = shared.applied();
    let view = StatusView {
        router_id: status.router_id,
        as_number: status.asn,
        cluster_id: status.cluster_id,
        loc_rib_prefixes: status.loc_rib_prefixes,
        config: ConfigView {
            path: shared.config_path.display().to_string(),
            applied_unix: applied.applied_unix,
            restarting: shared.restarting,
        },
        peers: status.peers.iter().map(PeerView::from).collect(),
        connections_refused: RefusedView {
            not_a_peer: status.refused.not_a_peer,
            peer_limit: status.refused.peer_limit,
            superseded: status.refused.superseded,
            ttl_security: status.refused.ttl_security,
        },
        kernel_min_ttl_drops: status.kernel_min_ttl_drops,
        datastore_clients: shared.clients_status(),
    };
    json("status", &view)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    // Publishes the counters as they are now to the watch the metrics read.
    let _ = shared.handle.fresh_status().await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.ping().await {
        Ok(()) => text(StatusCode::OK, "ok".into()),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.readiness() {
        Ok(()) => text(StatusCode::OK, "ready".into()),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn not_found() -> Response {
    tortie_daemon::http::not_found(&["/status", "/metrics", "/healthz", "/readyz"])
}
