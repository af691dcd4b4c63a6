//! `GET /healthz`: the process serves. Cheap on purpose (a load balancer calls it every few
//! seconds); whether PocketBase and Coolify answer is the monitor's and `cfa status`'s job.

use axum::Json;
use serde_json::{Value, json};

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
