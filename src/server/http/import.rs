//! Profiles people already have, imported whole: `POST /import/flink` (the JSON of Flink's flame
//! graph REST endpoint or web UI: the whole response or just its tree) and `POST /import/folded`
//! (collapsed stacks). Both take `?app=<name>[&time=<when>][&<label>=<value>…]`, may be gzip, and
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
}

fn bad(state: &AppState, message: String) -> HttpError {
    state.metrics.request_rejected(RequestReject::BadDocument);
    HttpError::V1(StatusCode::BAD_REQUEST, message)
}

impl Target {
    fn from_query(params: Vec<(String, String)>, now: i64) -> Result<Self, String> {
        let (mut app, mut time_ms, mut labels) = (None, None, Vec::new());
        for (k, v) in params {
            match k.as_str() {
                "app" => app = Some(v),
                "time" => time_ms = Some(parse_time(&v, now)?),
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
        Ok(Target { app, labels, time_ms })
    }

    /// The origin of imports to this app and label set.
    fn origin(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"import\0");
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
    let limits = &state.settings.limits;
    let Ok(Ok(_slot)) = tokio::time::timeout(limits.request_timeout, Arc::clone(&state.imports).acquire_owned()).await else {
        state.metrics.request_rejected(RequestReject::ImportBusy);
        state.metrics.limit_hit(crate::outcome::Limit::Imports);
        return Err(HttpError::V1(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} imports are being read already (--max-concurrent-imports); retry later", limits.max_concurrent_imports),
        ));
    };
    let body = read_body(&headers, body, state.settings.limits.max_body_size, state.settings.limits.request_timeout)
        .await
        .map_err(|e| e.into_http(&state, false))?;
    let work = Arc::clone(&state);
    let imported = tokio::task::spawn_blocking(move || {
        let state = work;
        let parsed = parse(body).map_err(|m| bad(&state, m))?;
        let time_ms = target.time_ms.or(parsed.time_ms).unwrap_or(now);
        let ingest = &state.inputs.ingest;
        let spec = || SourceSpec::new(target.app.clone(), target.labels.clone());
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
            Stacks::Folded { text, .. } => folded::each(simdutf8::basic::from_utf8(text).unwrap_or_default(), sink),
        }
    }

    fn stacks(&self) -> usize {
        match &self.stacks {
            Stacks::Tree(tree) => tree.len(),
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

/// `POST /import/folded?app=…`: collapsed stacks (filed at `time=` or now).
pub async fn folded(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Imported>, HttpError> {
    import(state, params, headers, body, parse_folded).await
}
