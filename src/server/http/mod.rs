//! HTTP: the InfluxDB 1.x / 2.x write API that agents speak ([`write`]), what programs read
//! ([`read`]: `/flamegraph/<app>.svg|.folded|.json`, `/apps`, `/metrics`), what people browse
//! ([`ui`]: the index at `/`, `/app/<app>`, `/apps/<app>/timeline`), and imports ([`import`]).

pub mod import;
pub mod pyroscope;
pub mod read;
pub mod ui;
pub mod write;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Auth;
use super::flush::Flusher;
use crate::config::Config;
use crate::input::Inputs;
use crate::metrics::Metrics;
use crate::store::Store;

/// What `X-Influxdb-Version` says: the InfluxDB API level stackd speaks, and stackd's version.
pub const INFLUX_VERSION: &str = concat!("1.8.10-stackd-", env!("CARGO_PKG_VERSION"));

/// Shared by all handlers: built complete by [`AppState::new`].
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<Store>,
    pub metrics: Metrics,
    pub inputs: Arc<Inputs>,
    pub settings: Settings,
    /// Databases named by `CREATE DATABASE` (writes need none of them to exist).
    databases: Mutex<BTreeSet<String>>,
    /// Flame graphs being rendered; a request waits for a permit.
    renders: Arc<tokio::sync::Semaphore>,
    /// Imports being read, parsed and stored; a request waits for a permit.
    imports: Arc<tokio::sync::Semaphore>,
    /// Renders in progress, shared by identical requests.
    shared_renders: Mutex<std::collections::HashMap<read::RenderKey, read::SharedRender>>,
    /// Finished renders, for repeated requests.
    render_cache: read::RenderCache,
}

/// How the HTTP side is set up.
#[derive(Debug)]
pub struct Settings {
    pub limits: HttpLimits,
    /// The statsd socket, for its figures on /metrics.
    pub statsd: Option<StatsdSocket>,
    /// The store's file, for its size on /metrics.
    pub store_file: Option<std::path::PathBuf>,
    /// With `--sync-writes`: writes are answered once durable.
    pub flusher: Option<Flusher>,
    pub auth: Auth,
    /// The Flink pollers (`--flink-rest`), for `GET /flink`.
    pub flink: crate::input::flink::poller::Status,
    /// With `--object-store`: how sharing stands, for `GET /health`.
    pub cluster: Option<Arc<crate::cluster::Status>>,
}

/// The statsd socket as /metrics reports it.
#[derive(Clone, Copy, Debug)]
pub struct StatsdSocket {
    pub port: u16,
    /// SO_RCVBUF as granted.
    pub recv_buffer: usize,
}

/// Per-request limits of the HTTP handlers.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_body_size: usize,
    /// How long a body may take to arrive, and a render may wait for a slot.
    pub request_timeout: std::time::Duration,
    pub max_concurrent_renders: usize,
    pub max_concurrent_imports: usize,
    /// Frames drawn at most in one flame graph.
    pub max_render_frames: usize,
    /// Bytes of the largest JFR chunk read.
    pub max_jfr_chunk_size: usize,
    /// Gauges not updated for this long are left out of /metrics.
    pub gauge_ttl: std::time::Duration,
    /// Bytes of finished renders kept for repeated requests.
    pub render_cache_size: usize,
}

impl HttpLimits {
    pub fn from_config(config: &Config) -> Self {
        HttpLimits {
            max_body_size: config.max_body_size,
            request_timeout: config.http_request_timeout,
            max_concurrent_renders: config.max_concurrent_renders.unwrap_or_else(default_renders),
            max_concurrent_imports: config.max_concurrent_imports.unwrap_or_else(default_renders),
            max_render_frames: config.max_render_frames,
            max_jfr_chunk_size: config.max_jfr_chunk_size,
            gauge_ttl: config.gauge_ttl,
            render_cache_size: config.render_cache_size,
        }
    }
}

/// One render per CPU.
pub fn default_renders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl AppState {
    pub fn new(inputs: Arc<Inputs>, settings: Settings) -> Self {
        AppState {
            store: Arc::clone(&inputs.ingest.store),
            metrics: inputs.ingest.metrics.clone(),
            inputs,
            renders: Arc::new(tokio::sync::Semaphore::new(settings.limits.max_concurrent_renders.max(1))),
            imports: Arc::new(tokio::sync::Semaphore::new(settings.limits.max_concurrent_imports.max(1))),
            render_cache: read::RenderCache::new(settings.limits.render_cache_size),
            settings,
            databases: Mutex::default(),
            shared_renders: Mutex::default(),
        }
    }
}

/// `{"name": "stackd", "status": "pass"}`; with `--object-store`, how sharing stands too, and
/// `warn` while the object store cannot be reached (this node still ingests and answers).
async fn health(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut body = serde_json::json!({"name": "stackd", "status": "pass"});
    if let Some(cluster) = &state.settings.cluster {
        let (ok, member) = cluster.health();
        body["object_store"] = member;
        if !ok {
            body["status"] = "warn".into();
        }
    }
    Json(body)
}

/// The router, with request counting and InfluxDB's version headers on every response.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        // What people read.
        .route("/", get(ui::index))
        .route("/app/{app}", get(ui::app_page))
        .route("/ui/{file}", get(ui::asset))
        .route("/setup", get(ui::setup))
        .route("/apps", get(read::apps))
        .route("/apps/{app}", get(read::app_info))
        .route("/apps/{app}/timeline", get(ui::timeline))
        .route("/flamegraph/{file}", get(read::flamegraph))
        .route("/metrics", get(read::metrics))
        .route("/flink", get(read::flink))
        .route("/health", get(health))
        // The InfluxDB-compatible write API agents speak.
        .route("/write", post(write::write_v1).options(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v2/write", post(write::write_v2))
        .route("/ping", get(write::ping).head(write::ping))
        .route("/query", get(write::query).post(write::query))
        // Profiles people already have.
        .route("/import/flink", post(import::flink))
        .route("/import/folded", post(import::folded))
        .route("/import/async-profiler-html", post(import::ap_html))
        .route("/import/jfr", post(import::jfr))
        // Grafana Pyroscope's clients.
        .route("/ingest", post(pyroscope::ingest))
        .route("/pyroscope/ingest", post(pyroscope::ingest))
        .route(pyroscope::PUSH_PATH, post(pyroscope::push))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), count_requests))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), super::auth::check))
        // Bodies are read with our own limit, so that the 413 has InfluxDB's shape.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(influx_headers))
        .with_state(state)
}

async fn count_requests(State(state): State<Arc<AppState>>, path: MatchedPath, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    state.metrics.http_requests.with_label_values(&[path.as_str(), response.status().as_str()]).inc();
    response
}

async fn influx_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("X-Influxdb-Version", HeaderValue::from_static(INFLUX_VERSION));
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    response
}

/// Unknown paths: a page for a browser (it asks for HTML), plain text for everything else.
async fn not_found(State(state): State<Arc<AppState>>, uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    state.metrics.http_requests.with_label_values(&["unmatched", "404"]).inc();
    let browser = headers.get(axum::http::header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if browser {
        return ui::not_found_page(&state, &format!("Nothing at {}", uri.path()), None);
    }
    HttpError::Plain(StatusCode::NOT_FOUND, "not found; see / for what stackd serves".into()).into_response()
}

/// Every error response stackd sends.
#[derive(Debug)]
pub enum HttpError {
    /// InfluxDB 1.x: `{"error": "..."}` and `X-Influxdb-Error`.
    V1(StatusCode, String),
    /// InfluxDB 2.x: `{"code": "...", "message": "..."}` and `X-Platform-Error-Code`.
    V2(StatusCode, &'static str, String),
    Plain(StatusCode, String),
    /// Pyroscope and connect-RPC: `{"code": "<connect code>", "message": "..."}`.
    Connect(StatusCode, &'static str, String),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            HttpError::V1(status, msg) => {
                let mut r = (status, Json(serde_json::json!({ "error": msg }))).into_response();
                // Header values must be visible ASCII; the JSON body keeps the exact text.
                let short: String = msg.chars().take(1024).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
                if let Ok(v) = HeaderValue::from_str(&short) {
                    r.headers_mut().insert("X-Influxdb-Error", v);
                }
                r
            }
            HttpError::V2(status, code, msg) => {
                let mut r = (status, Json(serde_json::json!({ "code": code, "message": msg }))).into_response();
                r.headers_mut().insert("X-Platform-Error-Code", HeaderValue::from_static(code));
                r
            }
            HttpError::Plain(status, msg) => (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg + "\n").into_response(),
            HttpError::Connect(status, code, msg) => (status, Json(serde_json::json!({ "code": code, "message": msg }))).into_response(),
        }
    }
}
