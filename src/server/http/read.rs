//! What people read: flame graphs (`/flamegraph/<app>.svg|.folded|.json`, rendered off the
//! async threads, identical requests sharing one render), `/apps`, `/metrics`, the HTML index.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::{AppState, HttpError};
use crate::metrics::HostFigures;
use crate::now_ms;
use crate::outcome::{Limit, RequestReject};
use crate::render::{self, Format, Titles};
use crate::server::udp;
use crate::store::Query as StoreQuery;

/// `GET /metrics`: stackd's own metrics, per-app totals and the JVM gauges of live executors.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let cutoff = now_ms().saturating_sub(i64::try_from(state.settings.limits.gauge_ttl.as_millis()).unwrap_or(i64::MAX));
    let host = HostFigures {
        udp_recv_buffer: state.settings.statsd.map(|s| s.recv_buffer),
        store_bytes: state.settings.store_file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len()),
        udp_kernel_drops: state.settings.statsd.and_then(|s| udp::kernel_drops(s.port)),
    };
    let body = state.metrics.render(&state.store, cutoff, &host);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// `GET /apps`: every app's summary.
pub async fn apps(State(state): State<Arc<AppState>>) -> Json<Vec<crate::store::AppInfo>> {
    Json(state.store.apps().iter().map(|a| a.info()).collect())
}

/// `GET /flink`: each `--flink-rest` JobManager's polling status.
pub async fn flink(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "endpoints": state.settings.flink.snapshot() }))
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
pub async fn flamegraph(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, HttpError> {
    let (name, format) = Format::from_file_name(&file)
        .ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("{file:?}: ask for <app>.svg, <app>.folded or <app>.json")))?;
    let app =
        state.store.app(name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
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
    // Identical requests while the app's data is unchanged share one render, and its result.
    let key = RenderKey {
        app: app.name.to_string(),
        format: format.label(),
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        labels: query.labels.clone(),
        title: title.clone(),
        generation: app.generation(),
    };
    let etag = key.etag();
    let answer = |status: StatusCode, body: Bytes| {
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
            (header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""))),
            // Revalidated each time: cheap (a 304 or a cached body) and never stale.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        (status, headers, body).into_response()
    };
    if if_none_match(&headers, &etag) {
        state.metrics.render_cache.with_label_values(&["not_modified"]).inc();
        return Ok(answer(StatusCode::NOT_MODIFIED, Bytes::new()));
    }
    if let Some(body) = state.render_cache.get(&key) {
        state.metrics.render_cache.with_label_values(&["hit"]).inc();
        return Ok(answer(StatusCode::OK, body));
    }
    state.metrics.render_cache.with_label_values(&["miss"]).inc();
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
    state.render_cache.insert(key, rendered.clone());
    Ok(answer(StatusCode::OK, rendered))
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn if_none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

/// What identifies a rendering: the request, and the app's data as it was. Outputs are
/// deterministic, so equal keys mean equal bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenderKey {
    app: String,
    format: &'static str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    labels: Vec<(String, String)>,
    title: Option<String>,
    generation: (u64, u64),
}

impl RenderKey {
    /// The `ETag` of the rendering: a hash of the key and of when this process started (a
    /// generation restarts with the process, so tags of an earlier run never match).
    fn etag(&self) -> String {
        static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();
        let started = STARTED.get_or_init(std::time::SystemTime::now);
        format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(format!("{self:?}{started:?}").as_bytes()))
    }

    fn size(&self) -> usize {
        self.app.len() + self.labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + self.title.as_ref().map_or(0, String::len) + 64
    }
}

/// Renderings kept for repeated requests, bounded in bytes (`--render-cache-size`), the oldest
/// dropped first. An entry whose app has changed since is never asked for again (its key holds
/// the old generation) and ages out.
#[derive(Debug, Default)]
pub struct RenderCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: std::collections::HashMap<RenderKey, Bytes>,
    order: std::collections::VecDeque<RenderKey>,
    bytes: usize,
}

impl RenderCache {
    pub fn new(capacity: usize) -> Self {
        RenderCache { inner: Mutex::default(), capacity }
    }

    fn get(&self, key: &RenderKey) -> Option<Bytes> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).entries.get(key).cloned()
    }

    fn insert(&self, key: RenderKey, body: Bytes) {
        let size = body.len() + key.size();
        if size > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.entries.contains_key(&key) {
            return;
        }
        while inner.bytes + size > self.capacity {
            let Some(old) = inner.order.pop_front() else { break };
            if let Some(b) = inner.entries.remove(&old) {
                inner.bytes -= b.len() + old.size();
            }
        }
        inner.bytes += size;
        inner.order.push_back(key.clone());
        inner.entries.insert(key, body);
    }
}

/// A render shared by the requests that asked for it while it ran.
pub type SharedRender = Arc<tokio::sync::OnceCell<Result<Bytes, (StatusCode, String)>>>;

/// Query and render one flame graph, waiting (bounded) for a render slot.
async fn render_once(
    state: Arc<AppState>,
    app: Arc<crate::store::App>,
    query: StoreQuery,
    format: Format,
    title: Option<String>,
) -> Result<Bytes, (StatusCode, String)> {
    let store = Arc::clone(&state.store);
    let metrics = state.metrics.clone();
    // Renders of large apps take much memory: only so many at once, the others wait (bounded).
    let permit = tokio::time::timeout(state.settings.limits.request_timeout, Arc::clone(&state.renders).acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            metrics.limit_hit(Limit::Renders);
            metrics.request_rejected(RequestReject::RenderBusy);
            (StatusCode::SERVICE_UNAVAILABLE, "too many flame graphs being rendered; retry later (--max-concurrent-renders)".to_string())
        })?;
    tokio::task::spawn_blocking(move || -> Result<Bytes, (StatusCode, String)> {
        let _permit = permit;
        let started = Instant::now();
        let profile = store.query(&app, &query).map_err(|e| {
            metrics.request_rejected(RequestReject::StoreUnreadable);
            tracing::error!(app = %app.name, error = %e, "a profile could not be read from the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the stored profile of app {:?} cannot be read ({e}); no partial profile is served", app.name),
            )
        })?;
        let profile = profile.ok_or_else(|| {
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
pub async fn app_info(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<crate::store::AppInfo>, HttpError> {
    let app =
        state.store.app(&name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    Ok(Json(app.info()))
}

/// A plain HTML index: apps with links to their flame graphs.
pub async fn index(State(state): State<Arc<AppState>>) -> Html<String> {
    let mut rows = String::new();
    for app in state.store.apps() {
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
        "<!doctype html>\n<html><head><meta charset=utf-8><title>stackd</title></head><body>\n<h1>stackd</h1>\n<table>\n<tr><th>app</th><th>flame graph</th><th>samples</th><th>stacks</th></tr>\n{rows}</table>\n<p><a href=\"/apps\">/apps</a> (JSON) · <a href=\"/flink\">/flink</a> (Flink pollers) · <a href=\"/metrics\">/metrics</a></p>\n</body></html>\n"
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
