//! The admin HTTP server: `/status`, `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/status`: the agent's [`NodeStatus`] as JSON (`tortiectl node status`
//!   reads it).
//! - `/routes`: every kernel route of ours, wanted or found, and why
//!   (`tortiectl routes`).
//! - `/explain?target=PREFIX|ADDRESS|NAMESPACE/POD`: why one prefix is
//!   routed as it is (`tortiectl explain`, [`crate::why`]).
//! - `/healthz`: 200 while the agent publishes and, once started, the BGP
//!   speaker answers a round trip within 2 s; 503 otherwise (liveness).
//! - `/readyz`: 200 once the node routes (phase `running`); 503 with the
//!   phase otherwise (readiness).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bgp_speaker::SpeakerHandle;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use felix::desired::DesiredState;
use tortie_daemon::http::{json, text};

use crate::metrics::Metrics;
use crate::status::{NodeStatus, Phase};

/// How long a health probe waits for the speaker.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/status` and `/metrics` wait for the agent's fresh status
/// before they serve the last one (the agent is starting, or busy).
const REFRESH_WAIT: Duration = Duration::from_millis(250);

/// What the handlers read.
pub struct Shared {
    pub status: watch::Receiver<Arc<NodeStatus>>,
    /// Asks the agent to publish a fresh status.
    pub refresh: mpsc::Sender<oneshot::Sender<()>>,
    pub speaker: watch::Receiver<Option<SpeakerHandle>>,
    pub desired: watch::Receiver<Option<Arc<DesiredState>>>,
    /// Netlink, for `/routes`' dump.
    pub kernel: rtnetlink::Handle,
    pub metrics: Metrics,
    /// The datastore, once connected (`/explain` reads blocks, pods and
    /// filters from it when asked).
    pub store: std::sync::OnceLock<tortie_datastore::AnyStore>,
    /// felix, once started (`/explain` asks when it last wrote a route).
    pub felix: std::sync::OnceLock<felix::reconciler::Queries>,
}

impl Shared {
    /// The agent's status, fresh: the agent publishes session changes at
    /// once but its counters (routes learned and applied, prefixes per
    /// peer) only at its 1 s tick or when asked, which this does. The
    /// last published one if the agent does not answer in
    /// [`REFRESH_WAIT`].
    pub async fn fresh(&self) -> Arc<NodeStatus> {
        let (tx, rx) = oneshot::channel();
        if self.refresh.try_send(tx).is_ok() {
            let _ = tokio::time::timeout(REFRESH_WAIT, rx).await;
        }
        self.status.borrow().clone()
    }
}

/// Serves until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/status", get(status))
        .route("/routes", get(routes))
        .route("/explain", get(explain))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.fresh().await;
    json("status", &*snapshot)
}

async fn routes(State(shared): State<Arc<Shared>>) -> Response {
    // The agent hands on the desired state it changed since with it.
    shared.fresh().await;
    let Some(desired) = shared.desired.borrow().clone() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no desired state yet: the agent is starting (see /status)".into(),
        );
    };
    let claims = felix::desired::compute(&desired);
    let dumped = async {
        let links = felix::kernel::dump::links(&shared.kernel).await?;
        felix::kernel::dump::routes(&shared.kernel, &links).await
    }
    .await;
    let installed = match dumped {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("kernel dump failed: {e}"),
            )
        }
    };
    let view = crate::explain::explain(&desired, &claims, &installed);
    json("routes", &view)
}

async fn explain(State(shared): State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    let target = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("target="))
        .map(crate::why::percent_decode);
    let Some(target) = target else {
        return text(
            StatusCode::BAD_REQUEST,
            "give ?target=PREFIX, ADDRESS or NAMESPACE/POD".into(),
        );
    };
    match crate::why_fetch::answer(&shared, &target).await {
        Ok(e) => json("explain", &e),
        Err((code, why)) => text(code, why),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.fresh().await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, tortie_daemon::metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.status.has_changed().is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent task has stopped".into(),
        );
    }
    let speaker = shared.speaker.borrow().clone();
    if let Some(speaker) = speaker {
        match tokio::time::timeout(PING_TIMEOUT, speaker.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return text(StatusCode::SERVICE_UNAVAILABLE, format!("BGP speaker: {e}"))
            }
            Err(_) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("BGP speaker did not answer within {PING_TIMEOUT:?}"),
                )
            }
        }
    }
    text(StatusCode::OK, "ok".into())
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let phase = shared.status.borrow().phase;
    if phase == Phase::Running {
        text(StatusCode::OK, "ready".into())
    } else {
        let name = serde_json::to_value(phase)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {name}"),
        )
    }
}

async fn not_found() -> Response {
    tortie_daemon::http::not_found(&[
        "/status", "/routes", "/explain", "/metrics", "/healthz", "/readyz",
    ])
}
