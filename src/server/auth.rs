//! Optional authentication, off by default (stackd then accepts anything, like InfluxDB with
//! `auth-enabled = false`).
//!
//! * `--write-credentials`: who may write (`/write`, `/api/v2/write`, `/query`, `/import/…`, and
//!   Pyroscope's `/ingest`, `/pyroscope/ingest` and `/push.v1.PusherService/Push`; its clients'
//!   `X-Scope-OrgID` is accepted and ignored). Credentials are
//!   read the way InfluxDB 1.x reads them: `u`/`p` query parameters, HTTP Basic, or
//!   `Authorization: Token <user>:<password>` (also `Token <token>` and `Bearer <token>` for a
//!   configured token without a colon).
//! * `--read-credentials`: who may read flame graphs, `/apps` and the index (HTTP Basic, so a
//!   browser asks; or the same forms as above).
//! * `/metrics`, `/ping` and `/health` stay open unless `--auth-metrics` puts them behind the read
//!   credentials.
//!
//! Wrong or missing credentials get a 401 in the shape the client expects (InfluxDB 1.x JSON
//! with `WWW-Authenticate: Basic realm="InfluxDB"`, InfluxDB 2.x `unauthorized`, or plain text),
//! counted in `stackd_requests_rejected_total{reason="unauthorized"}`. Credentials are compared
//! in constant time and never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::http::{AppState, HttpError};

/// One accepted credential: `user:password`, or a bare token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(…)")
    }
}

impl Credential {
    /// Parse one entry of a credentials flag.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.starts_with(':') {
            return Err("a credential is user:password or a token, and the user may not be empty".into());
        }
        Ok(Credential(s.to_string()))
    }
}

/// The credentials in force.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    pub write: Vec<Credential>,
    pub read: Vec<Credential>,
    /// `/metrics`, `/ping` and `/health` need read credentials too.
    pub protect_metrics: bool,
}

/// Which credentials a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Write,
    Read,
    Open,
}

fn class(path: &str, auth: &Auth) -> Class {
    match path {
        "/write" | "/api/v2/write" | "/query" | "/import/flink" | "/import/folded" | "/import/jfr" | "/import/async-profiler-html" => {
            Class::Write
        }
        "/ingest" | "/pyroscope/ingest" | super::http::pyroscope::PUSH_PATH => Class::Write,
        "/metrics" | "/ping" | "/health" if !auth.protect_metrics => Class::Open,
        _ => Class::Read,
    }
}

/// What a request presented.
enum Presented {
    None,
    /// Present but unreadable (bad Basic encoding, unknown scheme).
    Malformed,
    Secret(String),
}

fn presented(req: &Request) -> Presented {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { return Presented::Malformed };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        return match scheme.to_ascii_lowercase().as_str() {
            "basic" => match base64::engine::general_purpose::STANDARD.decode(rest).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(pair) if pair.contains(':') => Presented::Secret(pair),
                _ => Presented::Malformed,
            },
            "token" | "bearer" if !rest.is_empty() => Presented::Secret(rest.to_string()),
            _ => Presented::Malformed,
        };
    }
    let query = req.uri().query().unwrap_or("");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let get = |k: &str| params.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    match (get("u"), get("p")) {
        (Some(u), Some(p)) => Presented::Secret(format!("{u}:{p}")),
        (None, None) => Presented::None,
        _ => Presented::Malformed,
    }
}

/// Equal in time independent of where the strings differ (but not of their lengths).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn allowed(secret: &str, list: &[Credential]) -> bool {
    // Every entry is compared, so the time says nothing about which one matched.
    list.iter().fold(false, |ok, c| constant_time_eq(secret.as_bytes(), c.0.as_bytes()) | ok)
}

/// Middleware: refuse requests without the credentials their route needs.
pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let auth = &state.settings.auth;
    let path = req.uri().path().to_string();
    let needed = match class(&path, auth) {
        Class::Write => &auth.write,
        Class::Read => &auth.read,
        Class::Open => return next.run(req).await,
    };
    if needed.is_empty() {
        return next.run(req).await;
    }
    let missing = match presented(&req) {
        Presented::Secret(s) if allowed(&s, needed) => return next.run(req).await,
        Presented::Secret(_) => false,
        Presented::None | Presented::Malformed => true,
    };
    state.metrics.request_rejected(crate::outcome::RequestReject::Unauthorized);
    let mut response = match path.as_str() {
        "/api/v2/write" => HttpError::V2(StatusCode::UNAUTHORIZED, "unauthorized", "unauthorized access".into()).into_response(),
        "/write" | "/query" => {
            let message = if missing { "unable to parse authentication credentials" } else { "authorization failed" };
            let mut r = HttpError::V1(StatusCode::UNAUTHORIZED, message.into()).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"InfluxDB\""));
            r
        }
        "/ingest" | "/pyroscope/ingest" | super::http::pyroscope::PUSH_PATH => HttpError::Connect(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            if missing { "authentication required (--write-credentials)" } else { "authorization failed" }.into(),
        )
        .into_response(),
        "/import/flink" | "/import/folded" | "/import/jfr" => {
            HttpError::Plain(StatusCode::UNAUTHORIZED, "authentication required (--write-credentials)".into()).into_response()
        }
        _ => HttpError::Plain(StatusCode::UNAUTHORIZED, "authentication required (--read-credentials)".into()).into_response(),
    };
    if !response.headers().contains_key(header::WWW_AUTHENTICATE) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"stackd\""));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, authorization: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder().uri(uri);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(axum::body::Body::empty()).expect("request")
    }

    fn secret(r: &Request) -> Option<String> {
        match presented(r) {
            Presented::Secret(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn credentials_are_read_like_influxdb() {
        assert_eq!(secret(&request("/write?db=x&u=alice&p=s3cret", None)).as_deref(), Some("alice:s3cret"));
        // "alice:s3cret" in Basic.
        assert_eq!(secret(&request("/write", Some("Basic YWxpY2U6czNjcmV0"))).as_deref(), Some("alice:s3cret"));
        assert_eq!(secret(&request("/write", Some("Token alice:s3cret"))).as_deref(), Some("alice:s3cret"));
        assert_eq!(secret(&request("/write", Some("token abc"))).as_deref(), Some("abc"));
        assert_eq!(secret(&request("/write", Some("Bearer abc"))).as_deref(), Some("abc"));
        assert!(matches!(presented(&request("/write", Some("Basic !!!"))), Presented::Malformed));
        assert!(matches!(presented(&request("/write?u=alice", None)), Presented::Malformed));
        assert!(matches!(presented(&request("/write", None)), Presented::None));
    }

    #[test]
    fn routes_and_matching() {
        let auth = Auth { protect_metrics: false, ..Auth::default() };
        assert_eq!(class("/write", &auth), Class::Write);
        assert_eq!(class("/import/flink", &auth), Class::Write);
        assert_eq!(class("/import/folded", &auth), Class::Write);
        assert_eq!(class("/flink", &auth), Class::Read);
        assert_eq!(class("/query", &auth), Class::Write);
        assert_eq!(class("/flamegraph/a.svg", &auth), Class::Read);
        assert_eq!(class("/metrics", &auth), Class::Open);
        assert_eq!(class("/metrics", &Auth { protect_metrics: true, ..Auth::default() }), Class::Read);
        let list = [Credential::parse("alice:s3cret").expect("ok"), Credential::parse("tok").expect("ok")];
        assert!(allowed("alice:s3cret", &list) && allowed("tok", &list));
        assert!(!allowed("alice:s3cre", &list) && !allowed("alice:s3cret2", &list) && !allowed("", &list));
        assert!(Credential::parse(":x").is_err() && Credential::parse("").is_err());
        assert_eq!(format!("{:?}", list[0]), "Credential(…)", "never printed");
    }
}
