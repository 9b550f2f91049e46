//! HTTP: the InfluxDB 1.x / 2.x write API that agents speak, and what people read —
//! `/flamegraph/<app>.svg|.folded|.json`, `/apps`, `/metrics`, and an HTML index at `/`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::ingest::{Ingest, Precision, WriteOutcome};
use crate::render::{self, Format, Titles};
use crate::server::udp::{self, now_ms};
use crate::store::Query as StoreQuery;

/// What `X-Influxdb-Version` says: the InfluxDB API level stackd speaks, and stackd's version.
pub const INFLUX_VERSION: &str = concat!("1.8.10-stackd-", env!("CARGO_PKG_VERSION"));

/// Shared by all handlers.
#[derive(Debug)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    pub max_body_size: usize,
    pub gauge_ttl_ms: i64,
    /// Port of the statsd socket, for the kernel-drop gauge.
    pub statsd_port: Option<u16>,
    pub udp_recv_buffer: usize,
    /// Databases named by `CREATE DATABASE` (writes need none of them to exist).
    databases: Mutex<BTreeSet<String>>,
    /// With `--sync-writes`: writes are answered once durable.
    pub flusher: Option<crate::Flusher>,
    /// The store's file, for its size on /metrics.
    pub store_file: Option<std::path::PathBuf>,
    pub limits: HttpLimits,
    /// Flame graphs being rendered; a request waits for a permit.
    renders: Arc<tokio::sync::Semaphore>,
    /// Renders in progress, shared by identical requests.
    shared_renders: Mutex<std::collections::HashMap<RenderKey, SharedRender>>,
    pub auth: super::auth::Auth,
}

/// Per-request limits of the HTTP handlers.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// How long a body may take to arrive, and a render may wait for a slot.
    pub request_timeout: std::time::Duration,
    pub max_concurrent_renders: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { request_timeout: std::time::Duration::from_secs(60), max_concurrent_renders: default_renders() }
    }
}

/// One render per CPU.
pub fn default_renders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl AppState {
    pub fn new(ingest: Arc<Ingest>, max_body_size: usize, gauge_ttl_ms: i64, statsd_port: Option<u16>, udp_recv_buffer: usize) -> Self {
        AppState {
            ingest,
            max_body_size,
            gauge_ttl_ms,
            statsd_port,
            udp_recv_buffer,
            databases: Mutex::default(),
            flusher: None,
            store_file: None,
            limits: HttpLimits::default(),
            renders: Arc::new(tokio::sync::Semaphore::new(default_renders())),
            shared_renders: Mutex::default(),
            auth: super::auth::Auth::default(),
        }
    }

    /// Set the per-request limits (and size the render slots by them).
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.renders = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_renders.max(1)));
        self.limits = limits;
        self
    }
}

/// The router, with request counting and InfluxDB's version headers on every response.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/apps", get(apps))
        .route("/apps/{app}", get(app_info))
        .route("/flamegraph/{file}", get(flamegraph))
        .route("/metrics", get(metrics))
        .route("/write", post(write_v1).options(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v2/write", post(write_v2))
        .route("/ping", get(ping).head(ping))
        .route("/health", get(|| async { Json(serde_json::json!({"name": "stackd", "status": "pass"})) }))
        .route("/query", get(query).post(query))
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
    state.ingest.metrics.http_requests.with_label_values(&[path.as_str(), response.status().as_str()]).inc();
    response
}

async fn influx_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("X-Influxdb-Version", HeaderValue::from_static(INFLUX_VERSION));
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    response
}

async fn not_found(State(state): State<Arc<AppState>>) -> HttpError {
    state.ingest.metrics.http_requests.with_label_values(&["unmatched", "404"]).inc();
    HttpError::Plain(StatusCode::NOT_FOUND, "not found; see / for what stackd serves".into())
}

/// Every error response stackd sends.
#[derive(Debug)]
pub enum HttpError {
    /// InfluxDB 1.x: `{"error": "..."}` and `X-Influxdb-Error`.
    V1(StatusCode, String),
    /// InfluxDB 2.x: `{"code": "...", "message": "..."}` and `X-Platform-Error-Code`.
    V2(StatusCode, &'static str, String),
    Plain(StatusCode, String),
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
        }
    }
}

async fn ping(Query(params): Query<BTreeMap<String, String>>) -> Response {
    match params.get("verbose").map(String::as_str) {
        Some(v) if !v.is_empty() && v != "0" && v != "false" => Json(serde_json::json!({ "version": INFLUX_VERSION })).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    BadGzip(String),
    /// A `Content-Encoding` other than identity and gzip: 415.
    Unsupported(String),
    /// The body did not arrive within `--http-request-timeout`: 408.
    TimedOut,
    Read(String),
}

impl BodyError {
    /// Bounded label value of `stackd_requests_rejected_total{reason}`.
    fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge => "too_large",
            BodyError::BadGzip(_) => "bad_gzip",
            BodyError::Unsupported(_) => "unsupported_encoding",
            BodyError::TimedOut => "body_timeout",
            BodyError::Read(_) => "body_read_error",
        }
    }

    /// The response, in the write API's own error shape (`v2` for `/api/v2/write`).
    fn into_http(self, state: &AppState, v2: bool) -> HttpError {
        state.ingest.metrics.requests_rejected.with_label_values(&[self.reason()]).inc();
        let (status, code, message) = match self {
            BodyError::TooLarge => {
                state.ingest.metrics.limit_hits.with_label_values(&["body"]).inc();
                let message = if v2 { format!("body exceeds {} bytes", state.max_body_size) } else { "Request Entity Too Large".into() };
                (StatusCode::PAYLOAD_TOO_LARGE, "request too large", message)
            }
            BodyError::BadGzip(m) => (StatusCode::BAD_REQUEST, "invalid", m),
            BodyError::Unsupported(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type", m),
            BodyError::TimedOut => {
                (StatusCode::REQUEST_TIMEOUT, "request timeout", "the request body did not arrive in time (--http-request-timeout)".into())
            }
            BodyError::Read(m) => (StatusCode::BAD_REQUEST, "invalid", format!("cannot read body: {m}")),
        };
        if v2 {
            HttpError::V2(status, code, message)
        } else {
            HttpError::V1(status, message)
        }
    }
}

/// Read a request body within `limit` bytes and `timeout`, gunzipping it when
/// `Content-Encoding` says so (the limit applies after decompression too). Other encodings are
/// refused rather than read as text.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize, timeout: std::time::Duration) -> Result<Bytes, BodyError> {
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(BodyError::Unsupported(format!(
                "unsupported Content-Encoding {:?}: send the body as it is or gzip-compressed",
                crate::ingest::truncated(other, 64)
            )))
        }
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let raw = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| BodyError::TimedOut)?.map_err(|e| {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge;
            }
            source = s.source();
        }
        BodyError::Read(e.to_string())
    })?;
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out.into())
}

async fn write_v1(
    State(state): State<Arc<AppState>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let bad = |msg: String| HttpError::V1(StatusCode::BAD_REQUEST, msg);
    if params.get("db").is_none_or(|d| d.is_empty()) {
        return Err(bad("database is required".into()));
    }
    let precision_text = params.get("precision").map_or("", String::as_str);
    let precision = Precision::from_v1(precision_text)
        .ok_or_else(|| bad(format!("invalid precision {precision_text:?} (use n, ns, u, us, ms, s, m or h)")))?;
    if let Some(c) = params.get("consistency") {
        if !matches!(c.as_str(), "" | "any" | "one" | "quorum" | "all") {
            return Err(bad(format!("invalid consistency {c:?} (use any, one, quorum or all)")));
        }
    }
    let body =
        read_body(&headers, body, state.max_body_size, state.limits.request_timeout).await.map_err(|e| e.into_http(&state, false))?;
    let ingest = Arc::clone(&state.ingest);
    let outcome = ingest_off_thread(ingest, body, precision).await;
    durable(&state, &outcome).await.map_err(|e| HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    match outcome {
        WriteOutcome { rejected: 0, .. } => Ok(StatusCode::NO_CONTENT),
        WriteOutcome { written: 0, errors, rejected, .. } => Err(bad(error_list(&errors, rejected))),
        WriteOutcome { errors, rejected, .. } => Err(bad(format!("partial write: {} dropped=0", error_list(&errors, rejected)))),
    }
}

/// With `--sync-writes`, wait until what was written is on disk.
async fn durable(state: &AppState, outcome: &WriteOutcome) -> Result<(), String> {
    match &state.flusher {
        Some(f) if outcome.written > 0 => f.sync().await.map_err(|e| format!("written but not durable: {e}")),
        _ => Ok(()),
    }
}

/// The rejection messages, one per line, with a count of those not shown.
fn error_list(errors: &[String], rejected: usize) -> String {
    let mut text = errors.join("\n");
    if rejected > errors.len() {
        text.push_str(&format!("\n… and {} more lines rejected", rejected - errors.len()));
    }
    text
}

/// Parse and store a body on the blocking pool: a 25 MB body takes a while.
async fn ingest_off_thread(ingest: Arc<Ingest>, body: Bytes, precision: Precision) -> WriteOutcome {
    let now = now_ms();
    if body.len() < 64 * 1024 {
        return ingest.influx_body(&body, precision, now);
    }
    tokio::task::spawn_blocking(move || ingest.influx_body(&body, precision, now)).await.unwrap_or_else(|e| WriteOutcome {
        written: 0,
        rejected: 1,
        errors: vec![format!("internal error: {e}")],
    })
}

async fn write_v2(
    State(state): State<Arc<AppState>>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, HttpError> {
    if params.get("bucket").is_none_or(|b| b.is_empty()) {
        return Err(HttpError::V2(StatusCode::NOT_FOUND, "not found", "bucket not found".into()));
    }
    let precision = Precision::from_v2(params.get("precision").map_or("", String::as_str)).ok_or_else(|| {
        HttpError::V2(StatusCode::BAD_REQUEST, "invalid", "invalid precision; valid precision units are ns, us, ms, and s".into())
    })?;
    let body = read_body(&headers, body, state.max_body_size, state.limits.request_timeout).await.map_err(|e| e.into_http(&state, true))?;
    let outcome = ingest_off_thread(Arc::clone(&state.ingest), body, precision).await;
    durable(&state, &outcome).await.map_err(|e| HttpError::V2(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e))?;
    if outcome.rejected == 0 {
        return Ok(StatusCode::NO_CONTENT);
    }
    // Unlike InfluxDB 2.x, the good lines of the batch are kept; the message says so.
    Err(HttpError::V2(
        StatusCode::BAD_REQUEST,
        "invalid",
        format!("{} lines written, {} rejected: {}", outcome.written, outcome.rejected, error_list(&outcome.errors, outcome.rejected)),
    ))
}

/// The few InfluxQL statements wrapper scripts send before writing.
async fn query(
    State(state): State<Arc<AppState>>,
    method: Method,
    Query(params): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut q = params.get("q").cloned();
    if q.is_none() && method == Method::POST {
        q = serde_urlencoded::from_bytes::<BTreeMap<String, String>>(&body).ok().and_then(|f| f.get("q").cloned());
    }
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return HttpError::V1(StatusCode::BAD_REQUEST, "missing required parameter \"q\"".into()).into_response();
    };
    let results: Vec<serde_json::Value> = q
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, stmt)| {
            let mut result = state.statement(stmt);
            result["statement_id"] = i.into();
            result
        })
        .collect();
    Json(serde_json::json!({ "results": results })).into_response()
}

impl AppState {
    fn statement(&self, stmt: &str) -> serde_json::Value {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        let upper: Vec<String> = words.iter().take(3).map(|w| w.to_ascii_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        let mut dbs = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        match upper.as_slice() {
            ["CREATE", "DATABASE", ..] if words.len() >= 3 => {
                dbs.insert(unquote_ident(words[2]));
                serde_json::json!({})
            }
            ["DROP", "DATABASE", ..] if words.len() >= 3 => {
                dbs.remove(&unquote_ident(words[2]));
                serde_json::json!({})
            }
            ["CREATE", "USER", ..] | ["DROP", "USER", ..] | ["GRANT", ..] | ["CREATE", "RETENTION", ..] => serde_json::json!({}),
            ["SHOW", "DATABASES", ..] => {
                let values: Vec<[&str; 1]> = dbs.iter().map(|d| [d.as_str()]).collect();
                serde_json::json!({ "series": [{ "name": "databases", "columns": ["name"], "values": values }] })
            }
            _ => {
                serde_json::json!({ "error": format!("stackd does not run queries: {}; read profiles at /flamegraph/<app>.svg", truncate(stmt, 100)) })
            }
        }
    }
}

/// `"profiler"` or `profiler` → `profiler`.
fn unquote_ident(word: &str) -> String {
    word.trim_matches('"').to_string()
}

fn truncate(s: &str, max: usize) -> String {
    let cut = crate::ingest::truncated(s, max);
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let cutoff = now_ms() - state.gauge_ttl_ms;
    let mut body = state.ingest.metrics.render(&state.ingest.store, cutoff);
    // Socket figures that only the kernel knows.
    body.extend_from_slice(
        format!(
            "# HELP stackd_udp_receive_buffer_bytes Kernel receive buffer of the statsd socket (SO_RCVBUF as granted).\n# TYPE stackd_udp_receive_buffer_bytes gauge\nstackd_udp_receive_buffer_bytes {}\n",
            state.udp_recv_buffer
        )
        .as_bytes(),
    );
    if let Some(size) = state.store_file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len()) {
        body.extend_from_slice(
            format!("# HELP stackd_store_bytes Size of the embedded store's file.\n# TYPE stackd_store_bytes gauge\nstackd_store_bytes {size}\n").as_bytes(),
        );
    }
    if let Some(drops) = state.statsd_port.and_then(udp::kernel_drops) {
        body.extend_from_slice(
            format!("# HELP stackd_udp_kernel_drops_total Datagrams the kernel dropped because the statsd socket's receive buffer was full.\n# TYPE stackd_udp_kernel_drops_total counter\nstackd_udp_kernel_drops_total {drops}\n").as_bytes(),
        );
    }
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn apps(State(state): State<Arc<AppState>>) -> Json<Vec<crate::store::AppInfo>> {
    Json(state.ingest.store.apps().iter().map(|a| a.info()).collect())
}

/// A point in time in a query: `now`, `-15m` or `now-15m` (relative), RFC 3339
/// (`2026-11-21T10:00:00Z`), or Unix seconds (10 digits or fewer) or milliseconds (more).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Some(rel) = t.strip_prefix("now-").or_else(|| t.strip_prefix('-')) {
        let d = humantime::parse_duration(rel).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| format!("{text:?}: number out of range"))?;
        return Ok(if t.len() <= 10 { n.saturating_mul(1000) } else { n });
    }
    let at = humantime::parse_rfc3339_weak(t)
        .map_err(|_| format!("{text:?} is not a time: use now, -15m, now-1h, 2026-11-21T10:00:00Z, or Unix seconds or milliseconds"))?;
    let since = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `/flamegraph/<app>.svg|.folded|.json?from=…&to=…&<label>=<value>…`.
async fn flamegraph(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, HttpError> {
    let (name, format) = Format::from_file_name(&file)
        .ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("{file:?}: ask for <app>.svg, <app>.folded or <app>.json")))?;
    let store = Arc::clone(&state.ingest.store);
    let app = store.app(name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    let now = now_ms();
    let bad = |m: String| HttpError::Plain(StatusCode::BAD_REQUEST, m);
    let mut title = None;
    let mut query = StoreQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "from" => query.from_ms = Some(parse_time(&v, now).map_err(bad)?),
            "to" => query.to_ms = Some(parse_time(&v, now).map_err(bad)?),
            "title" => title = Some(v),
            _ => query.labels.push((k.strip_prefix("label.").map_or(k.clone(), str::to_string), v)),
        }
    }
    if let (Some(f), Some(t)) = (query.from_ms, query.to_ms) {
        if f >= t {
            return Err(bad(format!("from ({}) must be before to ({})", rfc3339(f), rfc3339(t))));
        }
    }
    // Identical requests while the app's data is unchanged share one render.
    let key = RenderKey {
        app: app.name.to_string(),
        format: format.label(),
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        labels: query.labels.clone(),
        title: title.clone(),
        samples: app.total_samples(),
        stacks: app.unique_stacks(),
    };
    let cell = {
        let mut renders = state.shared_renders.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(renders.entry(key.clone()).or_default())
    };
    let result = cell.get_or_init(|| render_once(Arc::clone(&state), app, query, format, title)).await.clone();
    {
        let mut renders = state.shared_renders.lock().unwrap_or_else(|e| e.into_inner());
        if renders.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            renders.remove(&key);
        }
    }
    let rendered = result.map_err(|(status, message)| HttpError::Plain(status, message))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], rendered).into_response())
}

/// What identifies a rendering: the request, and the app's data as it was.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenderKey {
    app: String,
    format: &'static str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    labels: Vec<(String, String)>,
    title: Option<String>,
    samples: u64,
    stacks: usize,
}

/// A render shared by the requests that asked for it while it ran.
type SharedRender = Arc<tokio::sync::OnceCell<Result<Bytes, (StatusCode, String)>>>;

/// Query and render one flame graph, waiting (bounded) for a render slot.
async fn render_once(
    state: Arc<AppState>,
    app: Arc<crate::store::App>,
    query: StoreQuery,
    format: Format,
    title: Option<String>,
) -> Result<Bytes, (StatusCode, String)> {
    let store = Arc::clone(&state.ingest.store);
    let metrics = state.ingest.metrics.clone();
    // Renders of large apps take much memory: only so many at once, the others wait (bounded).
    let permit = tokio::time::timeout(state.limits.request_timeout, Arc::clone(&state.renders).acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            metrics.limit_hits.with_label_values(&["renders"]).inc();
            metrics.requests_rejected.with_label_values(&["render_busy"]).inc();
            (StatusCode::SERVICE_UNAVAILABLE, "too many flame graphs being rendered; retry later (--max-concurrent-renders)".to_string())
        })?;
    tokio::task::spawn_blocking(move || -> Result<Bytes, (StatusCode, String)> {
        let _permit = permit;
        let started = Instant::now();
        let profile = store.query(&app, &query).ok_or_else(|| {
            let known: Vec<String> =
                app.label_values().into_iter().map(|(k, v)| format!("{k}={}", v.into_keys().collect::<Vec<_>>().join("|"))).collect();
            (StatusCode::NOT_FOUND, format!("no data for app {:?} with these labels; labels seen: {}", app.name, known.join(", ")))
        })?;
        let range = format!(
            "{} to {}",
            query.from_ms.map_or_else(|| "the beginning".to_string(), rfc3339),
            query.to_ms.map_or_else(|| "now".to_string(), rfc3339)
        );
        if profile.total == 0 {
            return Err((StatusCode::NOT_FOUND, format!("app {:?} has no stack samples from {range}", app.name)));
        }
        let stacks = store.resolve(&profile);
        let bytes = match format {
            Format::Folded => render::folded(&stacks).into_bytes(),
            Format::Json => render::json(&stacks).into_bytes(),
            Format::Svg => {
                let titles = Titles {
                    title: title.unwrap_or_else(|| app.name.to_string()),
                    subtitle: Some(format!("{range}: {} samples, {} stacks", profile.total, profile.stacks.len())),
                };
                render::svg(&stacks, &titles).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering failed: {e}")))?
            }
        };
        metrics.render_seconds.with_label_values(&[format.label()]).observe(started.elapsed().as_secs_f64());
        Ok(Bytes::from(bytes))
    })
    .await
    .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, format!("render task failed: {e}"))))
}

/// `GET /apps/<app>`: one app's summary, with each label's values.
async fn app_info(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<crate::store::AppInfo>, HttpError> {
    let app = state
        .ingest
        .store
        .app(&name)
        .ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    Ok(Json(app.info()))
}

/// A plain HTML index: apps with links to their flame graphs.
async fn index(State(state): State<Arc<AppState>>) -> Html<String> {
    let mut rows = String::new();
    for app in state.ingest.store.apps() {
        let info = app.info();
        let link = percent_encode(&info.name);
        let name = html_escape(&info.name);
        rows.push_str(&format!(
            "<tr><td>{name}</td><td><a href=\"/flamegraph/{link}.svg\">svg</a> <a href=\"/flamegraph/{link}.folded\">folded</a> <a href=\"/flamegraph/{link}.json\">json</a></td><td>{}</td><td>{}</td></tr>\n",
            info.total_samples, info.unique_stacks
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=4>No profiles yet: point statsd-jvm-profiler agents at this host.</td></tr>\n");
    }
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=utf-8><title>stackd</title></head><body>\n<h1>stackd</h1>\n<table>\n<tr><th>app</th><th>flame graph</th><th>samples</th><th>stacks</th></tr>\n{rows}</table>\n<p><a href=\"/apps\">/apps</a> (JSON) · <a href=\"/metrics\">/metrics</a></p>\n</body></html>\n"
    ))
}

/// Text for HTML: markup escaped, and characters that would change how the page reads (bidi
/// overrides and isolates, controls, non-characters) shown as `<U+202E>` instead of acting.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("&lt;U+{:04X}&gt;", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("&lt;U+{:04X}&gt;", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
