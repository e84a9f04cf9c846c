//! The operational listener: `/healthz`, `/readyz`, `/metrics`. Never on a public port.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use turnpike_gateway::Gateway;
use turnpike_store::Store;

#[derive(Clone)]
pub(crate) struct OpsState {
    pub(crate) store: Store,
    pub(crate) gateway: Option<Gateway>,
}

/// The process-wide Prometheus recorder (installed once, shared by every app in a test binary).
/// Installed before the gateway registers its metric handles.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Buckets from 100 µs (gateway overhead) to 10 s (slow upstreams).
        const BUCKETS: [f64; 16] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        // set_buckets only fails on an empty list.
        let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// How often histogram samples are folded into their buckets (the exporter's own default).
const UPKEEP: Duration = Duration::from_secs(5);

/// Fold histogram samples into their buckets every [`UPKEEP`] until `stop`. The recorder is built
/// by hand (`build_recorder`), so the exporter spawns no upkeep task of its own: without this one
/// every sample recorded between two scrapes is kept, and a gateway nobody scrapes grew by about
/// 40 bytes per request (two histograms per request; found by `scripts/soak.sh`).
pub(crate) async fn upkeep(mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(UPKEEP) => prometheus().run_upkeep(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

pub(crate) fn router(state: OpsState) -> Router {
    let _ = prometheus();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
    let result = match &s.gateway {
        Some(gw) => gw.ready().await,
        None => s.store.ping().await.map(|()| None).map_err(|e| format!("database: {e}")),
    };
    match result {
        Ok(None) => (StatusCode::OK, "ready".to_owned()),
        Ok(Some(degraded)) => (StatusCode::OK, format!("ready, degraded: {degraded} (cached keys are served, unknown keys get 503)")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

async fn metrics_text(State(s): State<OpsState>) -> impl IntoResponse {
    let mut out = prometheus().render();
    if let Some(gw) = &s.gateway {
        let st = gw.stats();
        let lag = turnpike_store::clock::Clock::now(&turnpike_store::clock::SystemClock) - st.last_flush;
        out.push_str(&format!(
            "# TYPE turnpike_key_cache_lookups_total counter\nturnpike_key_cache_lookups_total {}\n\
             # TYPE turnpike_key_cache_hits_total counter\nturnpike_key_cache_hits_total {}\n\
             # TYPE turnpike_refused_without_lookup_total counter\nturnpike_refused_without_lookup_total {}\n\
             # TYPE turnpike_meter_flushes_total counter\nturnpike_meter_flushes_total {}\n\
             # TYPE turnpike_meter_flush_lag_seconds gauge\nturnpike_meter_flush_lag_seconds {}\n\
             # TYPE turnpike_database_up gauge\nturnpike_database_up {}\n",
            st.key_lookups,
            st.key_cache_hits,
            st.refused_without_lookup,
            st.flushes,
            if st.last_flush == 0 { -1 } else { lag },
            u8::from(st.database_up)
        ));
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
