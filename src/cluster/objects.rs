//! Object storage for the nodes' segments: S3 (and S3-compatible stores: MinIO, Ceph, moto) over
//! its REST API with Signature Version 4, or a directory (`file://`, for one machine and tests).
//! Five operations, all a node needs: put, put-if-absent (the conditional write that makes an
//! upload idempotent and lets two nodes race for the same name safely), get, list and delete.
//!
//! Where and how, the way AWS clients take it: `s3://bucket/prefix`, and the environment
//! variables `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`; then path-style requests, as MinIO and
//! moto need), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`
//! (or `AWS_DEFAULT_REGION`, else `us-east-1`). Without an endpoint: AWS itself,
//! `https://<bucket>.s3.<region>.amazonaws.com`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use super::sigv4::{self, Credentials};

/// The largest object stackd reads back (a segment, an index): far above what it writes.
const MAX_OBJECT: usize = 1 << 30;

/// Why an object operation failed; [`ObjectError::reason`] is its metric label.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("cannot reach the object store at {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer from the object store within {0:?}")]
    Timeout(Duration),
    #[error("the object store answered HTTP {status} to {op} {key:?}: {message}")]
    Status { op: &'static str, key: String, status: u16, message: String },
    #[error("the object store's answer could not be read: {0}")]
    Protocol(String),
    #[error("{0}: {1}")]
    File(PathBuf, std::io::Error),
}

impl ObjectError {
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectError::Connect(..) => "connect",
            ObjectError::Timeout(_) => "timeout",
            ObjectError::Status { status: 401 | 403, .. } => "denied",
            ObjectError::Status { status: 404, .. } => "no_bucket",
            ObjectError::Status { .. } => "status",
            ObjectError::Protocol(_) => "protocol",
            ObjectError::File(..) => "file",
        }
    }
}

/// What a put-if-absent did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    Created,
    /// An object of that name was there already; it was left as it was.
    Exists,
}

/// One listed object: its key (below the store's prefix), size, and when it was written (Unix
/// ms, the store's clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// An object store: S3 or a directory, and what it is asked, once [`Objects::counted`].
#[derive(Clone, Debug)]
pub struct Objects {
    backend: Backend,
    counters: Option<Counters>,
}

#[derive(Clone, Debug)]
enum Backend {
    S3(Arc<S3>),
    Dir(PathBuf),
}

/// `stackd_object_store_requests_total{op}` and `stackd_object_store_bytes_total{direction}`.
#[derive(Clone, Debug)]
struct Counters {
    requests: prometheus::IntCounterVec,
    bytes: prometheus::IntCounterVec,
}

impl Objects {
    /// `s3://bucket[/prefix]` (with `env`, the process environment by default) or
    /// `file:///absolute/dir`.
    pub fn parse(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Objects, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!("{url:?}: a file:// store needs an absolute path (file:///var/lib/stackd-objects)"));
            }
            return Ok(Objects::dir(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!("{url:?}: give s3://bucket/prefix or file:///dir"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
            return Err(format!("{url:?}: {bucket:?} is not an S3 bucket name (lower-case letters, digits, '-', '.')"));
        }
        let prefix = prefix.trim_matches('/');
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (Some(access_key), Some(secret_key)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            return Err(format!("{url:?}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
        };
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        let (endpoint, path_style) = match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
            Some(e) => (Endpoint::parse(&e)?, true),
            None => (Endpoint::parse(&format!("https://{bucket}.s3.{region}.amazonaws.com"))?, false),
        };
        let s3 = S3 {
            endpoint,
            path_style,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            region,
            credentials: Credentials { access_key, secret_key, session_token: var("AWS_SESSION_TOKEN") },
            timeout: Duration::from_secs(30),
        };
        Ok(Objects { backend: Backend::S3(Arc::new(s3)), counters: None })
    }

    /// A directory as the store (`file://`).
    pub fn dir(path: PathBuf) -> Objects {
        Objects { backend: Backend::Dir(path), counters: None }
    }

    /// The same store, counting every request and byte in `metrics`.
    pub fn counted(self, metrics: &crate::metrics::Metrics) -> Objects {
        let counters = Counters { requests: metrics.object_requests.clone(), bytes: metrics.object_bytes.clone() };
        Objects { counters: Some(counters), ..self }
    }

    fn count(&self, op: &str, sent: usize, received: usize) {
        if let Some(c) = &self.counters {
            c.requests.with_label_values(&[op]).inc();
            c.bytes.with_label_values(&["sent"]).inc_by(sent as u64);
            c.bytes.with_label_values(&["received"]).inc_by(received as u64);
        }
    }

    /// Where, for logs and /health: the URL without credentials.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::S3(s) => format!("s3://{}/{} at {}", s.bucket, s.prefix.trim_end_matches('/'), s.endpoint.url),
            Backend::Dir(d) => format!("file://{}", d.display()),
        }
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectError> {
        self.count("put", body.len(), 0);
        match &self.backend {
            Backend::S3(s) => s.put(key, body, false).await.map(|_| ()),
            Backend::Dir(d) => dir_put(d, key, &body, false).map(|_| ()),
        }
    }

    /// Write `body` as `key` unless an object of that name exists (S3: `If-None-Match: *`).
    pub async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<Put, ObjectError> {
        self.count("put", body.len(), 0);
        match &self.backend {
            Backend::S3(s) => s.put(key, body, true).await,
            Backend::Dir(d) => dir_put(d, key, &body, true),
        }
    }

    /// The object, or `None` when there is none of that name.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectError> {
        let got = match &self.backend {
            Backend::S3(s) => s.get(key).await,
            Backend::Dir(d) => match std::fs::read(d.join(key)) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ObjectError::File(d.join(key), e)),
            },
        };
        self.count("get", 0, got.as_ref().ok().and_then(|b| b.as_ref()).map_or(0, |b| b.len()));
        got
    }

    /// Every object whose key starts with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, ObjectError> {
        self.list_after(prefix, None).await
    }

    /// Every object whose key starts with `prefix` and sorts after `after` (S3's
    /// `start-after`: only what is new since a key), sorted by key.
    pub async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<Listed>, ObjectError> {
        let mut all = match &self.backend {
            Backend::S3(s) => s.list(prefix, after, |received| self.count("list", 0, received)).await?,
            Backend::Dir(d) => {
                self.count("list", 0, 0);
                dir_list(d, prefix)?
            }
        };
        all.retain(|l| after.is_none_or(|a| l.key.as_str() > a));
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// The names one level below `prefix` (which ends in `/`), like `ls`: S3's common prefixes
    /// with the delimiter `/`. One request for any number of objects below them.
    pub async fn children(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let mut names = match &self.backend {
            Backend::S3(s) => s.children(prefix, |received| self.count("list", 0, received)).await?,
            Backend::Dir(d) => {
                self.count("list", 0, 0);
                match std::fs::read_dir(d.join(prefix)) {
                    Ok(entries) => entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(ObjectError::File(d.join(prefix), e)),
                }
            }
        };
        names.sort();
        Ok(names)
    }

    /// Delete `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.count("delete", 0, 0);
        match &self.backend {
            Backend::S3(s) => s.delete(key).await,
            Backend::Dir(d) => match std::fs::remove_file(d.join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(ObjectError::File(d.join(key), e)),
            },
        }
    }
}

/// A directory as a store: a put writes a temporary file and renames it into place (a reader
/// never sees half an object); put-if-absent links it, which fails when the name exists.
fn dir_put(root: &Path, key: &str, body: &[u8], if_absent: bool) -> Result<Put, ObjectError> {
    let path = root.join(key);
    let err = |e| ObjectError::File(path.clone(), e);
    std::fs::create_dir_all(path.parent().unwrap_or(root)).map_err(err)?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("object"), std::process::id()));
    std::fs::write(&tmp, body).map_err(|e| ObjectError::File(tmp.clone(), e))?;
    let done = if if_absent {
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(Put::Created),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Put::Exists),
            Err(e) => Err(err(e)),
        }
    } else {
        std::fs::rename(&tmp, &path).map(|()| Put::Created).map_err(err)
    };
    let _ = std::fs::remove_file(&tmp);
    done
}

fn dir_list(root: &Path, prefix: &str) -> Result<Vec<Listed>, ObjectError> {
    // Walk from the deepest directory the prefix names.
    let start = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    let mut out = Vec::new();
    let mut todo = vec![start];
    while let Some(dir) = todo.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ObjectError::File(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| ObjectError::File(dir.clone(), e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| ObjectError::File(path.clone(), e))?;
            if meta.is_dir() {
                todo.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
            let hidden = key.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
            if !hidden && key.starts_with(prefix) {
                let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                out.push(Listed { key, size: meta.len(), modified_ms: modified.map_or(0, |d| d.as_millis() as i64) });
            }
        }
    }
    Ok(out)
}

/// Where S3 is: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    tls: bool,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(s: &str) -> Result<Endpoint, String> {
        let url = s.trim().trim_end_matches('/');
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => return Err(format!("{s:?}: the S3 endpoint must be an http:// or https:// URL")),
        };
        if rest.contains('/') || rest.is_empty() {
            return Err(format!("{s:?}: give the S3 endpoint as scheme://host[:port], without a path"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| format!("{s:?}: {p:?} is not a port number"))?),
            _ => (rest, if tls { 443 } else { 80 }),
        };
        Ok(Endpoint { url: url.to_string(), tls, host: host.to_string(), port })
    }

    /// The `Host` header: the port only when it is not the scheme's.
    fn host_header(&self) -> String {
        if self.port == if self.tls { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An S3 bucket (and a prefix in it).
#[derive(Debug)]
pub struct S3 {
    endpoint: Endpoint,
    path_style: bool,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    region: String,
    credentials: Credentials,
    timeout: Duration,
}

/// One answer: status and body.
struct Answer {
    status: u16,
    body: Bytes,
}

impl S3 {
    /// The request path of `key` (or of the bucket, for an empty key), URI-encoded.
    fn path(&self, key: &str) -> String {
        let key = if key.is_empty() { String::new() } else { sigv4::uri_encode(&format!("{}{key}", self.prefix), false) };
        if self.path_style {
            format!("/{}/{key}", self.bucket)
        } else {
            format!("/{key}")
        }
    }

    async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<Put, ObjectError> {
        let extra: &[(&str, &str)] = if if_absent { &[("if-none-match", "*")] } else { &[] };
        let a = self.request("PUT", key, &[], extra, body).await?;
        match a.status {
            200..=299 => Ok(Put::Created),
            // 409: a conditional write racing another one for the same name.
            412 | 409 if if_absent => Ok(Put::Exists),
            s => Err(status_error("PUT", key, s, &a.body)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, ObjectError> {
        let a = self.request("GET", key, &[], &[], Bytes::new()).await?;
        match a.status {
            200 => Ok(Some(a.body)),
            404 if s3_code(&a.body).as_deref() != Some("NoSuchBucket") => Ok(None),
            s => Err(status_error("GET", key, s, &a.body)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let a = self.request("DELETE", key, &[], &[], Bytes::new()).await?;
        match a.status {
            200..=299 => Ok(()),
            404 if s3_code(&a.body).as_deref() != Some("NoSuchBucket") => Ok(()),
            s => Err(status_error("DELETE", key, s, &a.body)),
        }
    }

    /// ListObjectsV2, page after page.
    async fn list(&self, prefix: &str, after: Option<&str>, counted: impl Fn(usize)) -> Result<Vec<Listed>, ObjectError> {
        let mut out = Vec::new();
        self.pages(prefix, after, None, counted, |text| {
            for contents in elements(text, "Contents") {
                let key = element(contents, "Key").ok_or_else(|| ObjectError::Protocol("a listed object without <Key>".into()))?;
                let size = element(contents, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                let modified = element(contents, "LastModified").and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
                let modified_ms = modified.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64);
                if let Some(key) = key.strip_prefix(&self.prefix) {
                    out.push(Listed { key: key.to_string(), size, modified_ms });
                }
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn children(&self, prefix: &str, counted: impl Fn(usize)) -> Result<Vec<String>, ObjectError> {
        let mut out = Vec::new();
        let full = format!("{}{prefix}", self.prefix);
        self.pages(prefix, None, Some("/"), counted, |text| {
            for common in elements(text, "CommonPrefixes") {
                if let Some(name) =
                    element(common, "Prefix").and_then(|p| p.strip_prefix(&full).map(|n| n.trim_end_matches('/').to_string()))
                {
                    out.push(name);
                }
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// ListObjectsV2, page after page, each page's XML to `page`.
    async fn pages(
        &self,
        prefix: &str,
        after: Option<&str>,
        delimiter: Option<&str>,
        counted: impl Fn(usize),
        mut page: impl FnMut(&str) -> Result<(), ObjectError>,
    ) -> Result<(), ObjectError> {
        let full = format!("{}{prefix}", self.prefix);
        let after = after.map(|a| format!("{}{a}", self.prefix));
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", full.as_str())];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            } else if let Some(a) = &after {
                query.push(("start-after", a.as_str()));
            }
            if let Some(d) = delimiter {
                query.push(("delimiter", d));
            }
            let a = self.request("GET", "", &query, &[], Bytes::new()).await?;
            counted(a.body.len());
            if a.status != 200 {
                return Err(status_error("LIST", prefix, a.status, &a.body));
            }
            let text = std::str::from_utf8(&a.body).map_err(|_| ObjectError::Protocol("a listing that is not UTF-8".into()))?;
            page(text)?;
            token = (element(text, "IsTruncated").as_deref() == Some("true")).then(|| element(text, "NextContinuationToken")).flatten();
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// One signed request on a new connection, bounded by the timeout.
    async fn request(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ObjectError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let date = sigv4::amz_date(now);
        let hash = sigv4::payload_hash(&body);
        let host = self.endpoint.host_header();
        let path = self.path(key);
        let length = body.len().to_string();
        let mut headers: Vec<(&str, &str)> = vec![("host", &host), ("x-amz-content-sha256", &hash), ("x-amz-date", &date)];
        if let Some(t) = &self.credentials.session_token {
            headers.push(("x-amz-security-token", t));
        }
        headers.extend_from_slice(extra);
        let auth = sigv4::authorization(
            &sigv4::Request { method, path: &path, query, headers: &headers, payload_sha256: &hash },
            &self.credentials,
            &self.region,
            "s3",
            &date,
        );
        let qs = sigv4::canonical_query(query);
        let uri = if qs.is_empty() { path } else { format!("{path}?{qs}") };
        let mut req = hyper::Request::builder().method(method).uri(uri).header("authorization", auth).header("content-length", length);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| ObjectError::Protocol(e.to_string()))?;
        tokio::time::timeout(self.timeout, self.send(req)).await.map_err(|_| ObjectError::Timeout(self.timeout))?
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<Answer, ObjectError> {
        let addr = format!("{}:{}", self.endpoint.host, self.endpoint.port);
        let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| ObjectError::Connect(self.endpoint.url.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        if self.endpoint.tls {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())
                .map_err(|e| ObjectError::Protocol(format!("{}: {e}", self.endpoint.host)))?;
            let tls = tls_connector().connect(name, tcp).await.map_err(|e| ObjectError::Connect(self.endpoint.url.clone(), e))?;
            exchange(TokioIo::new(tls), req).await
        } else {
            exchange(TokioIo::new(tcp), req).await
        }
    }
}

async fn exchange<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<Answer, ObjectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| ObjectError::Protocol(e.to_string()))?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| ObjectError::Protocol(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_OBJECT)
        .collect()
        .await
        .map_err(|e| ObjectError::Protocol(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Answer { status, body })
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls;
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(Arc::clone(config))
}

fn status_error(op: &'static str, key: &str, status: u16, body: &[u8]) -> ObjectError {
    let text = String::from_utf8_lossy(body);
    let message = match (element(&text, "Code"), element(&text, "Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => text.chars().take(200).collect(),
    };
    ObjectError::Status { op, key: key.to_string(), status, message }
}

/// The S3 error code of an error answer (`<Error><Code>…`).
fn s3_code(body: &[u8]) -> Option<String> {
    element(&String::from_utf8_lossy(body), "Code")
}

/// The text of the first `<name>…</name>` in `xml`, entities decoded.
fn element(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).next().map(unescape)
}

/// The inner text of every `<name>…</name>` in `xml`, in order (S3's answers have no
/// attributes on these elements, and no nesting of the same name).
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn urls_and_environment() {
        let keys: &[(&str, &str)] = &[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let Ok(Objects { backend: Backend::S3(s), .. }) = Objects::parse("s3://profiles/stackd/", env(keys)) else { panic!("an S3 store") };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str(), s.region.as_str()), ("profiles", "stackd/", "us-east-1"));
        assert_eq!(s.endpoint.url, "https://profiles.s3.us-east-1.amazonaws.com");
        assert_eq!(s.path("segments/a b"), "/stackd/segments/a%20b");
        let with_endpoint: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let Ok(Objects { backend: Backend::S3(s), .. }) = Objects::parse("s3://profiles", env(with_endpoint)) else {
            panic!("an S3 store")
        };
        assert_eq!(
            (s.path("x"), s.path(""), s.endpoint.host_header(), s.region.as_str()),
            ("/profiles/x".into(), "/profiles/".into(), "127.0.0.1:5000".into(), "eu-west-1")
        );
        assert_eq!(
            Objects::parse("s3://profiles", env(&[])).expect_err("refused"),
            "\"s3://profiles\": no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
        assert_eq!(Objects::parse("gs://x", env(keys)).expect_err("refused"), "\"gs://x\": give s3://bucket/prefix or file:///dir");
        assert_eq!(
            Objects::parse("s3://Bad_Bucket", env(keys)).expect_err("refused"),
            "\"s3://Bad_Bucket\": \"Bad_Bucket\" is not an S3 bucket name (lower-case letters, digits, '-', '.')"
        );
        assert_eq!(
            Objects::parse("file://relative", env(&[])).expect_err("refused"),
            "\"file://relative\": a file:// store needs an absolute path (file:///var/lib/stackd-objects)"
        );
    }

    #[test]
    fn listing_xml() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b</Key><Size>3</Size></Contents>\
                   <Contents><Key>p/c</Key><Size>10</Size></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        let keys: Vec<(String, Option<String>)> =
            elements(xml, "Contents").map(|c| (element(c, "Key").unwrap_or_default(), element(c, "Size"))).collect();
        assert_eq!(keys, [("p/a&b".into(), Some("3".into())), ("p/c".into(), Some("10".into()))]);
        assert_eq!(element(xml, "NextContinuationToken").as_deref(), Some("t1"));
    }

    #[tokio::test]
    async fn a_directory_store() {
        let root = std::env::temp_dir().join(format!("stackd-objects-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Objects::dir(root.clone());
        assert_eq!(store.put_if_absent("segments/n1/1", Bytes::from_static(b"one")).await.expect("ok"), Put::Created);
        assert_eq!(store.put_if_absent("segments/n1/1", Bytes::from_static(b"two")).await.expect("ok"), Put::Exists);
        assert_eq!(store.get("segments/n1/1").await.expect("ok").as_deref(), Some(&b"one"[..]));
        store.put("segments/n2/1", Bytes::from_static(b"three")).await.expect("ok");
        store.put("index/x", Bytes::from_static(b"")).await.expect("ok");
        let listed = store.list("segments/").await.expect("ok");
        let now = crate::now_ms();
        assert!(listed.iter().all(|l| (now - 60_000..=now).contains(&l.modified_ms)), "written just now: {listed:?}");
        let sizes: Vec<(&str, u64)> = listed.iter().map(|l| (l.key.as_str(), l.size)).collect();
        assert_eq!(sizes, [("segments/n1/1", 3), ("segments/n2/1", 5)]);
        assert_eq!(store.list("segments/n2").await.expect("ok").len(), 1);
        assert_eq!(store.list_after("segments/", Some("segments/n1/1")).await.expect("ok")[0].key, "segments/n2/1");
        assert_eq!(store.children("segments/").await.expect("ok"), ["n1", "n2"]);
        assert_eq!(store.children("nothing/").await.expect("ok"), Vec::<String>::new());
        store.delete("segments/n1/1").await.expect("ok");
        store.delete("segments/n1/1").await.expect("ok");
        assert_eq!(store.get("segments/n1/1").await.expect("ok"), None);
        std::fs::remove_dir_all(&root).expect("ok");
    }
}
