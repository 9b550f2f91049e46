//! Grafana Pyroscope's ingest wires, as its clients send them: the application name with tags
//! of `/ingest` (`app.cpu{env=prod,region=eu}`), `multipart/form-data` bodies (the Java agent's
//! `jfr` and `labels` parts, the Go client's `profile`/`prev_profile`/`sample_type_config`), the
//! `LabelsSnapshot` protobuf of the Java agent, and the Push API's `PushRequest` (connect
//! protocol, protobuf or JSON). Pure parsing: what the names and labels mean is
//! [`crate::input::pyroscope`]'s business.

use std::collections::HashMap;

/// `push.v1.PushRequest` (`api/push/v1/push.proto` of grafana/pyroscope).
#[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub series: Vec<RawProfileSeries>,
}

/// `push.v1.RawProfileSeries`: a label set and its profiles (`annotations`, field 3, dropped).
#[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
pub struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    #[serde(default)]
    pub samples: Vec<RawSample>,
}

/// `types.v1.LabelPair`.
#[derive(Clone, PartialEq, Eq, prost::Message, serde::Deserialize)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub name: String,
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub value: String,
}

/// `push.v1.RawSample`: one pprof profile, gzip-compressed or not (in JSON, base64).
#[derive(Clone, PartialEq, Eq, prost::Message, serde::Deserialize)]
pub struct RawSample {
    #[prost(bytes = "vec", tag = "1")]
    #[serde(default, alias = "raw_profile", rename = "rawProfile", deserialize_with = "base64_bytes")]
    pub raw_profile: Vec<u8>,
    #[prost(string, tag = "2")]
    #[serde(default, rename = "ID")]
    pub id: String,
}

fn base64_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    use base64::Engine as _;
    let text: String = serde::Deserialize::deserialize(d)?;
    // protojson writes standard base64 and reads both alphabets, padded or not.
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|e| serde::de::Error::custom(format!("rawProfile is not base64: {e}")))
}

/// The Java agent's `LabelsSnapshot` (`agent/jfr_labels.proto` of grafana/pyroscope-java):
/// the labels of each context id its async-profiler wrote into the recording's events.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelsSnapshot {
    #[prost(map = "int64, message", tag = "1")]
    pub contexts: HashMap<i64, Context>,
    #[prost(map = "int64, string", tag = "2")]
    pub strings: HashMap<i64, String>,
}

/// One context: label name → value, both string ids of the snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Context {
    #[prost(map = "int64, int64", tag = "1")]
    pub labels: HashMap<i64, i64>,
}

impl LabelsSnapshot {
    /// Each context's labels as text, checked: every string id must be in the snapshot.
    pub fn resolve(&self) -> Result<HashMap<u64, Vec<(String, String)>>, String> {
        let text =
            |id: &i64| self.strings.get(id).ok_or_else(|| format!("the labels snapshot refers to string {id}, which it does not hold"));
        let mut out = HashMap::with_capacity(self.contexts.len());
        for (id, context) in &self.contexts {
            let mut labels = Vec::with_capacity(context.labels.len());
            for (k, v) in &context.labels {
                labels.push((text(k)?.clone(), text(v)?.clone()));
            }
            labels.sort();
            out.insert(*id as u64, labels);
        }
        Ok(out)
    }
}

/// An application name with tags: `name{key=value,…}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// Before the tags, as sent (a trailing `.cpu` and the like still on).
    pub name: String,
    /// In the order given.
    pub tags: Vec<(String, String)>,
}

/// Parse `/ingest`'s `name`: `my.app.cpu{env=staging,region=us-west-1}` (the tags optional,
/// values may be quoted). Errors say what is wrong.
pub fn parse_name(text: &str) -> Result<Name, String> {
    let (name, tags) = match text.find('{') {
        None => (text, None),
        Some(open) => {
            let inner = text[open + 1..]
                .strip_suffix('}')
                .ok_or_else(|| format!("the name {text:?} opens its tags with {{ but does not end with }}"))?;
            (&text[..open], Some(inner))
        }
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("the name {text:?} has no application name before its tags"));
    }
    if name.contains(['}', '=', ',']) {
        return Err(format!("the application name {name:?} holds one of }} = ,"));
    }
    let mut out = Name { name: name.to_string(), tags: Vec::new() };
    for pair in tags.into_iter().flat_map(|t| t.split(',')) {
        if pair.trim().is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("the tag {pair:?} of {text:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        if k.is_empty() || k.contains(['{', '}', '"']) || v.contains(['{', '}']) {
            return Err(format!("the tag {pair:?} of {text:?} is not key=value"));
        }
        if out.tags.iter().any(|(seen, _)| seen == k) {
            return Err(format!("the tag {k:?} is given twice in {text:?}"));
        }
        out.tags.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type, `None` for any other type.
pub fn boundary(content_type: &str) -> Option<Result<String, String>> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let found = params.filter_map(|p| p.split_once('=')).find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary")).map(|(_, v)| {
        let v = v.trim();
        v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string()
    });
    Some(match found {
        Some(b) if !b.is_empty() && b.len() <= 200 => Ok(b),
        _ => Err("a multipart/form-data body needs a boundary (of 1 to 200 characters) in its Content-Type".to_string()),
    })
}

/// Split a `multipart/form-data` body (RFC 7578) into its parts. Strict about structure (each
/// part has headers and a name; the body ends with the closing delimiter), lenient about
/// whitespace; no part is copied.
pub fn multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    let finder = memchr::memmem::Finder::new(between.as_bytes());
    // The first delimiter: at the start, or after a preamble and a CRLF.
    let mut at = if body.starts_with(delimiter.as_bytes()) {
        delimiter.len()
    } else {
        finder.find(body).ok_or("the multipart body holds no delimiter of its boundary")? + between.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // The rest of the delimiter line (transport padding), then the part's headers.
        let line_end = memchr::memmem::find(rest, b"\r\n").ok_or("a multipart delimiter line does not end")?;
        if !rest[..line_end].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err("a multipart delimiter is followed by text".to_string());
        }
        let start = at + line_end + 2;
        let head_len = memchr::memmem::find(&body[start..], b"\r\n\r\n")
            .map(|n| n + 4)
            .or_else(|| body[start..].starts_with(b"\r\n").then_some(2))
            .ok_or("a multipart part's headers do not end")?;
        let headers = std::str::from_utf8(&body[start..start + head_len]).map_err(|_| "a multipart part's headers are not UTF-8")?;
        let data_start = start + head_len;
        let data_len = finder.find(&body[data_start..]).ok_or("the multipart body ends inside a part (no closing delimiter)")?;
        let name = part_name(headers).ok_or("a multipart part has no Content-Disposition: form-data with a name")?;
        parts.push(Part { name, data: &body[data_start..data_start + data_len] });
        at = data_start + data_len + between.len();
        if parts.len() > 64 {
            return Err("a multipart body of more than 64 parts".to_string());
        }
    }
}

fn part_name(headers: &str) -> Option<String> {
    let disposition =
        headers.split("\r\n").filter_map(|h| h.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))?.1;
    let mut params = disposition.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    params.filter_map(|p| p.split_once('=')).find(|(k, _)| k.trim().eq_ignore_ascii_case("name")).map(|(_, v)| {
        let v = v.trim();
        v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn names_with_tags() {
        let n = parse_name("my.app.cpu{env=staging, region = us-west-1}").expect("valid");
        assert_eq!(n.name, "my.app.cpu");
        assert_eq!(n.tags, [("env".to_string(), "staging".to_string()), ("region".to_string(), "us-west-1".to_string())]);
        assert_eq!(parse_name("app").expect("valid"), Name { name: "app".into(), tags: vec![] });
        assert_eq!(parse_name("app{}").expect("valid").tags, []);
        assert_eq!(parse_name("app{k=\"v w\"}").expect("valid").tags, [("k".to_string(), "v w".to_string())]);
        for bad in ["app{env=x", "{env=x}", "app{env}", "app{=x}", "app{a=1,a=2}", "app{a={b}}", "", "a=b"] {
            assert!(parse_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn multipart_as_okhttp_writes_it() {
        let body = b"--b0\r\nContent-Disposition: form-data; name=\"jfr\"; filename=\"jfr\"\r\nContent-Length: 3\r\n\r\nJ\r\nF\r\n--b0\r\nContent-Disposition: form-data; name=\"labels\"; filename=\"labels\"\r\nContent-Type: application/x-protobuf\r\n\r\n\x01\x02\r\n--b0--\r\n";
        let parts = multipart(body, "b0").expect("valid");
        assert_eq!(parts, [Part { name: "jfr".into(), data: b"J\r\nF" }, Part { name: "labels".into(), data: b"\x01\x02" }]);
        assert_eq!(boundary("multipart/form-data; boundary=\"b0\"").expect("valid").expect("valid"), "b0");
        assert!(boundary("application/octet-stream").is_none());
        assert!(boundary("multipart/form-data").expect("valid").is_err());
        // Cut off, no name, no closing delimiter.
        assert!(multipart(&body[..40], "b0").is_err());
        assert!(multipart(b"--b0\r\nContent-Type: x\r\n\r\nx\r\n--b0--", "b0").is_err());
        assert!(multipart(b"--b0\r\nContent-Disposition: form-data; name=a\r\n\r\nxx", "b0").is_err());
        assert!(multipart(b"nothing here", "b0").is_err());
        // A preamble is allowed.
        let parts = multipart(b"preamble\r\n--b0\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b0--", "b0").expect("valid");
        assert_eq!(parts, [Part { name: "a".into(), data: b"x" }]);
    }

    #[test]
    fn labels_snapshot_resolves_string_ids() {
        let snapshot = LabelsSnapshot {
            contexts: [(1, Context { labels: [(1, 2)].into() })].into(),
            strings: [(1, "span".to_string()), (2, "checkout".to_string())].into(),
        };
        let decoded = LabelsSnapshot::decode(snapshot.encode_to_vec().as_slice()).expect("valid");
        assert_eq!(decoded.resolve().expect("valid")[&1], [("span".to_string(), "checkout".to_string())]);
        let dangling = LabelsSnapshot { contexts: [(1, Context { labels: [(1, 3)].into() })].into(), ..decoded };
        assert!(dangling.resolve().expect_err("refused").contains("string 3"));
    }

    #[test]
    fn push_request_as_json() {
        let json = r#"{"series":[{"labels":[{"name":"service_name","value":"x"}],"samples":[{"rawProfile":"AAEC","ID":"1"}]}]}"#;
        let r: PushRequest = serde_json::from_str(json).expect("valid");
        assert_eq!(r.series[0].labels[0].value, "x");
        assert_eq!(r.series[0].samples[0].raw_profile, [0, 1, 2]);
    }
}
