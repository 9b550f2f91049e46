//! StatsD datagrams: `name:value|type[|@rate][|#tags]`, several lines per datagram.
//!
//! The grammar follows Etsy statsd and `prometheus/statsd_exporter`:
//!
//! * a datagram is split on LF; a CR before the LF is dropped; empty lines are skipped;
//! * a line is split once on `:` into the name and the samples; without DogStatsD tags the
//!   samples are split on `:` again (`foo:1|c:2|c` is two samples); when the first
//!   `|`-component holds `:` the values are DogStatsD packed (`t:0.5:120|ms`, timers only);
//! * tags may be written DogStatsD style (`|#k:v,k2`), InfluxDB style (`name,k=v:…`),
//!   Librato style (`name#k=v:…`) or SignalFx style (`na[k=v]me:…`); mixing name tags with
//!   DogStatsD tags is rejected.
//!
//! Parsing borrows from the datagram, parses each value once, and allocates only for a line with
//! several samples; each line fails on its own, so one bad line never loses the good lines
//! beside it. The accepted grammar is described in `docs/protocols.md` ("statsd").

use std::borrow::Cow;
use std::fmt;

/// The statsd metric types stackd understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl MetricType {
    fn from_bytes(b: &str) -> Option<Self> {
        Some(match b {
            "c" => Self::Counter,
            "g" => Self::Gauge,
            "ms" => Self::Timer,
            "h" => Self::Histogram,
            "d" => Self::Distribution,
            "s" => Self::Set,
            _ => return None,
        })
    }
}

/// Why a line was refused. The `reason` strings are the bounded label values of
/// `stackd_lines_rejected_total{protocol="statsd"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("missing ':' between name and value")]
    MissingValue,
    #[error("empty metric name")]
    EmptyName,
    #[error("missing '|type' after the value")]
    MissingType,
    #[error("empty value")]
    EmptyValue,
    #[error("empty '|' component")]
    EmptyComponent,
    #[error("unknown metric type")]
    BadType,
    #[error("value is not a finite number")]
    BadValue,
    #[error("sample rate must be '@' and a number in (0, 1]")]
    BadRate,
    #[error("negative timer value")]
    NegativeTimer,
    #[error("packed values are only allowed for ms, h and d")]
    PackedNotTimer,
    #[error("name tags and DogStatsD tags mixed on one line")]
    MixedTags,
    #[error("malformed tag section")]
    BadTags,
    #[error("more than 6 '|' components")]
    TooManyComponents,
}

impl LineError {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 14] = [
        Self::InvalidUtf8,
        Self::MissingValue,
        Self::EmptyName,
        Self::MissingType,
        Self::EmptyValue,
        Self::EmptyComponent,
        Self::BadType,
        Self::BadValue,
        Self::BadRate,
        Self::NegativeTimer,
        Self::PackedNotTimer,
        Self::MixedTags,
        Self::BadTags,
        Self::TooManyComponents,
    ];

    /// Bounded label value for the rejected-lines counter.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MissingValue => "missing_value",
            Self::EmptyName => "empty_name",
            Self::MissingType => "missing_type",
            Self::EmptyValue => "empty_value",
            Self::EmptyComponent => "empty_component",
            Self::BadType => "bad_type",
            Self::BadValue => "bad_value",
            Self::BadRate => "bad_rate",
            Self::NegativeTimer => "negative_timer",
            Self::PackedNotTimer => "packed_not_timer",
            Self::MixedTags => "mixed_tags",
            Self::BadTags => "bad_tags",
            Self::TooManyComponents => "too_many_components",
        }
    }
}

/// A tag list in one of the four supported styles, kept as raw text and iterated lazily.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tags<'a> {
    raw: &'a str,
    /// `:` for DogStatsD, `=` for the name-tag styles.
    kv_sep: u8,
}

impl<'a> Tags<'a> {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The raw text of the tag section, for hashing.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// `(key, value)` pairs; a valueless DogStatsD tag has an empty value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let sep = self.kv_sep as char;
        self.raw.split(',').map(str::trim).filter(|t| !t.is_empty()).map(move |t| {
            let t = t.strip_prefix('#').unwrap_or(t);
            t.split_once(sep).unwrap_or((t, ""))
        })
    }
}

/// One sample of a line, parsed once (when the line was).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    pub kind: MetricType,
    /// The value as it was written.
    pub value: &'a str,
    /// The value as a number: finite, never NaN. `None` for sets, whose values are not numbers.
    pub number: Option<f64>,
    /// A gauge written `+N` / `-N`: it changes the current value instead of setting it.
    pub relative: bool,
    /// The value was written with a decimal comma (`1,23`, as a JVM formats numbers in a German
    /// locale): `number` holds it read as `1.23`. Only inputs whose senders do that accept it.
    pub decimal_comma: bool,
    /// Sample rate in (0, 1]; 1 when absent.
    pub rate: f64,
}

/// One parsed line: a metric name, its tags, and one or more samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    /// Borrowed, except for SignalFx tags in mid-name (`foo.[k=v]bar` → `foo.bar`).
    pub name: Cow<'a, str>,
    pub tags: Tags<'a>,
    samples: Samples<'a>,
}

/// The samples of a line: most lines have one, which needs no allocation.
#[derive(Clone, Debug, PartialEq)]
enum Samples<'a> {
    One(Sample<'a>),
    Many(Vec<Sample<'a>>),
}

impl<'a> Samples<'a> {
    fn push(slot: &mut Option<Samples<'a>>, sample: Sample<'a>) {
        *slot = Some(match slot.take() {
            None => Samples::One(sample),
            Some(Samples::One(first)) => Samples::Many(vec![first, sample]),
            Some(Samples::Many(mut all)) => {
                all.push(sample);
                Samples::Many(all)
            }
        });
    }
}

impl<'a> Line<'a> {
    /// The samples of the line, in the order written.
    pub fn samples(&self) -> impl Iterator<Item = Sample<'a>> + '_ {
        let all: &[Sample<'a>] = match &self.samples {
            Samples::One(s) => std::slice::from_ref(s),
            Samples::Many(v) => v,
        };
        all.iter().copied()
    }
}

/// Iterate over the lines of a datagram. Empty lines are skipped, a trailing CR is dropped.
pub fn parse_datagram(datagram: &[u8]) -> impl Iterator<Item = Result<Line<'_>, LineError>> {
    let mut rest = Some(datagram);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        })
    })
    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    .filter(|l| !l.is_empty())
    .map(|l| std::str::from_utf8(l).map_err(|_| LineError::InvalidUtf8).and_then(parse_line))
}

/// Parse one line (no LF).
pub fn parse_line(line: &str) -> Result<Line<'_>, LineError> {
    // Names are long (a profiler stack is a kilobyte): every scan over them is a memchr.
    let colon = memchr::memchr(b':', line.as_bytes()).ok_or(LineError::MissingValue)?;
    let (name_part, rest) = (&line[..colon], &line[colon + 1..]);
    let (name, name_tags) = split_name_tags(name_part)?;
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    let (samples, dog_tags) = match memchr::memmem::find(rest.as_bytes(), b"|#") {
        Some(i) => {
            // DogStatsD: `|#tags` may be followed by `|c:<container>` and `|T<timestamp>`.
            let after = &rest[i + 2..];
            let (tags, extensions) = after.split_once('|').unwrap_or((after, ""));
            if !extensions.is_empty() {
                extensions.split('|').try_for_each(check_extension)?;
            }
            (&rest[..i], Some(tags))
        }
        None => (rest, None),
    };
    let tags = match (name_tags, dog_tags) {
        (Some(_), Some(_)) => return Err(LineError::MixedTags),
        (Some(t), None) => t,
        (None, Some(raw)) => Tags { raw, kv_sep: b':' },
        (None, None) => Tags::default(),
    };
    // `v1:v2|type…` (the first `|`-component holds `:`): DogStatsD packed values sharing one
    // suffix. Else with DogStatsD tags one sample; else samples separated by `:`.
    let first_component = samples.split('|').next().unwrap_or("");
    let mut parsed = None;
    if first_component.contains(':') {
        let suffix = samples[first_component.len()..].strip_prefix('|').ok_or(LineError::MissingType)?;
        for value in first_component.split(':') {
            let s = parse_sample_parts(value, suffix)?;
            if !matches!(s.kind, MetricType::Timer | MetricType::Histogram | MetricType::Distribution) {
                return Err(LineError::PackedNotTimer);
            }
            Samples::push(&mut parsed, s);
        }
    } else if dog_tags.is_some() {
        Samples::push(&mut parsed, split_sample(samples)?);
    } else {
        for part in samples.split(':') {
            Samples::push(&mut parsed, split_sample(part)?);
        }
    }
    let samples = parsed.ok_or(LineError::EmptyValue)?;
    Ok(Line { name, tags, samples })
}

/// Split the name into the bare name and InfluxDB / Librato / SignalFx style tags.
fn split_name_tags(name: &str) -> Result<(Cow<'_, str>, Option<Tags<'_>>), LineError> {
    // InfluxDB (`name,k=v`), Librato (`name#k=v,k2=v`) or SignalFx (`na[k=v]me`): whichever
    // delimiter comes first.
    let Some(open) = memchr::memchr3(b',', b'#', b'[', name.as_bytes()) else {
        return Ok((Cow::Borrowed(name), None));
    };
    if name.as_bytes()[open] != b'[' {
        return Ok((Cow::Borrowed(&name[..open]), Some(Tags { raw: &name[open + 1..], kv_sep: b'=' })));
    }
    // SignalFx: the bracketed part is cut out of the name.
    let close = name[open..].find(']').ok_or(LineError::BadTags)? + open;
    let tags = Tags { raw: &name[open + 1..close], kv_sep: b'=' };
    let (before, after) = (&name[..open], &name[close + 1..]);
    let bare = match (before.is_empty(), after.is_empty()) {
        (_, true) => Cow::Borrowed(before),
        (true, false) => Cow::Borrowed(after),
        (false, false) => Cow::Owned(format!("{before}{after}")),
    };
    Ok((bare, Some(tags)))
}

/// `value|type…` as one sample.
fn split_sample(part: &str) -> Result<Sample<'_>, LineError> {
    let (value, rest) = part.split_once('|').ok_or(LineError::MissingType)?;
    parse_sample_parts(value, rest)
}

/// `value` and the `type[|@rate][|#…][|c:…][|T…]` components after it.
fn parse_sample_parts<'a>(value: &'a str, rest: &'a str) -> Result<Sample<'a>, LineError> {
    if value.is_empty() {
        return Err(LineError::EmptyValue);
    }
    let mut comps = rest.split('|');
    let ty = comps.next().unwrap_or("");
    if ty.is_empty() {
        return Err(if rest.is_empty() { LineError::MissingType } else { LineError::EmptyComponent });
    }
    let kind = MetricType::from_bytes(ty).ok_or(LineError::BadType)?;
    let mut rate = 1.0;
    let mut extra = 0;
    for c in comps {
        extra += 1;
        if extra > 5 {
            return Err(LineError::TooManyComponents);
        }
        match c.as_bytes().first() {
            None => return Err(LineError::EmptyComponent),
            Some(b'@') => {
                rate = c[1..].parse::<f64>().map_err(|_| LineError::BadRate)?;
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(LineError::BadRate);
                }
            }
            Some(_) => check_extension(c)?,
        }
    }
    let (number, decimal_comma) = match kind {
        MetricType::Set => (None, false),
        _ => match parse_number(value) {
            Ok(n) => (Some(n), false),
            Err(e) => (Some(parse_decimal_comma(value).ok_or(e)?), true),
        },
    };
    if kind == MetricType::Timer && number.is_some_and(|n| n < 0.0) {
        return Err(LineError::NegativeTimer);
    }
    let relative = kind == MetricType::Gauge && matches!(value.as_bytes()[0], b'+' | b'-');
    Ok(Sample { kind, value, number, relative, rate, decimal_comma })
}

/// `[+-]digits,digits` read as `[+-]digits.digits`.
fn parse_decimal_comma(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once(',')?;
    let digits = int.strip_prefix(['+', '-']).unwrap_or(int);
    let ok = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    (ok(digits) && ok(frac)).then(|| format!("{int}.{frac}").parse().ok()).flatten()
}

/// DogStatsD v1.2 container id (`c:<id>`) and v1.3 timestamp (`T<unix>`): accepted, ignored.
fn check_extension(c: &str) -> Result<(), LineError> {
    let ok = match c.as_bytes() {
        [] => return Err(LineError::EmptyComponent),
        [b'c', b':', ..] => true,
        [b'T', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LineError::BadType)
    }
}

fn parse_number(s: &str) -> Result<f64, LineError> {
    // Rust's f64 parser accepts "inf" and "NaN"; statsd values never mean those.
    let n: f64 = s.parse().map_err(|_| LineError::BadValue)?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(LineError::BadValue)
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "c",
            Self::Gauge => "g",
            Self::Timer => "ms",
            Self::Histogram => "h",
            Self::Distribution => "d",
            Self::Set => "s",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, [(type, value, rate)], tags) of every line, or the error.
    type Parsed = Result<(String, Vec<(String, String, f64)>, Vec<(String, String)>), LineError>;

    fn parse_all(datagram: &str) -> Vec<Parsed> {
        parse_datagram(datagram.as_bytes())
            .map(|r| {
                r.map(|l| {
                    (
                        l.name.to_string(),
                        l.samples().map(|s| (s.kind.to_string(), s.value.to_string(), s.rate)).collect(),
                        l.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    )
                })
            })
            .collect()
    }

    fn ok(name: &str, samples: &[(&str, &str, f64)], tags: &[(&str, &str)]) -> Parsed {
        Ok((
            name.into(),
            samples.iter().map(|(t, v, r)| (t.to_string(), v.to_string(), *r)).collect(),
            tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ))
    }

    #[test]
    fn statsd_exporter_and_etsy_vectors() {
        let cases: &[(&str, Vec<Parsed>)] = &[
            ("gorets:1|c", vec![ok("gorets", &[("c", "1", 1.0)], &[])]),
            ("gorets:1|c|@0.1", vec![ok("gorets", &[("c", "1", 0.1)], &[])]),
            ("glork:320|ms|@0.1", vec![ok("glork", &[("ms", "320", 0.1)], &[])]),
            (
                "gaugor:333|g\ngaugor:-10|g\ngaugor:+4|g",
                vec![
                    ok("gaugor", &[("g", "333", 1.0)], &[]),
                    ok("gaugor", &[("g", "-10", 1.0)], &[]),
                    ok("gaugor", &[("g", "+4", 1.0)], &[]),
                ],
            ),
            ("uniques:765|s", vec![ok("uniques", &[("s", "765", 1.0)], &[])]),
            ("a:1|c\n", vec![ok("a", &[("c", "1", 1.0)], &[])]),
            ("foo:1|c:2|c", vec![ok("foo", &[("c", "1", 1.0), ("c", "2", 1.0)], &[])]),
            (
                "foo_timing:0.5:120:3000|ms|#tag1:bar",
                vec![ok("foo_timing", &[("ms", "0.5", 1.0), ("ms", "120", 1.0), ("ms", "3000", 1.0)], &[("tag1", "bar")])],
            ),
            (
                "users.online:1|c|@0.5|#country:china,env",
                vec![ok("users.online", &[("c", "1", 0.5)], &[("country", "china"), ("env", "")])],
            ),
            ("foo:100|c|@0.1|#tag1:foo:bar", vec![ok("foo", &[("c", "100", 0.1)], &[("tag1", "foo:bar")])]),
            (
                "users.current,service=payroll,region=us-west:32|g",
                vec![ok("users.current", &[("g", "32", 1.0)], &[("service", "payroll"), ("region", "us-west")])],
            ),
            ("foo#tag1=bar,tag2=baz:100|c", vec![ok("foo", &[("c", "100", 1.0)], &[("tag1", "bar"), ("tag2", "baz")])]),
            ("foo[tag1=bar]:100|c", vec![ok("foo", &[("c", "100", 1.0)], &[("tag1", "bar")])]),
            ("foo.[tag1=bar,tag2=baz]test:100|c", vec![ok("foo.test", &[("c", "100", 1.0)], &[("tag1", "bar"), ("tag2", "baz")])]),
            ("foo,tag1=foo:100|c|#tag1:bar", vec![Err(LineError::MixedTags)]),
            ("foo", vec![Err(LineError::MissingValue)]),
            ("foo:1", vec![Err(LineError::MissingType)]),
            ("foo:1o|c", vec![Err(LineError::BadValue)]),
            (":100|ms", vec![Err(LineError::EmptyName)]),
            ("foo:1|c|", vec![Err(LineError::EmptyComponent)]),
            ("foo:|g", vec![Err(LineError::EmptyValue)]),
            ("foo:-1|ms", vec![Err(LineError::NegativeTimer)]),
            ("foo:2|t", vec![Err(LineError::BadType)]),
            ("foo:2|c|@0", vec![Err(LineError::BadRate)]),
            ("foo:1|c|@bar", vec![Err(LineError::BadRate)]),
            ("x:0|g\nx:-423|g", vec![ok("x", &[("g", "0", 1.0)], &[]), ok("x", &[("g", "-423", 1.0)], &[])]),
            ("a:1|c\r\n", vec![ok("a", &[("c", "1", 1.0)], &[])]),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_all(input), want, "input {input:?}");
        }
    }

    #[test]
    fn bad_line_keeps_neighbours() {
        let got = parse_all("a:1|g\nbroken\r\n\n\nb:2|g");
        assert_eq!(got, vec![ok("a", &[("g", "1", 1.0)], &[]), Err(LineError::MissingValue), ok("b", &[("g", "2", 1.0)], &[])]);
    }

    #[test]
    fn rejects_nan_inf_and_bad_utf8() {
        assert_eq!(parse_line("a:NaN|g"), Err(LineError::BadValue));
        let comma = parse_line("a:-1,25|g").expect("decimal comma").samples().next().expect("a sample");
        assert_eq!((comma.number, comma.decimal_comma), (Some(-1.25), true));
        assert!(!parse_line("a:1.25|ms").expect("a line").samples().all(|s| s.decimal_comma));
        for bad in ["a:1,|g", "a:,5|g", "a:1,2,3|g", "a:1.2,3|g", "a:x,1|g"] {
            assert_eq!(parse_line(bad), Err(LineError::BadValue), "{bad}");
        }
        assert_eq!(parse_line("a:inf|g"), Err(LineError::BadValue));
        assert_eq!(parse_datagram(b"a\xff:1|g").next(), Some(Err(LineError::InvalidUtf8)));
        assert_eq!(parse_line("t:1:2|c"), Err(LineError::PackedNotTimer));
        assert_eq!(parse_line("a:1|g|x"), Err(LineError::BadType));
    }

    #[test]
    fn relative_gauges_and_extensions() {
        let l = parse_line("g:-5|g|#env:prod|c:83c0a99c0a54|T1656581400").expect("valid");
        assert_eq!(l.tags.iter().collect::<Vec<_>>(), [("env", "prod")]);
        let s = l.samples().next().expect("one sample");
        assert!(s.relative);
        assert_eq!(s.number, Some(-5.0));
        assert_eq!(parse_line("g:5|g|#a:b|x"), Err(LineError::BadType));
        let l = parse_line("g:5|g|T1656581400").expect("valid");
        assert!(!l.samples().next().expect("one sample").relative);
        assert_eq!(parse_line("u:x|s").expect("valid").samples().next().map(|s| s.number), Some(None), "sets carry no number");
    }

    #[test]
    fn error_messages_are_exact() {
        assert_eq!(LineError::MissingType.to_string(), "missing '|type' after the value");
        assert_eq!(LineError::BadRate.to_string(), "sample rate must be '@' and a number in (0, 1]");
        assert_eq!(LineError::BadRate.reason(), "bad_rate");
    }
}
