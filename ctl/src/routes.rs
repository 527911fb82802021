//! `tortiectl routes`: the node's kernel routes of ours (protocol 116),
//! wanted or found, and why (the agent's `/routes`).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::table;

/// Fetches `/routes` from the agent at `admin`.
pub fn fetch(admin: SocketAddr) -> Result<Value> {
    let body = crate::http::get(admin, "/routes")?;
    serde_json::from_str(&body).context("tortie-node's /routes is not JSON")
}

/// The table.
pub fn render(routes: &Value) -> String {
    let rows: Vec<Vec<String>> = routes
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    ["route", "state", "why"]
                        .iter()
                        .map(|k| r[*k].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    table::render(&["ROUTE (proto 116)", "STATE", "WHY"], &rows)
}
