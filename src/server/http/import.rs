//! Profiles people already have, imported whole: `POST /import/flink` (the JSON of Flink's flame
//! graph REST endpoint or web UI: the whole response or just its tree) and `POST /import/folded`
//! (collapsed stacks). Both take `?app=<name>[&time=<when>][&type=<profile type>][&<label>=<value>…]`
//! (the type `cpu` unless said: Flink's `type=on_cpu|off_cpu|full` are `cpu`, `off_cpu`, `wall`), may be gzip, and
//! are checked whole before anything is stored: a malformed or inconsistent document gets a 400
//! naming the problem and leaves nothing behind.
//!
//! At most `--max-concurrent-imports` are read and parsed at once (a request waits for a slot up
//! to `--http-request-timeout`, then gets a 503), each within `--max-body-size`; collapsed stacks
//! are read in place, a Flink tree costs about twice its JSON. With `--sync-writes` an import is
//! answered once it is on disk.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use super::read::parse_time;
use super::write::read_body;
use super::{AppState, HttpError};
use crate::input::flink::flamegraph::{self, Document};
use crate::input::folded;
use crate::outcome::RequestReject;
use crate::sample::is_label_name;
use crate::store::SourceSpec;
use crate::{now_ms, rfc3339_ms};

/// Query parameters that are not labels (the flame graph query reads `from`, `to` and `title`
/// itself, so labels of those names could never be selected).
const RESERVED: &[&str] = &["app", "time", "from", "to", "title"];

/// What an import stored.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub app: String,
    /// RFC 3339, and Unix milliseconds: the time the profile was filed at.
    pub time: String,
    pub time_ms: i64,
    pub samples: u64,
    pub stacks: usize,
}

/// Where an import goes: from the query string.
struct Target {
    app: String,
    labels: Vec<(String, String)>,
    time_ms: Option<i64>,
    /// `type=`: the profile type of the stacks (Flink's `on_cpu`, `off_cpu`, `full` too).
    profile: Option<crate::sample::ProfileType>,
}

fn bad(state: &AppState, message: String) -> HttpError {
    state.metrics.request_rejected(RequestReject::BadDocument);
    HttpError::V1(StatusCode::BAD_REQUEST, message)
}

impl Target {
    fn from_query(params: Vec<(String, String)>, now: i64) -> Result<Self, String> {
        let (mut app, mut time_ms, mut labels, mut profile) = (None, None, Vec::new(), None);
        for (k, v) in params {
            match k.as_str() {
                "app" => app = Some(v),
                "time" => time_ms = Some(parse_time(&v, now)?),
                "type" => profile = Some(super::read::parse_type(&v)?),
                _ => {
                    let name = k.strip_prefix("label.").unwrap_or(&k).to_string();
                    if RESERVED.contains(&name.as_str()) || !is_label_name(&name) {
                        return Err(format!(
                            "{name:?} cannot be a label: label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with __ and are not {}",
                            RESERVED.join(", ")
                        ));
                    }
                    labels.push((name, v));
                }
            }
        }
        let app = app.filter(|a| !a.is_empty()).ok_or("missing parameter app: POST /import/…?app=<name>[&<label>=<value>…]")?;
        labels.sort();
        if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("label {:?} given twice", w[0].0));
        }
        Ok(Target { app, labels, time_ms, profile })
    }

    /// The origin of imports to this app and label set.
    fn origin(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"import\0");
        if let Some(p) = self.profile {
            // Untyped (cpu) imports keep the origin they always had.
            h.update(&[0xff, p as u8]);
        }
        h.update(self.app.as_bytes());
        for (k, v) in &self.labels {
            h.update(&[0]);
            h.update(k.as_bytes());
            h.update(&[0]);
            h.update(v.as_bytes());
        }
        h.digest()
    }
}

/// One of the `--max-concurrent-imports` slots, taken before the body is read (the body, the
/// parsed document and the stacks being stored all count against it); waited for up to
/// `--http-request-timeout`, then a 503.
async fn import_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, HttpError> {
    let limits = &state.settings.limits;
    match tokio::time::timeout(limits.request_timeout, Arc::clone(&state.imports).acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        _ => {
            state.metrics.request_rejected(RequestReject::ImportBusy);
            state.metrics.limit_hit(crate::outcome::Limit::Imports);
            Err(HttpError::V1(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{} imports are being read already (--max-concurrent-imports); retry later", limits.max_concurrent_imports),
            ))
        }
    }
}

/// Read the body and the target, then parse and store on the blocking pool with `parse`, which
/// returns the document's own time (if any) and calls its sink with each stack.
async fn import(
    state: Arc<AppState>,
    params: Vec<(String, String)>,
    headers: HeaderMap,
    body: Body,
    parse: fn(Bytes) -> Result<Parsed, String>,
) -> Result<Json<Imported>, HttpError> {
    let now = now_ms();
    let target = Target::from_query(params, now).map_err(|m| bad(&state, m))?;
    // A slot before the body is read: the body, the parsed document and the stacks being stored
    // all count against it.
    let _slot = import_slot(&state).await?;
    let body = read_body(&headers, body, state.settings.limits.max_body_size, state.settings.limits.request_timeout)
        .await
        .map_err(|e| e.into_http(&state, false))?;
    let work = Arc::clone(&state);
    let imported = tokio::task::spawn_blocking(move || {
        let state = work;
        let parsed = parse(body).map_err(|m| bad(&state, m))?;
        let time_ms = target.time_ms.or(parsed.time_ms).unwrap_or(now);
        let ingest = &state.inputs.ingest;
        let spec =
            || SourceSpec { profile: target.profile.unwrap_or_default(), ..SourceSpec::new(target.app.clone(), target.labels.clone()) };
        let refused = |r: crate::outcome::Reject| bad(&state, format!("nothing stored: {r}"));
        let source = ingest.source_at(target.origin(), time_ms, now, spec).map_err(refused)?;
        let samples = ingest.add_profile(&source, time_ms, now, |sink| parsed.each(sink)).map_err(refused)?;
        Ok(Json(Imported { app: source.app.name.to_string(), time: rfc3339_ms(time_ms), time_ms, samples, stacks: parsed.stacks() }))
    })
    .await
    .unwrap_or_else(|e| Err(HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, format!("import failed: {e}"))))?;
    if let Some(flusher) = &state.settings.flusher {
        flusher.sync().await.map_err(|e| HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, format!("stored but not durable: {e}")))?;
    }
    Ok(imported)
}

/// A checked document: its stacks, and its own time if it has one.
struct Parsed {
    time_ms: Option<i64>,
    stacks: Stacks,
}

enum Stacks {
    Tree(flamegraph::Tree),
    /// An async-profiler HTML flame graph's frames.
    ApHtml(crate::protocol::ap_html::Graph),
    /// A checked collapsed document, read again as it is stored.
    Folded {
        text: Bytes,
        stacks: usize,
    },
}

impl Parsed {
    fn each(&self, sink: &mut dyn FnMut(&[&str], u64)) {
        match &self.stacks {
            Stacks::Tree(tree) => tree.each_stack(sink),
            Stacks::ApHtml(graph) => graph.each_stack(sink),
            Stacks::Folded { text, .. } => folded::each(simdutf8::basic::from_utf8(text).unwrap_or_default(), sink),
        }
    }

    fn stacks(&self) -> usize {
        match &self.stacks {
            Stacks::Tree(tree) => tree.len(),
            Stacks::ApHtml(graph) => graph.stacks(),
            Stacks::Folded { stacks, .. } => *stacks,
        }
    }
}

fn parse_flink(body: Bytes) -> Result<Parsed, String> {
    match flamegraph::parse(&body)? {
        Document::Graph { end_ms, tree } => Ok(Parsed { time_ms: end_ms, stacks: Stacks::Tree(tree) }),
        Document::Sentinel(s) => Err(format!(
            "Flink's answer holds no flame graph ({s:?}: {}); save the graph while the job runs",
            match s {
                flamegraph::Sentinel::Finished => "the vertex had finished",
                flamegraph::Sentinel::Disabled => "rest.flamegraph.enabled is false",
                flamegraph::Sentinel::Waiting => "no sample was taken yet",
            }
        )),
    }
}

fn parse_folded(body: Bytes) -> Result<Parsed, String> {
    let text = simdutf8::compat::from_utf8(&body).map_err(|e| format!("collapsed stacks must be UTF-8: {e}"))?;
    let stacks = folded::check(text)?;
    Ok(Parsed { time_ms: None, stacks: Stacks::Folded { text: body, stacks } })
}

/// `POST /import/flink?app=…`: a flame graph saved from Flink (filed at its `endTimestamp`
/// unless `time=` says otherwise; a bare tree at `time=` or now).
pub async fn flink(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Imported>, HttpError> {
    import(state, params, headers, body, parse_flink).await
}

fn parse_ap_html(body: Bytes) -> Result<Parsed, String> {
    let text = simdutf8::compat::from_utf8(&body).map_err(|e| format!("an async-profiler HTML flame graph must be UTF-8: {e}"))?;
    let graph = crate::protocol::ap_html::parse(text).map_err(|e| format!("not an async-profiler flame graph: {e}"))?;
    Ok(Parsed { time_ms: None, stacks: Stacks::ApHtml(graph) })
}

/// `POST /import/async-profiler-html?app=…`: an async-profiler 2.x HTML flame graph (Flink's
/// profiler's result, `file=x.html`), filed at `time=` or now, as `type=` (default `cpu`).
pub async fn ap_html(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Imported>, HttpError> {
    import(state, params, headers, body, parse_ap_html).await
}

/// `POST /import/folded?app=…`: collapsed stacks (filed at `time=` or now).
pub async fn folded(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Imported>, HttpError> {
    import(state, params, headers, body, parse_folded).await
}

/// What `POST /import/jfr` stored of one profile type.
#[derive(Debug, Serialize)]
pub struct JfrType {
    pub unit: crate::sample::Unit,
    /// In the unit.
    pub total: u64,
    /// The same, as a person reads it (`1.23 s`, `45.6 MiB`).
    pub display: String,
    pub events: u64,
    /// Refused (older than the retention, ahead of the clock, a limit), in the unit.
    pub refused: u64,
    /// For samples taken at a period the recording states: the time they stand for, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
}

/// What `POST /import/jfr` stored.
#[derive(Debug, Serialize)]
pub struct JfrImported {
    pub app: String,
    pub chunks: usize,
    /// By profile type, those with samples.
    pub types: std::collections::BTreeMap<&'static str, JfrType>,
    /// Stacks stored (per type and time bucket).
    pub stacks: usize,
    /// RFC 3339 times of the first and last sample.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Why the recording's end was not stored (a chunk cut off, damaged or too large); the
    /// chunks before it were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// Why some samples were refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A request body as a blocking reader: frames are pulled on the async side (each within the
/// request timeout) and handed over through a small queue, so a recording is decoded while it
/// arrives and never held whole.
struct BodyReader {
    frames: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.frames.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Pull the body's frames into `tx` until its end, an error or a frame that takes longer than
/// `timeout`.
async fn pump(body: Body, tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>, timeout: std::time::Duration) {
    use http_body_util::BodyExt;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => Err(format!("the body stalled for {}", humantime::format_duration(timeout))),
            Ok(None) => return,
            Ok(Some(Err(e))) => Err(format!("the body could not be read: {e}")),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue, // trailers
            },
        };
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            return;
        }
    }
}

/// `POST /import/jfr?app=<app>[&<label>=<value>…]`: a JFR recording (the JDK's, async-profiler's,
/// Spark 4's profiler's), raw or gzip; its samples filed at their own times, by profile type.
/// Read one chunk at a time as it arrives (at most `--max-jfr-chunk-size` in memory); each chunk
/// is stored whole or not at all. A body whose first chunk cannot be read is a 400 and stores
/// nothing; a recording cut off (or damaged) later keeps the chunks before, and says so.
pub async fn jfr(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<JfrImported>, HttpError> {
    let now = now_ms();
    let target = Target::from_query(params, now).map_err(|m| bad(&state, m))?;
    if target.time_ms.is_some() {
        return Err(bad(&state, "a JFR recording's samples carry their own times: drop time=".to_string()));
    }
    if target.profile.is_some() {
        return Err(bad(&state, "a JFR recording's profile types come from its events: drop type=".to_string()));
    }
    let encoding =
        headers.get(axum::http::header::CONTENT_ENCODING).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_ascii_lowercase());
    if !matches!(encoding.as_deref(), None | Some("" | "identity" | "gzip" | "x-gzip")) {
        return Err(bad(&state, "unsupported Content-Encoding: send the recording as it is or gzip-compressed".to_string()));
    }
    let limits = state.settings.limits;
    let slot = import_slot(&state).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let pumping = tokio::spawn(pump(body, tx, limits.request_timeout));
    let work = Arc::clone(&state);
    let jfr_target = crate::input::jfr::Target::new(target.app.clone(), target.labels);
    let result = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let state = work;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, BodyReader { frames: rx, current: Bytes::new() });
        let gzip = std::io::BufRead::fill_buf(&mut reader).is_ok_and(|b| b.starts_with(&[0x1f, 0x8b]));
        let mut body: Box<dyn std::io::Read> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
        let ingest = &state.inputs.ingest;
        let mut file = crate::input::jfr::FileState::default();
        let mut stored = crate::input::jfr::Stored::default();
        let chunks = state.metrics.jfr_chunks.clone();
        let (done, stopped) = crate::input::jfr::each_chunk(&mut body, limits.max_jfr_chunk_size, |bytes| {
            let chunk = crate::protocol::jfr::Chunk::parse(bytes)?;
            let mut w = ingest.writer(None);
            stored.add(&crate::input::jfr::store_chunk(&mut w, &jfr_target, &chunk, &mut file, now)?);
            chunks.with_label_values(&["import", "stored"]).inc();
            Ok(())
        });
        (done, stopped, stored)
    })
    .await;
    pumping.abort();
    let (done, stopped, stored) =
        result.map_err(|e| HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, format!("the JFR import failed: {e}")))?;
    let incomplete = stopped.map(|(offset, e)| {
        state.metrics.jfr_chunks.with_label_values(&["import", e.outcome()]).inc();
        (offset, e)
    });
    if done == 0 {
        let why = match &incomplete {
            Some((_, e)) => e.to_string(),
            None => "the body is empty".to_string(),
        };
        return Err(bad(&state, format!("not a JFR recording stackd can read: {why}; nothing stored")));
    }
    if let Some(flusher) = &state.settings.flusher {
        flusher.sync().await.map_err(|e| HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, format!("stored but not durable: {e}")))?;
    }
    let types = crate::sample::ProfileType::ALL
        .iter()
        .zip(stored.types)
        .filter(|(_, t)| t.events > 0)
        .map(|(p, t)| {
            let unit = p.unit();
            let time_ns = (unit == crate::sample::Unit::Samples && t.untimed == 0 && t.total > 0).then_some(t.time_ns);
            let display = match time_ns {
                Some(ns) => format!("{} ({})", unit.format(t.total), crate::sample::seconds(ns)),
                None => unit.format(t.total),
            };
            (p.name(), JfrType { unit, total: t.total, display, events: t.events, refused: t.refused, time_ns })
        })
        .collect();
    Ok(Json(JfrImported {
        app: target.app,
        chunks: done,
        types,
        stacks: stored.stacks,
        first: stored.first_ms.map(rfc3339_ms),
        last: stored.last_ms.map(rfc3339_ms),
        incomplete: incomplete
            .map(|(offset, e)| format!("chunk {} at byte {offset}: {e}; the {done} chunks before it were stored", done + 1)),
        refused: stored.refused.map(|r| format!("some samples were refused: {r}")),
    }))
}
