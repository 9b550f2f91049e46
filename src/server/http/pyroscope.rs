//! Grafana Pyroscope's ingest API, answered as Pyroscope answers, so that its clients point at
//! stackd unchanged:
//!
//! * `POST /ingest` (also `/pyroscope/ingest`): `name=<app>[.<type>]{k=v,…}`, `from`, `until`
//!   (Unix seconds; missing: now), `format` (`folded` by default, `lines`, `jfr`, `pprof`),
//!   `sampleRate`, and `spyName`, `units`, `aggregationType` (accepted, not needed). The body is
//!   the profile, or `multipart/form-data`: `jfr` and `labels` (the Java agent), `profile`,
//!   `prev_profile` and `sample_type_config` (the Go client; a multipart body without `format`
//!   is pprof). Bodies and parts may be gzip (`Content-Encoding`, or the gzip magic).
//! * `POST /push.v1.PusherService/Push`: connect-RPC unary, `application/proto` (gzip
//!   `Content-Encoding` allowed) or `application/json`; each series' `service_name` is the app.
//!
//! Success is 200 with an empty body (the Push API: an empty `PushResponse`). Errors are JSON
//! `{"code","message"}`: 400 `invalid_argument` for a bad name, format or body (nothing of the
//! request stored), 413 for a body or a decompressed part over `--max-body-size`, 429
//! `resource_exhausted` when no import slot frees up in time (`--max-concurrent-imports`; the
//! clients retry), 401 `unauthenticated` without `--write-credentials`. Every request is counted
//! in `stackd_pyroscope_requests_total{api,format,outcome}`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::write::{read_body, BodyError};
use super::{AppState, HttpError};
use crate::input::pyroscope::{self as input, Batch, SampleTypeConfig, Series};
use crate::outcome::RequestReject;
use crate::protocol::pyroscope as wire;
use crate::protocol::{jfr, pprof};
use crate::{now_ms, sample::ProfileType};

/// The Push API's path.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";

/// A failed request: its HTTP status, connect code, message and the outcome it is counted as.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    outcome: &'static str,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure { status: StatusCode::BAD_REQUEST, code: "invalid_argument", message: message.into(), outcome: "bad" }
}

fn too_large(what: &str, limit: usize) -> Failure {
    Failure {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "resource_exhausted",
        message: format!("{what} is over {limit} bytes (--max-body-size)"),
        outcome: "too_large",
    }
}

impl Failure {
    fn from_body(e: BodyError, limit: usize) -> Self {
        match e {
            BodyError::TooLarge => too_large("the body", limit),
            BodyError::BadGzip(m) | BodyError::Read(m) => bad(m),
            BodyError::Unsupported(m) => Failure { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, ..bad(m) },
            BodyError::TimedOut => Failure {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "deadline_exceeded",
                ..bad("the request body did not arrive in time (--http-request-timeout)")
            },
        }
    }

    /// Count it and answer.
    fn answer(self, state: &AppState, api: &str, format: &str) -> HttpError {
        state.metrics.pyroscope_requests.with_label_values(&[api, format, self.outcome]).inc();
        state.metrics.request_rejected(match self.outcome {
            "too_large" => RequestReject::TooLarge,
            "busy" => RequestReject::ImportBusy,
            _ => RequestReject::BadDocument,
        });
        if self.outcome == "too_large" {
            state.metrics.limit_hit(crate::outcome::Limit::Body);
        }
        HttpError::Connect(self.status, self.code, self.message)
    }
}

/// The bytes of a profile or part, gunzipped when they start with the gzip magic (within
/// `limit` once decompressed).
fn gunzipped<'a>(data: &'a [u8], what: &str, limit: usize) -> Result<Cow<'a, [u8]>, Failure> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(data));
    }
    let mut out = Vec::with_capacity((data.len() * 4).min(limit));
    flate2::read::MultiGzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("{what} is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(too_large(&format!("{what} once decompressed"), limit));
    }
    Ok(Cow::Owned(out))
}

/// An import slot, or a 429 the clients retry on.
async fn slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, Failure> {
    let limits = &state.settings.limits;
    match tokio::time::timeout(limits.request_timeout, Arc::clone(&state.imports).acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        _ => {
            state.metrics.limit_hit(crate::outcome::Limit::Imports);
            Err(Failure {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "resource_exhausted",
                message: format!(
                    "{} imports are being read already (--max-concurrent-imports); retry later",
                    limits.max_concurrent_imports
                ),
                outcome: "busy",
            })
        }
    }
}

/// What `/ingest`'s format parameter and body say the profile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Folded,
    Lines,
    Jfr,
    Pprof,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Folded => "folded",
            Format::Lines => "lines",
            Format::Jfr => "jfr",
            Format::Pprof => "pprof",
        }
    }
}

/// The parameters of `/ingest`.
struct IngestQuery {
    app: String,
    /// The name's type suffix (`.cpu`, `.alloc_objects`).
    suffix: Option<ProfileType>,
    series: Series,
}

fn ingest_query(params: &HashMap<String, String>, now: i64) -> Result<IngestQuery, Failure> {
    let name = params.get("name").filter(|n| !n.is_empty()).ok_or_else(|| bad("missing parameter name: /ingest?name=<app>{k=v,…}"))?;
    let parsed = wire::parse_name(name).map_err(bad)?;
    let (app, suffix) = input::split_type(&parsed.name);
    let labels = input::labels(parsed.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(bad)?;
    let time = |key: &str| -> Result<Option<i64>, Failure> {
        params
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| super::read::parse_time(v, now).map_err(|e| bad(format!("{key}: {e}"))))
            .transpose()
    };
    let from = time("from")?;
    time("until")?;
    // As Pyroscope: a sample rate that is not a number is its default.
    let sample_rate = params.get("sampleRate").and_then(|r| r.trim().parse::<u64>().ok()).filter(|r| *r > 0);
    Ok(IngestQuery {
        app: app.to_string(),
        suffix,
        series: Series { app: app.to_string(), labels, time_ms: Some(from.unwrap_or(now)), sample_rate, wall: false },
    })
}

/// `POST /ingest`: a profile of one application (see the module's documentation).
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let now = now_ms();
    // Read here rather than by an extractor, so that a malformed query string gets Pyroscope's
    // error shape too.
    let params: HashMap<String, String> = serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or(""))
        .map_err(|e| bad(format!("the query string cannot be read: {e}")).answer(&state, "ingest", "folded"))?
        .into_iter()
        .collect();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = wire::boundary(content_type);
    let format = match params.get("format").map(String::as_str) {
        None | Some("") if boundary.is_some() => Format::Pprof,
        None | Some("" | "folded" | "groups") => Format::Folded,
        Some("lines") => Format::Lines,
        Some("jfr") => Format::Jfr,
        Some("pprof") => Format::Pprof,
        Some(other) => {
            let message = match other {
                "trie" | "tree" | "speedscope" => format!("format={other} is not taken by stackd: send folded, lines, jfr or pprof"),
                _ => format!("unknown format {other:?}: folded, lines, jfr or pprof"),
            };
            return Err(bad(message).answer(&state, "ingest", "folded"));
        }
    };
    let fail = |f: Failure| f.answer(&state, "ingest", format.name());
    let query = ingest_query(&params, now).map_err(fail)?;
    let boundary = boundary.transpose().map_err(|m| fail(bad(m)))?;
    let limit = state.settings.limits.max_body_size;
    let permit = slot(&state).await.map_err(fail)?;
    let body =
        read_body(&headers, body, limit, state.settings.limits.request_timeout).await.map_err(|e| fail(Failure::from_body(e, limit)))?;
    let work = Arc::clone(&state);
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ingest_body(&work, &query, format, boundary.as_deref(), &body, now)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Failure { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", ..bad(format!("the ingest failed: {e}")) })
    });
    result.map_err(fail)?;
    stored(&state, "ingest", format.name()).await
}

/// After a request stored its profiles: durable with `--sync-writes`, counted, answered.
async fn stored(state: &AppState, api: &str, format: &str) -> Result<Response, HttpError> {
    if let Some(flusher) = &state.settings.flusher {
        flusher
            .sync()
            .await
            .map_err(|e| HttpError::Connect(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("stored but not durable: {e}")))?;
    }
    state.metrics.pyroscope_requests.with_label_values(&[api, format, "stored"]).inc();
    Ok(match api {
        "push" => (StatusCode::OK, [(header::CONTENT_TYPE, "application/proto")], Bytes::new()).into_response(),
        _ => StatusCode::OK.into_response(),
    })
}

/// Parts of a multipart body by name; `None` when the body is not multipart.
fn parts<'a>(body: &'a [u8], boundary: Option<&str>) -> Result<Option<HashMap<String, &'a [u8]>>, Failure> {
    let Some(boundary) = boundary else { return Ok(None) };
    let parts = wire::multipart(body, boundary).map_err(bad)?;
    let mut out = HashMap::new();
    for p in parts {
        if out.insert(p.name.clone(), p.data).is_some() {
            return Err(bad(format!("the multipart part {:?} is given twice", p.name)));
        }
    }
    Ok(Some(out))
}

fn ingest_body(state: &AppState, q: &IngestQuery, format: Format, boundary: Option<&str>, body: &[u8], now: i64) -> Result<(), Failure> {
    let limit = state.settings.limits.max_body_size;
    let ingest = &state.inputs.ingest;
    let mut batch = Batch::new(ingest.store.limits().max_stack_depth);
    let parts = parts(body, boundary)?;
    match format {
        Format::Folded | Format::Lines => {
            let text = gunzipped(body, "the body", limit)?;
            let text = simdutf8::compat::from_utf8(&text).map_err(|e| bad(format!("collapsed stacks must be UTF-8: {e}")))?;
            batch.add_text(&q.series, q.suffix.unwrap_or_default(), text, format == Format::Lines, now).map_err(bad)?;
        }
        Format::Pprof => {
            let (profile, prev, config) = match &parts {
                None => (body, None, None),
                Some(p) => {
                    let profile = p.get("profile").ok_or_else(|| bad("the multipart body has no \"profile\" part"))?;
                    (*profile, p.get("prev_profile").copied(), p.get("sample_type_config").copied())
                }
            };
            let config: HashMap<String, SampleTypeConfig> = match config {
                None => HashMap::new(),
                Some(c) => serde_json::from_slice(&gunzipped(c, "sample_type_config", limit)?)
                    .map_err(|e| bad(format!("sample_type_config is not the JSON of sample types: {e}")))?,
            };
            let decode = |data: &[u8], what: &str| -> Result<pprof::Checked, Failure> {
                pprof::decode(&gunzipped(data, what, limit)?).map_err(|e| pprof_failure(state, what, e))
            };
            let profile = decode(profile, "the profile")?;
            let prev = prev.map(|p| decode(p, "prev_profile")).transpose()?;
            batch.add_pprof(&q.series, &profile, prev.as_ref(), &config, now).map_err(bad)?;
        }
        Format::Jfr => return ingest_jfr(state, q, parts.as_ref(), body, now),
    }
    store(state, &batch, now)
}

/// Why a pprof profile was refused: malformed (400), or over the elements stackd decodes in one
/// profile (413, counted as the `profile_size` limit).
fn pprof_failure(state: &AppState, what: &str, e: pprof::Error) -> Failure {
    match e {
        pprof::Error::TooLarge { .. } => {
            state.metrics.limit_hit(crate::outcome::Limit::ProfileSize);
            Failure { status: StatusCode::PAYLOAD_TOO_LARGE, code: "resource_exhausted", message: format!("{what}: {e}"), outcome: "limit" }
        }
        _ => bad(format!("{what}: {e}")),
    }
}

/// Store a checked batch, its times checked first.
fn store(state: &AppState, batch: &Batch, now: i64) -> Result<(), Failure> {
    let ingest = &state.inputs.ingest;
    if !batch.skipped.types.is_empty() {
        state.metrics.pyroscope_skipped.with_label_values(&["sample_type"]).inc_by(batch.skipped.types.len() as u64);
    }
    if batch.skipped.negative > 0 {
        state.metrics.pyroscope_skipped.with_label_values(&["negative"]).inc_by(batch.skipped.negative);
    }
    batch.check_times(ingest, now).map_err(|r| bad(format!("nothing stored: {r}")))?;
    let stored = batch.store(ingest, now);
    match stored.reason {
        // Limits (stacks, label values, apps) refuse some samples; the rest is kept, as every
        // input does. A request of which nothing could be kept is a 429 the client can see.
        Some(r) if stored.totals.iter().all(|t| *t == 0) => Err(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "resource_exhausted",
            message: format!("nothing stored: {r}"),
            outcome: "limit",
        }),
        _ => Ok(()),
    }
}

/// `format=jfr`: the recording (raw, or the `jfr` part) with the `labels` snapshot of its
/// context ids; every chunk read and checked before any is stored.
fn ingest_jfr(state: &AppState, q: &IngestQuery, parts: Option<&HashMap<String, &[u8]>>, body: &[u8], now: i64) -> Result<(), Failure> {
    let limit = state.settings.limits.max_body_size;
    let (recording, labels) = match parts {
        None => (body, None),
        Some(p) => (*p.get("jfr").ok_or_else(|| bad("the multipart body has no \"jfr\" part"))?, p.get("labels").copied()),
    };
    let recording = gunzipped(recording, "the jfr part", limit)?;
    let mut target = crate::input::jfr::Target::new(q.app.clone(), q.series.labels.clone());
    if let Some(labels) = labels {
        use prost::Message as _;
        let bytes = gunzipped(labels, "the labels part", limit)?;
        let snapshot = wire::LabelsSnapshot::decode(&*bytes).map_err(|e| bad(format!("the labels part is not a LabelsSnapshot: {e}")))?;
        for (id, own) in snapshot.resolve().map_err(bad)? {
            let merged = input::labels(
                q.series.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(own.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
            .map_err(bad)?;
            target.contexts.insert(id, merged);
        }
    }
    let ingest = &state.inputs.ingest;
    let bucket_ms = ingest.store.bucket_ms();
    // Every chunk parsed and read before anything is stored.
    let mut chunks = Vec::new();
    let mut at = 0usize;
    while at < recording.len() {
        let header = jfr::header(&recording[at..]).map_err(|e| bad(format!("the recording's chunk at byte {at}: {e}")))?;
        let end = usize::try_from(header.size).ok().and_then(|s| at.checked_add(s)).filter(|e| *e <= recording.len() && *e > at);
        let end = end.ok_or_else(|| {
            bad(format!("the recording's chunk at byte {at} claims {} bytes, {} are left", header.size, recording.len() - at))
        })?;
        chunks.push((at, end));
        at = end;
    }
    if chunks.is_empty() {
        return Err(bad("the recording is empty"));
    }
    let parsed: Vec<jfr::Chunk<'_>> = chunks
        .iter()
        .map(|(a, e)| jfr::Chunk::parse(&recording[*a..*e]).map_err(|err| bad(format!("the recording's chunk at byte {a}: {err}"))))
        .collect::<Result<_, _>>()?;
    // The request's sampleRate is the period of execution samples until the recording states
    // its own (async-profiler leaves its default interval out).
    let mut file = crate::input::jfr::FileState {
        execution_period_ns: q.series.sample_rate.map(|r| 1_000_000_000 / r),
        ..crate::input::jfr::FileState::default()
    };
    let mut prepared = Vec::with_capacity(parsed.len());
    for (chunk, (a, _)) in parsed.iter().zip(&chunks) {
        let p = crate::input::jfr::prepare(bucket_ms, chunk, &mut file)
            .map_err(|err| bad(format!("the recording's chunk at byte {a}: {err}")))?;
        if let (Some(first), Some(last)) = p.span() {
            for t in [first, last] {
                ingest.store.check_time(t, now).map_err(|r| bad(format!("nothing stored: a sample at {}: {r}", crate::rfc3339_ms(t))))?;
            }
        }
        prepared.push(p);
    }
    let mut w = ingest.writer(None);
    let mut stored = crate::input::jfr::Stored::default();
    for (p, chunk) in prepared.into_iter().zip(&parsed) {
        let s = p.store(&mut w, &target, chunk, now).map_err(|err| bad(format!("the recording: {err}")))?;
        stored.add(&s);
        state.metrics.jfr_chunks.with_label_values(&["pyroscope", "stored"]).inc();
    }
    drop(w);
    match stored.refused {
        Some(r) if stored.types.iter().all(|t| t.total == 0) => Err(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "resource_exhausted",
            message: format!("nothing stored: {r}"),
            outcome: "limit",
        }),
        _ => Ok(()),
    }
}

/// `POST /push.v1.PusherService/Push`: a connect-RPC `PushRequest`, protobuf or JSON.
pub async fn push(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Response, HttpError> {
    let now = now_ms();
    let fail = |f: Failure| f.answer(&state, "push", "pprof");
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let json = match content_type.split(';').next().unwrap_or("").trim() {
        "application/proto" | "application/protobuf" | "application/x-protobuf" => false,
        "application/json" => true,
        other => {
            return Err(fail(Failure {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ..bad(format!("Content-Type {other:?}: the Push API takes application/proto or application/json"))
            }))
        }
    };
    let limit = state.settings.limits.max_body_size;
    let permit = slot(&state).await.map_err(fail)?;
    let body =
        read_body(&headers, body, limit, state.settings.limits.request_timeout).await.map_err(|e| fail(Failure::from_body(e, limit)))?;
    let work = Arc::clone(&state);
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        push_body(&work, &body, json, now)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Failure { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", ..bad(format!("the push failed: {e}")) })
    });
    result.map_err(fail)?;
    stored(&state, "push", "pprof").await
}

fn push_body(state: &AppState, body: &[u8], json: bool, now: i64) -> Result<(), Failure> {
    use prost::Message as _;
    let limit = state.settings.limits.max_body_size;
    let request: wire::PushRequest = if json {
        serde_json::from_slice(body).map_err(|e| bad(format!("not a PushRequest in JSON: {e}")))?
    } else {
        wire::PushRequest::decode(body).map_err(|e| bad(format!("not a PushRequest (protobuf): {e}")))?
    };
    let mut batch = Batch::new(state.inputs.ingest.store.limits().max_stack_depth);
    for (i, s) in request.series.iter().enumerate() {
        let get = |name: &str| s.labels.iter().find(|l| l.name == name).map(|l| l.value.as_str());
        let app = get("service_name").filter(|a| !a.is_empty()).ok_or_else(|| bad(format!("series {i} has no service_name label")))?;
        let labels = input::labels(s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))).map_err(bad)?;
        let series = Series { app: app.to_string(), labels, time_ms: None, sample_rate: None, wall: get("__name__") == Some("wall") };
        for (j, raw) in s.samples.iter().enumerate() {
            let what = format!("series {i}, profile {j}");
            let bytes = gunzipped(&raw.raw_profile, &what, limit)?;
            let profile = pprof::decode(&bytes).map_err(|e| pprof_failure(state, &what, e))?;
            batch.add_pprof(&series, &profile, None, &HashMap::new(), now).map_err(|e| bad(format!("{what}: {e}")))?;
        }
    }
    store(state, &batch, now)
}
