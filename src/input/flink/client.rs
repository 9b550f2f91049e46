//! A small HTTP/1.1 client for a JobManager's REST API: GET, and POST with a JSON body (to start
//! a profiling run), over one keep-alive connection, every request bounded in time and body size.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// A JobManager's REST address, as given to `--flink-rest`: `http://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// As given, without a trailing `/`: the `endpoint` label and the status key.
    pub url: String,
    authority: String,
    prefix: String,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = s.trim().trim_end_matches('/');
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                format!("{s:?}: https is not supported; give the JobManager's plain http REST address (rest.port, 8081 by default)")
            } else {
                format!("{s:?}: give the JobManager's REST address as http://host:port")
            }
        })?;
        let (authority, prefix) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(format!("{s:?}: give the JobManager's REST address as http://host:port"));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            let (_, port) = authority.rsplit_once(':').unwrap_or_default();
            port.parse::<u16>().map_err(|_| format!("{s:?}: port {port:?} is not a port number"))?;
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint { url: url.to_string(), authority, prefix: prefix.to_string() })
    }
}

/// Why a request failed; [`FetchError::reason`] is the `reason` label of
/// `stackd_flink_poll_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?} (--flink-timeout)")]
    Timeout(Duration),
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("HTTP error: {0}")]
    Http(String),
}

impl FetchError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout(_) => "timeout",
            Self::Status(..) => "http_status",
            Self::TooLarge(_) => "too_large",
            Self::Http(_) => "http_error",
        }
    }
}

/// Requests to one endpoint over one connection (opened when needed, again after an error).
#[derive(Debug)]
pub struct Client {
    endpoint: Endpoint,
    timeout: Duration,
    max_body: usize,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(endpoint: Endpoint, timeout: Duration, max_body: usize) -> Self {
        Client { endpoint, timeout, max_body, conn: None }
    }

    /// `GET <prefix><path>`: the body of a 200 answer. Connecting, sending and reading the whole
    /// body take at most the timeout together.
    pub async fn get(&mut self, path: &str) -> Result<Bytes, FetchError> {
        let (status, body) = self.send(hyper::Method::GET, path, None).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(FetchError::Status(status.as_u16(), text));
        }
        Ok(body)
    }

    /// A request and its whole answer, whatever its status (the body bounded as every body).
    /// `json`: a POST with that body, else a GET. Connecting, sending and reading the whole
    /// body take at most the timeout together.
    pub async fn send(&mut self, method: hyper::Method, path: &str, json: Option<Bytes>) -> Result<(hyper::StatusCode, Bytes), FetchError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send_unbounded(method, path, json)).await {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                Err(FetchError::Timeout(timeout))
            }
        }
    }

    async fn send_unbounded(
        &mut self,
        method: hyper::Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<(hyper::StatusCode, Bytes), FetchError> {
        let reusable = match self.conn.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let reused = reusable.is_some();
        let mut sender = match reusable {
            Some(s) => s,
            None => self.connect().await?,
        };
        let response = match sender.send_request(self.request(&method, path, json.clone())?).await {
            Ok(r) => r,
            // A kept-alive connection the server closed meanwhile: once more on a new one. (A POST
            // starting a profiling run sent twice is refused by Flink, which runs one at a time.)
            Err(_) if reused => {
                sender = self.connect().await?;
                sender.send_request(self.request(&method, path, json)?).await.map_err(|e| FetchError::Http(e.to_string()))?
            }
            Err(e) => return Err(FetchError::Http(e.to_string())),
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), self.max_body).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FetchError::TooLarge(self.max_body)
            } else {
                FetchError::Http(e.to_string())
            }
        })?;
        self.conn = Some(sender);
        Ok((status, body.to_bytes()))
    }

    fn request(&self, method: &hyper::Method, path: &str, json: Option<Bytes>) -> Result<hyper::Request<Full<Bytes>>, FetchError> {
        let mut r = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.endpoint.prefix))
            .header(hyper::header::HOST, &self.endpoint.authority)
            .header(hyper::header::USER_AGENT, concat!("stackd/", env!("CARGO_PKG_VERSION")))
            .header(hyper::header::ACCEPT, "application/json");
        if json.is_some() {
            r = r.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        r.body(Full::new(json.unwrap_or_default())).map_err(|e| FetchError::Http(e.to_string()))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, FetchError> {
        let tcp = tokio::net::TcpStream::connect(&self.endpoint.authority).await.map_err(FetchError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| FetchError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://jm.example:8081/").expect("valid");
        assert_eq!((e.url.as_str(), e.authority.as_str(), e.prefix.as_str()), ("http://jm.example:8081", "jm.example:8081", ""));
        let e = Endpoint::parse("http://proxy/flink/jm-1").expect("valid");
        assert_eq!((e.authority.as_str(), e.prefix.as_str()), ("proxy:80", "/flink/jm-1"));
        let e = Endpoint::parse("http://[::1]:8081").expect("valid");
        assert_eq!(e.authority, "[::1]:8081");
        assert!(Endpoint::parse("https://jm:8081").expect_err("tls").contains("https is not supported"));
        assert!(Endpoint::parse("jm:8081").expect_err("scheme").contains("http://host:port"));
        assert!(Endpoint::parse("http://jm:80x").expect_err("port").contains("not a port number"));
    }
}
