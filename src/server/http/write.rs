//! The InfluxDB-compatible write API: `/write` (1.x), `/api/v2/write` (2.x), `/ping`, and the
//! few `/query` statements wrapper scripts send before writing. Bodies may be gzip; their lines
//! go to the line-protocol inputs ([`Inputs::line_protocol`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AppState, HttpError, INFLUX_VERSION};
use crate::ingest::truncated;
use crate::input::{Inputs, Precision, WriteOutcome};
use crate::now_ms;
use crate::outcome::{Limit, RequestReject};

pub async fn ping(Query(params): Query<BTreeMap<String, String>>) -> Response {
    match params.get("verbose").map(String::as_str) {
        Some(v) if !v.is_empty() && v != "0" && v != "false" => Json(serde_json::json!({ "version": INFLUX_VERSION })).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    TooLarge,
    BadGzip(String),
    /// A `Content-Encoding` other than identity and gzip: 415.
    Unsupported(String),
    /// The body did not arrive within `--http-request-timeout`: 408.
    TimedOut,
    Read(String),
}

impl BodyError {
    fn reason(&self) -> RequestReject {
        match self {
            BodyError::TooLarge => RequestReject::TooLarge,
            BodyError::BadGzip(_) => RequestReject::BadGzip,
            BodyError::Unsupported(_) => RequestReject::UnsupportedEncoding,
            BodyError::TimedOut => RequestReject::BodyTimeout,
            BodyError::Read(_) => RequestReject::BodyReadError,
        }
    }

    /// The response, in the write API's own error shape (`v2` for `/api/v2/write`).
    pub(super) fn into_http(self, state: &AppState, v2: bool) -> HttpError {
        state.metrics.request_rejected(self.reason());
        let (status, code, message) = match self {
            BodyError::TooLarge => {
                state.metrics.limit_hit(Limit::Body);
                let message = if v2 {
                    format!("body exceeds {} bytes", state.settings.limits.max_body_size)
                } else {
                    "Request Entity Too Large".into()
                };
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
pub(super) async fn read_body(headers: &HeaderMap, body: Body, limit: usize, timeout: std::time::Duration) -> Result<Bytes, BodyError> {
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(BodyError::Unsupported(format!(
                "unsupported Content-Encoding {:?}: send the body as it is or gzip-compressed",
                truncated(other, 64)
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

pub async fn write_v1(
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
    let body = read_body(&headers, body, state.settings.limits.max_body_size, state.settings.limits.request_timeout)
        .await
        .map_err(|e| e.into_http(&state, false))?;
    let outcome = ingest_off_thread(Arc::clone(&state.inputs), body, precision).await;
    durable(&state, &outcome).await.map_err(|e| HttpError::V1(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    match outcome {
        WriteOutcome { rejected: 0, .. } => Ok(StatusCode::NO_CONTENT),
        WriteOutcome { written: 0, errors, rejected, .. } => Err(bad(error_list(&errors, rejected))),
        WriteOutcome { errors, rejected, .. } => Err(bad(format!("partial write: {} dropped=0", error_list(&errors, rejected)))),
    }
}

/// With `--sync-writes`, wait until what was written is on disk.
async fn durable(state: &AppState, outcome: &WriteOutcome) -> Result<(), String> {
    match &state.settings.flusher {
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

/// Bodies up to this size are parsed and stored on the connection's own thread (256 KiB takes
/// about half a millisecond: `cargo bench --bench parse -- stackd_ingest`); larger ones on the
/// blocking pool, so that a 25 MB body does not hold up the thread's other connections.
const INLINE_BODY: usize = 256 * 1024;

/// Parse and store a body, on the blocking pool when it is large.
async fn ingest_off_thread(inputs: Arc<Inputs>, body: Bytes, precision: Precision) -> WriteOutcome {
    let now = now_ms();
    if body.len() < INLINE_BODY {
        return inputs.line_protocol(&body, precision, now);
    }
    tokio::task::spawn_blocking(move || inputs.line_protocol(&body, precision, now)).await.unwrap_or_else(|e| WriteOutcome {
        written: 0,
        rejected: 1,
        errors: vec![format!("internal error: {e}")],
    })
}

pub async fn write_v2(
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
    let body = read_body(&headers, body, state.settings.limits.max_body_size, state.settings.limits.request_timeout)
        .await
        .map_err(|e| e.into_http(&state, true))?;
    let outcome = ingest_off_thread(Arc::clone(&state.inputs), body, precision).await;
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

/// Statements one `/query` request may hold (wrapper scripts send one to three).
pub const MAX_STATEMENTS: usize = 32;
/// Database names kept for `SHOW DATABASES` (writes need none of them to exist).
pub const MAX_DATABASES: usize = 256;
/// The longest database name kept, bytes.
pub const MAX_DATABASE_NAME: usize = 255;

/// The few InfluxQL statements wrapper scripts send before writing. The request is bounded like
/// a write (`--max-body-size`, gzip allowed), and so are its statements ([`MAX_STATEMENTS`]) and
/// the names it keeps ([`MAX_DATABASES`], [`MAX_DATABASE_NAME`]), so that its answer is too.
pub async fn query(
    State(state): State<Arc<AppState>>,
    method: Method,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut q = params.get("q").cloned();
    if q.is_none() && method == Method::POST {
        let body = match read_body(&headers, body, state.settings.limits.max_body_size, state.settings.limits.request_timeout).await {
            Ok(body) => body,
            Err(e) => return e.into_http(&state, false).into_response(),
        };
        q = serde_urlencoded::from_bytes::<BTreeMap<String, String>>(&body).ok().and_then(|f| f.get("q").cloned());
    }
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return HttpError::V1(StatusCode::BAD_REQUEST, "missing required parameter \"q\"".into()).into_response();
    };
    let statements: Vec<&str> = q.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    if statements.len() > MAX_STATEMENTS {
        state.metrics.request_rejected(RequestReject::QueryTooLong);
        state.metrics.limit_hit(Limit::Query);
        return HttpError::V1(
            StatusCode::BAD_REQUEST,
            format!("{} statements in one request; stackd answers at most {MAX_STATEMENTS}", statements.len()),
        )
        .into_response();
    }
    let results: Vec<serde_json::Value> = statements
        .into_iter()
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
        let words: Vec<&str> = stmt.split_whitespace().take(4).collect();
        let upper: Vec<String> = words.iter().take(3).map(|w| w.to_ascii_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        let mut dbs = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        match upper.as_slice() {
            ["CREATE", "DATABASE", ..] if words.len() >= 3 => {
                let name = unquote_ident(words[2]);
                if dbs.contains(&name) {
                    return serde_json::json!({});
                }
                if name.len() > MAX_DATABASE_NAME {
                    self.metrics.limit_hit(Limit::Query);
                    return serde_json::json!({ "error": format!("database name longer than {MAX_DATABASE_NAME} bytes") });
                }
                if dbs.len() >= MAX_DATABASES {
                    self.metrics.limit_hit(Limit::Query);
                    return serde_json::json!({ "error": format!("stackd keeps at most {MAX_DATABASES} database names (writes need none of them): drop one first") });
                }
                dbs.insert(name);
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
    let cut = truncated(s, max);
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
}
