//! Responses of the daemons' admin HTTP servers (axum), so that
//! `/status`, errors and 404s look alike in tortie-rr and tortie-node.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `body` as pretty JSON (200), or a 500 naming `what` could not be
/// encoded.
pub fn json(what: &str, body: &impl Serialize) -> Response {
    match serde_json::to_string_pretty(body) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode {what}: {e}"),
        ),
    }
}

/// A plain text response, one line.
pub fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

/// The 404 of every other path, listing the ones there are.
pub fn not_found(paths: &[&str]) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("not found; try {}", paths.join(", ")),
    )
}
