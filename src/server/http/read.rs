//! What people read: flame graphs (`/flamegraph/<app>.svg|.folded|.json`, rendered off the
//! async threads, identical requests sharing one render, differential with `base.*`), `/apps`,
//! `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AppState, HttpError};
use crate::metrics::HostFigures;
use crate::now_ms;
use crate::outcome::{Limit, RequestReject};
use crate::render::{self, Format, Titles};
use crate::sample::ProfileType;
use crate::server::udp;
use crate::store::{Matcher, Query as StoreQuery};

/// `GET /metrics`: stackd's own metrics, per-app totals and the JVM gauges of live executors;
/// `?app=<app>` keeps only that app's series (and the `# HELP`/`# TYPE` lines of their
/// families).
pub async fn metrics(State(state): State<Arc<AppState>>, Query(params): Query<Vec<(String, String)>>) -> Response {
    let cutoff = now_ms().saturating_sub(i64::try_from(state.settings.limits.gauge_ttl.as_millis()).unwrap_or(i64::MAX));
    let host = HostFigures {
        udp_recv_buffer: state.settings.statsd.map(|s| s.recv_buffer),
        store_bytes: state.settings.store_file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len()),
        udp_kernel_drops: state.settings.statsd.and_then(|s| udp::kernel_drops(s.port)),
    };
    let body = state.metrics.render(&state.store, cutoff, &host);
    let body = match params.iter().find(|(k, _)| k == "app") {
        Some((_, app)) => only_app(&String::from_utf8_lossy(&body), app).into_bytes(),
        None => body,
    };
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// The series of Prometheus text `body` labelled `app="<app>"`, each family's comment lines
/// kept before its first such series.
pub fn only_app(body: &str, app: &str) -> String {
    let escaped = app.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let label = format!("app=\"{escaped}\"");
    let mut out = String::new();
    let mut comments = String::new();
    for line in body.lines() {
        if line.starts_with('#') {
            if line.starts_with("# HELP ") {
                comments.clear();
            }
            comments.push_str(line);
            comments.push('\n');
            continue;
        }
        let labels = match (line.find('{'), line.rfind('}')) {
            (Some(a), Some(b)) if a < b => &line[a..=b],
            _ => continue,
        };
        let holds = labels.match_indices(&label).any(|(i, _)| {
            let before = labels.as_bytes()[i - 1];
            let after = labels.as_bytes().get(i + label.len()).copied();
            (before == b'{' || before == b',') && matches!(after, Some(b',') | Some(b'}'))
        });
        if holds {
            out.push_str(&comments);
            comments.clear();
            out.push_str(line);
            out.push('\n');
        }
    }
    out
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

/// The Content-Security-Policy of flame graphs: their own inline script and style, nothing
/// loaded, nothing sent.
pub const GRAPH_CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// Query parameters that carry credentials (`--read-credentials` accepts InfluxDB's `u`/`p`).
const CREDENTIALS: [&str; 2] = ["u", "p"];

/// What a flame-graph URL selects: a time range, label values and a profile type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub labels: Vec<Matcher>,
    /// `type=`; without it, the app's default ([`crate::store::App::default_type`]).
    pub profile: Option<ProfileType>,
}

/// A `type=` value: a profile type's name (Flink's `on_cpu` and `full` too).
pub fn parse_type(value: &str) -> Result<ProfileType, String> {
    ProfileType::from_name(value).ok_or_else(|| format!("invalid type={value:?}: one of {}", ProfileType::names()))
}

impl Selection {
    /// Take one parameter of a selection: `from`, `to`, `type`, or a label matcher:
    /// `executor=1` or `executor=1,3` (any of), `executor!=driver` (none of; the URL's name is
    /// then `executor!`), `label.<name>` always a label. Repeating a label adds values to its
    /// matcher of the same kind.
    pub fn take(&mut self, name: &str, value: String, now: i64) -> Result<(), String> {
        match name {
            // Credentials in InfluxDB's form (`u`, `p`) are never labels, and never echoed:
            // `label.u=` names a label `u`.
            n if CREDENTIALS.contains(&n) => {}
            "from" => self.from_ms = Some(parse_time(&value, now).map_err(|e| format!("invalid from: {e}"))?),
            "to" => self.to_ms = Some(parse_time(&value, now).map_err(|e| format!("invalid to: {e}"))?),
            "type" => self.profile = Some(parse_type(&value)?),
            _ => {
                let (label, negate) = label_of(name)?;
                self.add_matcher(Matcher::parse(label, &value, negate));
            }
        }
        Ok(())
    }

    /// Add a matcher; one of the same label and kind takes its values instead.
    fn add_matcher(&mut self, m: Matcher) {
        match self.labels.iter_mut().find(|l| l.name == m.name && l.negate == m.negate) {
            Some(l) => {
                for v in m.values {
                    if !l.values.contains(&v) {
                        l.values.push(v);
                    }
                }
            }
            None => self.labels.push(m),
        }
    }

    /// The store query of this selection, of its type or else `default`.
    pub fn query(&self, default: ProfileType) -> StoreQuery {
        StoreQuery { from_ms: self.from_ms, to_ms: self.to_ms, labels: self.labels.clone(), profile: self.profile.unwrap_or(default) }
    }

    /// `from` before `to`; `what` prefixes the names (`base.`).
    pub fn check(&self, what: &str) -> Result<(), String> {
        match (self.from_ms, self.to_ms) {
            (Some(f), Some(t)) if f >= t => Err(format!("{what}from ({}) must be before {what}to ({})", rfc3339(f), rfc3339(t))),
            _ => Ok(()),
        }
    }

    /// `from to to`, for titles and messages.
    fn range(&self) -> String {
        format!(
            "{} to {}",
            self.from_ms.map_or_else(|| "the beginning".to_string(), rfc3339),
            self.to_ms.map_or_else(|| "now".to_string(), rfc3339)
        )
    }

    /// `executor=1, host=h` or `all labels`.
    pub fn describe_labels(&self) -> String {
        if self.labels.is_empty() {
            return "all labels".to_string();
        }
        self.labels.iter().map(Matcher::describe).collect::<Vec<_>>().join(", ")
    }
}

/// A label matcher's parameter name: the label (`label.` taken off) and whether it is negated
/// (`executor!`, as a URL's `executor!=driver` reads).
fn label_of(name: &str) -> Result<(String, bool), String> {
    let (name, negate) = match name.strip_suffix('!') {
        Some(n) => (n, true),
        None => (name, false),
    };
    let label = name.strip_prefix("label.").unwrap_or(name);
    if label.is_empty() {
        return Err("invalid label.: name a label, like label.executor=1 or executor!=driver".to_string());
    }
    Ok((label.to_string(), negate))
}

/// Query parameters that the SVG's own script keeps its state in (search term, zoomed frame):
/// ignored, so that a zoomed or searched graph can be reloaded.
const VIEWER_STATE: [&str; 3] = ["s", "x", "y"];

/// A flame-graph URL's query string, parsed: the selection, an optional baseline (a
/// differential graph), and the render options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GraphRequest {
    pub selection: Selection,
    /// `base.from`, `base.to`, `base.<label>`: the selection with these replaced. `*` as a
    /// label's value drops that label from the baseline.
    pub base: Option<Selection>,
    pub options: render::Options,
    /// `normalize=false`: a differential `.folded` keeps both columns as stored.
    pub normalize: bool,
    /// `focus=<function>`: the `.tree` format adds its callers and callees (the sandwich).
    pub focus: Option<String>,
}

impl GraphRequest {
    /// Parse the parameters of `/flamegraph/<app>.<ext>`. Anything not an option, a time or a
    /// baseline is a label to match; `label.<name>` names a label whose name is also a
    /// parameter (`label.title=x`).
    pub fn parse(params: Vec<(String, String)>, now: i64) -> Result<GraphRequest, String> {
        let mut req = GraphRequest { normalize: true, ..GraphRequest::default() };
        let mut base_from = None;
        let mut base_to = None;
        let mut base_labels: Vec<(String, String, bool)> = Vec::new();
        let mut any_base = false;
        for (k, v) in params {
            if req.options.take(&k, &v)? {
                continue;
            }
            match k.as_str() {
                "normalize" => req.normalize = render::options::flag("normalize", &v)?,
                "focus" => req.focus = Some(v).filter(|f| !f.is_empty()),
                "base.from" => {
                    any_base = true;
                    base_from = Some(parse_time(&v, now).map_err(|e| format!("invalid base.from: {e}"))?);
                }
                "base.to" => {
                    any_base = true;
                    base_to = Some(parse_time(&v, now).map_err(|e| format!("invalid base.to: {e}"))?);
                }
                k if VIEWER_STATE.contains(&k) => {}
                k if CREDENTIALS.contains(&k) => {}
                k => {
                    if k == "base.type" {
                        return Err("a differential graph compares one profile type: give it as type=, not base.type=".to_string());
                    }
                    if let Some(label) = k.strip_prefix("base.") {
                        any_base = true;
                        let (label, negate) = label_of(label).map_err(|e| format!("base.: {e}"))?;
                        base_labels.push((label, v, negate));
                    } else {
                        req.selection.take(k, v, now)?;
                    }
                }
            }
        }
        req.selection.check("")?;
        if any_base {
            let mut base = req.selection.clone();
            if base_from.is_some() {
                base.from_ms = base_from;
            }
            if base_to.is_some() {
                base.to_ms = base_to;
            }
            for (k, _, _) in &base_labels {
                base.labels.retain(|m| m.name != *k);
            }
            for (k, v, negate) in base_labels {
                if v != "*" {
                    base.add_matcher(Matcher::parse(k, &v, negate));
                }
            }
            base.check("base.")?;
            req.base = Some(base);
        }
        Ok(req)
    }
}

/// `/flamegraph/<app>.svg|.folded|.json?from=…&to=…&<label>=<value>…&<option>=…`, and with
/// `base.*` a differential graph.
pub async fn flamegraph(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, HttpError> {
    let (name, format) = Format::from_file_name(&file).ok_or_else(|| {
        HttpError::Plain(StatusCode::NOT_FOUND, format!("{file:?}: ask for <app>.svg, <app>.folded, <app>.json or <app>.tree"))
    })?;
    let app =
        state.store.app(name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    let bad = |m: String| HttpError::Plain(StatusCode::BAD_REQUEST, m);
    let request = GraphRequest::parse(params, now_ms()).map_err(bad)?;
    if request.base.is_some() && format == Format::Json {
        return Err(bad("a differential flame graph (base.*) is served as .svg or .folded (two columns), not .json".to_string()));
    }
    // Identical requests while the app's data is unchanged share one render, and its result.
    let key = RenderKey { app: app.name.to_string(), format: format.label(), request, generation: app.generation() };
    let etag = key.etag();
    let answer = |status: StatusCode, body: Bytes| {
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
            (header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""))),
            // Revalidated each time: cheap (a 304 or a cached body) and never stale.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // The SVG's inline script and style run in stackd's origin: nothing else may load
            // or connect (a frame's text is escaped; this holds if that ever failed).
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(GRAPH_CSP)),
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
    let result = cell.get_or_init(|| render_once(Arc::clone(&state), app, key.request.clone(), format)).await.clone();
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
    request: GraphRequest,
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

    /// Bytes the key holds, roughly (for the cache's bound).
    fn size(&self) -> usize {
        let labels = |s: &Selection| {
            s.labels.iter().map(|m| m.name.len() + m.values.iter().map(|v| v.len() + 24).sum::<usize>() + 48).sum::<usize>()
        };
        let r = &self.request;
        self.app.len()
            + labels(&r.selection)
            + r.base.as_ref().map_or(0, labels)
            + r.options.style.title.as_ref().map_or(0, String::len)
            + [&r.options.shape.include, &r.options.shape.exclude].iter().map(|p| p.as_ref().map_or(0, |p| p.text.len() * 4)).sum::<usize>()
            + 256
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
    request: GraphRequest,
    format: Format,
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
    let max_frames = state.settings.limits.max_render_frames;
    tokio::task::spawn_blocking(move || -> Result<Bytes, (StatusCode, String)> {
        let _permit = permit;
        let started = Instant::now();
        // A graph cut to its budget is counted; its subtitle says what was left out.
        let drawn = |r: std::io::Result<(Vec<u8>, Option<render::narrow::Cut>)>| {
            let (svg, cut) = r.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering failed: {e}")))?;
            if cut.is_some() {
                metrics.limit_hit(Limit::RenderOutput);
            }
            Ok::<_, (StatusCode, String)>(svg)
        };
        let shape = &request.options.shape;
        let profile = request.selection.profile.unwrap_or_else(|| app.default_type());
        let unit = profile.unit();
        let (stacks_now, total_now, period_ns) = shaped_stacks(&store, &metrics, &app, &request.selection, profile, shape, "")?;
        let current = (stacks_now, total_now);
        let bytes = match &request.base {
            None => {
                let (stacks, total) = current;
                match format {
                    Format::Folded => render::folded(&stacks).into_bytes(),
                    Format::Json => render::json(&stacks).into_bytes(),
                    Format::Tree => tree_json(&render::tree::answer(&stacks, None, request.focus.as_deref(), render::tree::MAX_NODES))?,
                    Format::Svg => {
                        let titles = Titles {
                            max_frames,
                            count_name: unit.name(),
                            ..Titles::new(
                                app.name.to_string(),
                                Some(format!(
                                    "{} {}: {}, {} stacks",
                                    profile.name(),
                                    request.selection.range(),
                                    timed_text(unit, total, period_ns),
                                    stacks.len()
                                )),
                            )
                        };
                        drawn(render::svg_styled(&stacks, &titles, &request.options.style))?
                    }
                }
            }
            Some(base_selection) => {
                let (base, base_total, _) = shaped_stacks(&store, &metrics, &app, base_selection, profile, shape, "baseline: ")?;
                let (stacks, total) = current;
                match format {
                    Format::Svg => {
                        let titles = Titles {
                            max_frames,
                            count_name: unit.name(),
                            ..Titles::new(format!("{} (differential)", app.name), Some(format!(
                                "{} {} [{}]: {} against the baseline {} [{}]: {}, scaled to the same total. Width: now; red: grew, blue: shrank",
                                profile.name(),
                                request.selection.range(),
                                request.selection.describe_labels(),
                                total_text(unit, total),
                                base_selection.range(),
                                base_selection.describe_labels(),
                                total_text(unit, base_total),
                            )))
                        };
                        drawn(render::diff::svg(&base, &stacks, &titles, &request.options.style))?
                    }
                    Format::Tree => tree_json(&render::tree::answer(&stacks, Some(&base), request.focus.as_deref(), render::tree::MAX_NODES))?,
                    _ => render::diff::folded(&base, &stacks, request.normalize).into_bytes(),
                }
            }
        };
        metrics.render_seconds.with_label_values(&[format.label()]).observe(started.elapsed().as_secs_f64());
        Ok(Bytes::from(bytes))
    })
    .await
    .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, format!("render task failed: {e}"))))
}

fn tree_json(answer: &render::tree::Answer) -> Result<Vec<u8>, (StatusCode, String)> {
    serde_json::to_vec(answer).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("writing the tree failed: {e}")))
}

/// The stacks of one selection, shaped by the render options, and their total; an error when
/// the store cannot be read or nothing is left to draw. `what` starts the messages.
fn shaped_stacks(
    store: &crate::store::Store,
    metrics: &crate::metrics::Metrics,
    app: &crate::store::App,
    selection: &Selection,
    profile_type: ProfileType,
    shape: &render::Shape,
    what: &str,
) -> Result<(render::Stacks, u64, Option<u64>), (StatusCode, String)> {
    let profile = store.query(app, &selection.query(profile_type)).map_err(|e| {
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
        (
            StatusCode::NOT_FOUND,
            format!("{what}no data for app {:?} with {}; labels seen: {}", app.name, selection.describe_labels(), known.join(", ")),
        )
    })?;
    if profile.total == 0 {
        let types: Vec<&str> = app.types().iter().map(|t| t.profile.name()).collect();
        return Err((
            StatusCode::NOT_FOUND,
            if types.is_empty() || types.contains(&profile_type.name()) {
                format!("{what}app {:?} has no stack samples from {}", app.name, selection.range())
            } else {
                format!("{what}app {:?} has no {profile_type} samples; its profile types: {} (type=)", app.name, types.join(", "))
            },
        ));
    }
    let stacks = shape.apply(store.resolve(&profile));
    let total = stacks.iter().fold(0u64, |t, (_, c)| t.saturating_add(*c));
    if total == 0 {
        return Err((
            StatusCode::NOT_FOUND,
            format!(
                "{what}none of the {} samples of app {:?} from {} is left after include=/exclude=",
                profile.total,
                app.name,
                selection.range()
            ),
        ));
    }
    Ok((stacks, total, profile.period_ns))
}

/// A total in its unit as a person reads it; the exact number beside it when that reads
/// differently (`45.6 MiB (47815066 bytes)`).
fn total_text(unit: crate::sample::Unit, total: u64) -> String {
    match unit {
        crate::sample::Unit::Samples => format!("{total} samples"),
        unit => format!("{} ({total} {})", unit.format(total), unit.name()),
    }
}

/// [`total_text`], with the time samples stand for when their sampling period is known
/// (`1234 samples ≈ 12.3 s at 10.0 ms`).
fn timed_text(unit: crate::sample::Unit, total: u64, period_ns: Option<u64>) -> String {
    match period_ns {
        Some(p) if unit == crate::sample::Unit::Samples => {
            format!("{} ≈ {} at {}", total_text(unit, total), crate::sample::seconds(total.saturating_mul(p)), crate::sample::seconds(p))
        }
        _ => total_text(unit, total),
    }
}

/// `GET /apps/<app>`: one app's summary, with each label's values.
pub async fn app_info(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<crate::store::AppInfo>, HttpError> {
    let app =
        state.store.app(&name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    Ok(Json(app.info()))
}

pub use crate::percent_encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_keeps_that_apps_series_and_their_families_comments() {
        let body = "# HELP a_total A.\n# TYPE a_total counter\na_total{app=\"x\"} 1\na_total{app=\"x2\"} 2\n\
# HELP b B.\n# TYPE b gauge\nb{app=\"y\",app_x=\"x\"} 3\nb 4\n\
# HELP c C.\n# TYPE c gauge\nc{executor=\"1\",app=\"x\"} 5\nc{app=\"q\\\"x\"} 6\n";
        assert_eq!(
            only_app(body, "x"),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{app=\"x\"} 1\n# HELP c C.\n# TYPE c gauge\nc{executor=\"1\",app=\"x\"} 5\n"
        );
        assert_eq!(only_app(body, "q\"x"), "# HELP c C.\n# TYPE c gauge\nc{app=\"q\\\"x\"} 6\n");
        assert_eq!(only_app(body, "none"), "");
    }

    #[test]
    fn label_matchers_from_a_url() {
        let q = GraphRequest::parse(
            vec![
                ("executor".into(), "1,3".into()),
                ("executor".into(), "5".into()),
                ("host!".into(), "driver".into()),
                ("base.executor".into(), "*".into()),
                ("base.label.host!".into(), "a,b".into()),
                ("focus".into(), "f".into()),
            ],
            0,
        )
        .expect("parses");
        assert_eq!(q.selection.describe_labels(), "executor=1|3|5, host!=driver");
        assert_eq!(q.base.expect("a baseline").describe_labels(), "host!=a|b");
        assert_eq!(q.focus.as_deref(), Some("f"));
        assert!(GraphRequest::parse(vec![("!".into(), "x".into())], 0).is_err());
    }
}
