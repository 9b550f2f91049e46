//! InfluxDB line protocol, following the InfluxDB *server* semantics (docs/protocols.md,
//! "InfluxDB line protocol").
//!
//! ```text
//! point = measurement { "," tag } " "+ field { "," field } [ " "+ timestamp ] { " " }
//! ```
//!
//! * Lines end at LF, except inside a quoted string field value; a CR before the LF is dropped
//!   (the servers reject it; every client means nothing by it). Leading blanks, blank lines and
//!   `#` comments are skipped.
//! * Outside string values a `\` protects the next byte only when that byte is a delimiter of
//!   its section (measurement: `,` and space; keys and tag values: `,`, `=` and space); any other
//!   backslash is literal. In string values only `\"` and `\\` are escapes.
//! * Field values: floats (`1`, `1.`, `.5`, `-1.5E+3`), integers (`1i`), unsigned (`1u`), the
//!   ten boolean spellings, and strings. `NaN`, `Inf`, `+1` are invalid.
//!
//! The parser works on `&[u8]`, borrows everything, and allocates only to unescape a key or a
//! value that actually holds an escape. Each line fails on its own with InfluxDB's error text.

use std::borrow::Cow;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, digit0, digit1, one_of};
use nom::combinator::{all_consuming, opt, recognize};
use nom::sequence::pair;
use nom::{IResult, Parser};

/// Why a line was refused. The message is InfluxDB's own wording; `reason` is the bounded
/// label of `stackd_lines_rejected_total{protocol="influx"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("missing measurement")]
    MissingMeasurement,
    #[error("missing tag key")]
    MissingTagKey,
    #[error("missing tag value")]
    MissingTagValue,
    #[error("invalid tag format")]
    InvalidTagFormat,
    #[error("duplicate tags")]
    DuplicateTags,
    #[error("missing fields")]
    MissingFields,
    #[error("missing field key")]
    MissingFieldKey,
    #[error("missing field value")]
    MissingFieldValue,
    #[error("invalid field format")]
    InvalidFieldFormat,
    #[error("invalid number")]
    InvalidNumber,
    #[error("invalid boolean")]
    InvalidBoolean,
    #[error("unbalanced quotes")]
    UnbalancedQuotes,
    #[error("bad timestamp")]
    BadTimestamp,
    #[error("invalid tag key \"time\"")]
    TimeTag,
    #[error("invalid field name \"time\"")]
    TimeField,
}

impl ErrorKind {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 16] = [
        Self::InvalidUtf8,
        Self::MissingMeasurement,
        Self::MissingTagKey,
        Self::MissingTagValue,
        Self::InvalidTagFormat,
        Self::DuplicateTags,
        Self::MissingFields,
        Self::MissingFieldKey,
        Self::MissingFieldValue,
        Self::InvalidFieldFormat,
        Self::InvalidNumber,
        Self::InvalidBoolean,
        Self::UnbalancedQuotes,
        Self::BadTimestamp,
        Self::TimeTag,
        Self::TimeField,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MissingMeasurement => "missing_measurement",
            Self::MissingTagKey | Self::MissingTagValue | Self::InvalidTagFormat => "invalid_tag",
            Self::DuplicateTags => "duplicate_tags",
            Self::MissingFields | Self::MissingFieldKey | Self::MissingFieldValue | Self::InvalidFieldFormat => "invalid_field",
            Self::InvalidNumber => "invalid_number",
            Self::InvalidBoolean => "invalid_boolean",
            Self::UnbalancedQuotes => "unbalanced_quotes",
            Self::BadTimestamp => "bad_timestamp",
            Self::TimeTag | Self::TimeField => "time_key",
        }
    }
}

/// A refused line: the line itself (for the error message) and what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineError<'a> {
    pub line: &'a [u8],
    pub kind: ErrorKind,
}

impl std::fmt::Display for LineError<'_> {
    /// `unable to parse '<line>': <reason>` as InfluxDB writes it; the line is cut at 256 bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MAX: usize = 256;
        let shown = String::from_utf8_lossy(&self.line[..self.line.len().min(MAX)]);
        let more = if self.line.len() > MAX { "…" } else { "" };
        write!(f, "unable to parse '{shown}{more}': {}", self.kind)
    }
}

/// A field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

impl FieldValue<'_> {
    /// The value as a number, whatever its numeric type (`3`, `3.0`, `3i`, `3u` are all 3).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F64(v) => Some(v),
            Self::I64(v) => Some(v as f64),
            Self::U64(v) => Some(v as f64),
            Self::Bool(_) | Self::Str(_) => None,
        }
    }
}

/// One point, validated; tags and fields are iterated from the raw text on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    measurement: &'a str,
    /// The measurement holds a backslash (which may or may not escape something).
    measurement_backslash: bool,
    /// Raw tag section without the leading `,` (empty when there are no tags).
    tags: &'a str,
    fields: &'a str,
    pub timestamp: Option<i64>,
}

impl<'a> Line<'a> {
    pub fn measurement(&self) -> Cow<'a, str> {
        if !self.measurement_backslash {
            return Cow::Borrowed(self.measurement);
        }
        unescape(self.measurement, b", ")
    }

    /// The raw, escaped tag section: identical tag sets have identical text from one agent.
    pub fn raw_tags(&self) -> &'a str {
        self.tags
    }

    /// `(key, value)` pairs in wire order, unescaped.
    pub fn tags(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + 'a {
        let mut rest = self.tags;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (r, (k, v)) = tag_pair(rest.as_bytes()).ok()?;
            let used = rest.len() - r.len();
            let (k, v) = (&rest[..k.len()], &rest[k.len() + 1..k.len() + 1 + v.len()]);
            rest = rest[used..].strip_prefix(',').unwrap_or("");
            Some((unescape(k, KEY_DELIMS), unescape(v, KEY_DELIMS)))
        })
    }

    pub fn tag(&self, key: &str) -> Option<Cow<'a, str>> {
        self.tags().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `(key, value)` pairs in wire order.
    pub fn fields(&self) -> impl Iterator<Item = (Cow<'a, str>, FieldValue<'a>)> + 'a {
        let mut rest = self.fields;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (r, (k, v)) = field_pair(rest.as_bytes()).ok()?;
            let key = unescape(&rest[..k.len()], KEY_DELIMS);
            let value_text = &rest[k.len() + 1..rest.len() - r.len()];
            let value = field_value(value_text, v);
            rest = rest[rest.len() - r.len()..].strip_prefix(',').unwrap_or("");
            Some((key, value))
        })
    }

    pub fn field(&self, key: &str) -> Option<FieldValue<'a>> {
        self.fields().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Parse a request body: every non-blank, non-comment line as a point or an error.
pub fn parse_body(body: &[u8]) -> impl Iterator<Item = Result<Line<'_>, LineError<'_>>> {
    // An agent sends the same tags on every line of a body: once a tag section has passed the
    // key checks, the same text need not be checked again.
    let mut checked_tags = "";
    split_lines(body).filter_map(move |raw| {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let start = line.iter().position(|b| !matches!(b, b' ' | b'\t' | 0)).unwrap_or(line.len());
        let line = &line[start..];
        if line.is_empty() || line[0] == b'#' {
            return None;
        }
        let parsed = parse_line_after(line, checked_tags);
        if let Ok(l) = &parsed {
            checked_tags = l.tags;
        }
        Some(parsed.map_err(|kind| LineError { line, kind }))
    })
}

/// Split a body into lines at LF, except for LFs inside a quoted string field value: a quote
/// opens a string only after the measurement and tags (after the first unescaped space) and
/// in value position (after an `=` of the field set).
pub fn split_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut i, mut in_fields, mut quoted, mut equals, mut commas) = (0, false, false, 0u32, 0u32);
        // Up to the first unescaped space only `\`, ` ` and LF matter: jump between them.
        while let Some(j) = memchr::memchr3(b'\\', b' ', b'\n', &rest[i..]) {
            i += j;
            match rest[i] {
                b'\\' if i + 1 < rest.len() && rest[i + 1] != b'\n' => i += 2,
                b'\\' => i += 1,
                b' ' => {
                    in_fields = true;
                    break;
                }
                _ => break,
            }
        }
        if !in_fields && i < rest.len() && rest[i] != b'\n' {
            i = rest.len();
        }
        while in_fields && i < rest.len() {
            let b = rest[i];
            if b == b'\\' && i + 1 < rest.len() && rest[i + 1] != b'\n' {
                i += 2;
                continue;
            }
            match b {
                b'\n' if !quoted => break,
                b'=' if !quoted => equals += 1,
                b',' if !quoted => commas += 1,
                b'"' if equals > commas => quoted = !quoted,
                _ => {}
            }
            i += 1;
        }
        let line = &rest[..i];
        rest = rest.get(i + 1..).unwrap_or(&[]);
        Some(line)
    })
}

/// Parse one line (no line terminator; leading blanks already skipped).
pub fn parse_line(input: &[u8]) -> Result<Line<'_>, ErrorKind> {
    parse_line_after(input, "")
}

/// [`parse_line`], where tags whose text is `checked_tags` (non-empty) are known to have passed
/// the key checks.
fn parse_line_after<'a>(input: &'a [u8], checked_tags: &str) -> Result<Line<'a>, ErrorKind> {
    // A profiler's line is a kilobyte: validated with SIMD (same verdict as `str::from_utf8`).
    let text = simdutf8::basic::from_utf8(input).map_err(|_| ErrorKind::InvalidUtf8)?;
    let (measurement, measurement_backslash) = measurement_of(input);
    let rest = &input[measurement.len()..];
    if measurement.is_empty() {
        return Err(ErrorKind::MissingMeasurement);
    }
    // Tags.
    let (rest, tags) = match rest.first() {
        Some(b',') => {
            let section = &rest[1..];
            let (after, ()) = tag_set(section).map_err(kind)?;
            (after, &section[..section.len() - after.len()])
        }
        _ => (rest, &rest[..0]),
    };
    // Fields.
    let (rest, _) = take_while::<_, _, Failure>(|b| b == b' ')(rest).map_err(kind)?;
    if rest.is_empty() {
        return Err(ErrorKind::MissingFields);
    }
    let (after, ()) = field_set(rest).map_err(kind)?;
    let fields = &rest[..rest.len() - after.len()];
    // Timestamp.
    let (_, timestamp) = all_consuming(timestamp_section).parse(after).map_err(kind)?;
    let line =
        Line { measurement: sub(text, measurement), measurement_backslash, tags: sub(text, tags), fields: sub(text, fields), timestamp };
    if line.tags.is_empty() || line.tags != checked_tags {
        check_tag_keys(&line)?;
    }
    if line.fields().any(|(k, _)| k == "time") {
        return Err(ErrorKind::TimeField);
    }
    Ok(line)
}

/// Duplicate tag keys and the reserved key `time` (InfluxDB drops such points), reported for
/// the first tag (in wire order) that is either. Clients send tags sorted by key, and then one
/// pass finds duplicates (they are neighbours); otherwise a set of the keys seen does, still in
/// linear time, whatever the number of tags.
fn check_tag_keys(line: &Line<'_>) -> Result<(), ErrorKind> {
    let mut previous: Option<Cow<'_, str>> = None;
    for (k, _) in line.tags() {
        if k == "time" {
            return Err(ErrorKind::TimeTag);
        }
        match &previous {
            Some(p) if *p == k => return Err(ErrorKind::DuplicateTags),
            Some(p) if *p > k => return check_unsorted_tag_keys(line),
            _ => {}
        }
        previous = Some(k);
    }
    Ok(())
}

fn check_unsorted_tag_keys(line: &Line<'_>) -> Result<(), ErrorKind> {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in line.tags() {
        if k == "time" {
            return Err(ErrorKind::TimeTag);
        }
        if !seen.insert(k) {
            return Err(ErrorKind::DuplicateTags);
        }
    }
    Ok(())
}

/// nom error type: the line-protocol error kind, fixed at the point of failure.
#[derive(Debug, PartialEq)]
struct Failure(ErrorKind);

impl<I> nom::error::ParseError<I> for Failure {
    fn from_error_kind(_: I, _: nom::error::ErrorKind) -> Self {
        Failure(ErrorKind::InvalidFieldFormat)
    }
    fn append(_: I, _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a [u8], T, Failure>;

fn fail<T>(kind: ErrorKind) -> Result<T, nom::Err<Failure>> {
    Err(nom::Err::Failure(Failure(kind)))
}

fn kind(e: nom::Err<Failure>) -> ErrorKind {
    match e {
        nom::Err::Error(Failure(k)) | nom::Err::Failure(Failure(k)) => k,
        nom::Err::Incomplete(_) => ErrorKind::InvalidFieldFormat,
    }
}

const KEY_DELIMS: &[u8] = b",= ";

/// The measurement: the longest run up to an unescaped `,` or space (a profiler's stack name
/// is a kilobyte: jump with memchr), and whether it holds a backslash at all.
fn measurement_of(input: &[u8]) -> (&[u8], bool) {
    let (mut i, mut backslash) = (0, false);
    while let Some(j) = memchr::memchr3(b',', b' ', b'\\', &input[i..]) {
        i += j;
        if input[i] != b'\\' {
            return (&input[..i], backslash);
        }
        backslash = true;
        i += if input.get(i + 1).is_some_and(|n| matches!(n, b',' | b' ')) { 2 } else { 1 };
    }
    (input, backslash)
}

/// The longest run up to an unescaped delimiter; `\x` is an escape only for delimiters.
fn escaped(delims: &'static [u8]) -> impl Fn(&[u8]) -> Res<'_, &[u8]> {
    move |input| {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'\\' && input.get(i + 1).is_some_and(|n| delims.contains(n)) {
                i += 2;
            } else if delims.contains(&b) {
                break;
            } else {
                i += 1;
            }
        }
        Ok((&input[i..], &input[..i]))
    }
}

/// `key=value`, both non-empty, value not followed by another `=`.
fn tag_pair(input: &[u8]) -> Res<'_, (&[u8], &[u8])> {
    let (rest, key) = escaped(KEY_DELIMS)(input)?;
    if key.is_empty() {
        return fail(ErrorKind::MissingTagKey);
    }
    let Some((b'=', rest)) = rest.split_first() else {
        return fail(ErrorKind::MissingTagValue);
    };
    let (rest, value) = escaped(KEY_DELIMS)(rest)?;
    if value.is_empty() {
        return fail(ErrorKind::MissingTagValue);
    }
    if rest.first() == Some(&b'=') {
        return fail(ErrorKind::InvalidTagFormat);
    }
    Ok((rest, (key, value)))
}

fn tag_set(mut input: &[u8]) -> Res<'_, ()> {
    loop {
        let (rest, _) = tag_pair(input)?;
        match rest.first() {
            Some(b',') => input = &rest[1..],
            Some(b' ') => return Ok((rest, ())),
            None => return fail(ErrorKind::MissingFields),
            Some(_) => return fail(ErrorKind::InvalidTagFormat),
        }
    }
}

/// The shape of a field value, decided while scanning it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ValueShape {
    Str,
    Plain,
}

/// `key=value`; returns the raw key and the value's shape. Validates the value fully.
fn field_pair(input: &[u8]) -> Res<'_, (&[u8], ValueShape)> {
    let (rest, key) = escaped(KEY_DELIMS)(input)?;
    if key.is_empty() {
        return fail(ErrorKind::MissingFieldKey);
    }
    let Some((b'=', rest)) = rest.split_first() else {
        return fail(ErrorKind::InvalidFieldFormat);
    };
    if rest.first() == Some(&b'"') {
        let (rest, _) = string_value(rest)?;
        return Ok((rest, (key, ValueShape::Str)));
    }
    let (rest, token) = take_while(|b| b != b',' && b != b' ')(rest)?;
    if token.is_empty() {
        return fail(ErrorKind::MissingFieldValue);
    }
    plain_value(token)?;
    Ok((rest, (key, ValueShape::Plain)))
}

fn field_set(mut input: &[u8]) -> Res<'_, ()> {
    loop {
        let (rest, _) = field_pair(input)?;
        match rest.first() {
            Some(b',') => input = &rest[1..],
            Some(b' ') | None => return Ok((rest, ())),
            Some(_) => return fail(ErrorKind::InvalidFieldFormat),
        }
    }
}

/// `"…"` with `\"` and `\\` escapes; a raw LF is part of the string.
fn string_value(input: &[u8]) -> Res<'_, &[u8]> {
    let body = &input[1..];
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Ok((&body[i + 1..], &body[..i])),
            _ => i += 1,
        }
    }
    fail(ErrorKind::UnbalancedQuotes)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Plain {
    Float,
    Int,
    Uint,
    Bool(bool),
}

fn plain_value(token: &[u8]) -> Result<Plain, nom::Err<Failure>> {
    if let Some(b) = boolean(token) {
        return Ok(Plain::Bool(b));
    }
    // Like InfluxDB: what cannot start a number was meant as a boolean.
    if !matches!(token[0], b'0'..=b'9' | b'-' | b'.') {
        return fail(ErrorKind::InvalidBoolean);
    }
    let number = match token.last() {
        Some(b'i') => all_consuming(pair(opt(char('-')), digit1)).parse(&token[..token.len() - 1]).map(|_| Plain::Int),
        Some(b'u') => all_consuming(digit1).parse(&token[..token.len() - 1]).map(|_| Plain::Uint),
        _ => all_consuming(float).parse(token).map(|_| Plain::Float),
    };
    let plain = number.or_else(|_: nom::Err<Failure>| fail(ErrorKind::InvalidNumber))?;
    // Range check: integers must fit their type.
    let text = std::str::from_utf8(&token[..token.len() - usize::from(plain != Plain::Float)]).unwrap_or("");
    let in_range = match plain {
        Plain::Int => text.parse::<i64>().is_ok(),
        Plain::Uint => text.parse::<u64>().is_ok(),
        _ => true,
    };
    if in_range {
        Ok(plain)
    } else {
        fail(ErrorKind::InvalidNumber)
    }
}

/// `[-] (digits [. [digits]] | . digits) [exp]`
fn float(input: &[u8]) -> Res<'_, &[u8]> {
    let mantissa = alt((recognize((digit1, opt((char('.'), digit0)))), recognize((char('.'), digit1))));
    let exponent = (one_of("eE"), opt(one_of("+-")), digit1);
    recognize((opt(char('-')), mantissa, opt(exponent))).parse(input)
}

fn boolean(token: &[u8]) -> Option<bool> {
    match token {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => Some(true),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => Some(false),
        _ => None,
    }
}

/// `[ " "+ [-]digits ] " "*` at the end of the line.
fn timestamp_section(input: &[u8]) -> Res<'_, Option<i64>> {
    let (rest, _) = take_while(|b| b == b' ')(input)?;
    if rest.is_empty() {
        return Ok((rest, None));
    }
    let parsed: Res<'_, &[u8]> = recognize(pair(opt(tag(&b"-"[..])), digit1)).parse(rest);
    let Ok((after, digits)) = parsed else {
        return fail(ErrorKind::BadTimestamp);
    };
    let (after, _) = take_while(|b| b == b' ')(after)?;
    if !after.is_empty() {
        return fail(ErrorKind::BadTimestamp);
    }
    match std::str::from_utf8(digits).ok().and_then(|d| d.parse::<i64>().ok()) {
        Some(ts) => Ok((after, Some(ts))),
        None => fail(ErrorKind::BadTimestamp),
    }
}

/// Turn a validated value text into a [`FieldValue`].
fn field_value<'a>(text: &'a str, shape: ValueShape) -> FieldValue<'a> {
    if shape == ValueShape::Str {
        let inner = &text[1..text.len() - 1];
        return FieldValue::Str(unescape_string(inner));
    }
    let bytes = text.as_bytes();
    match plain_value(bytes) {
        Ok(Plain::Bool(b)) => FieldValue::Bool(b),
        Ok(Plain::Int) => FieldValue::I64(text[..text.len() - 1].parse().unwrap_or_default()),
        Ok(Plain::Uint) => FieldValue::U64(text[..text.len() - 1].parse().unwrap_or_default()),
        Ok(Plain::Float) | Err(_) => FieldValue::F64(text.parse().unwrap_or_default()),
    }
}

/// The `&str` of `part`, a sub-slice of `text`'s bytes split at ASCII delimiters.
fn sub<'a>(text: &'a str, part: &[u8]) -> &'a str {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    &text[start..start + part.len()]
}

/// Remove the escapes of a key (or measurement) whose section delimiters are `delims`.
fn unescape<'a>(raw: &'a str, delims: &[u8]) -> Cow<'a, str> {
    // A profiler's measurement is a kilobyte: look for a backslash with the vectorised search.
    if memchr::memchr(b'\\', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1).is_some_and(|n| delims.contains(n)) {
            i += 1;
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII backslashes were removed before ASCII delimiters: still UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

fn unescape_string(raw: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\\', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
