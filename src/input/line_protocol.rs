//! Line-protocol bodies (`/write`, `/api/v2/write`): each point to the first input that claims
//! it, each line's outcome counted, the first refusals kept for the HTTP answer.

use crate::ingest::Writer;
use crate::outcome::{Ignored, Outcome, Reject};
use crate::protocol::influx;

use super::Inputs;

/// At most this many rejection messages go into one HTTP error body.
const MAX_ERRORS_SHOWN: usize = 10;

/// Time unit of line-protocol timestamps (`precision=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// InfluxDB 1.x `precision` values (empty = ns).
    pub fn from_v1(s: &str) -> Option<Self> {
        Some(match s {
            "" | "n" | "ns" => Self::Nanos,
            "u" | "us" | "µ" => Self::Micros,
            "ms" => Self::Millis,
            "s" => Self::Seconds,
            "m" => Self::Minutes,
            "h" => Self::Hours,
            _ => return None,
        })
    }

    /// InfluxDB 2.x `precision` values (empty = ns).
    pub fn from_v2(s: &str) -> Option<Self> {
        Some(match s {
            "" | "ns" => Self::Nanos,
            "us" => Self::Micros,
            "ms" => Self::Millis,
            "s" => Self::Seconds,
            _ => return None,
        })
    }

    /// A timestamp in this precision as Unix milliseconds; `None` if it does not fit.
    pub fn to_millis(self, t: i64) -> Option<i64> {
        match self {
            Self::Nanos => Some(t.div_euclid(1_000_000)),
            Self::Micros => Some(t.div_euclid(1_000)),
            Self::Millis => Some(t),
            Self::Seconds => t.checked_mul(1_000),
            Self::Minutes => t.checked_mul(60_000),
            Self::Hours => t.checked_mul(3_600_000),
        }
    }
}

/// What happened to a line-protocol body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Lines taken (stored or knowingly ignored), as InfluxDB would count points written.
    pub written: usize,
    pub rejected: usize,
    /// The first few rejections, `unable to parse '<line>': <reason>`.
    pub errors: Vec<String>,
}

impl WriteOutcome {
    fn reject(&mut self, message: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ERRORS_SHOWN {
            self.errors.push(message);
        }
    }
}

impl Inputs {
    /// A line-protocol body (already decompressed), received at `now_ms`.
    pub fn line_protocol(&self, body: &[u8], precision: Precision, now_ms: i64) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        let mut w = self.ingest.writer(Some(&self.influx_tally));
        for line in influx::parse_body(body) {
            let line = match line {
                Err(e) => {
                    w.rejected(e.kind.reason());
                    out.reject(e.to_string());
                    continue;
                }
                Ok(line) => line,
            };
            let outcome = self.point(&mut w, &line, precision, now_ms);
            if let Outcome::Rejected(r) = outcome {
                out.reject(format!("unable to parse '{}': {r}", line.measurement()));
            } else {
                out.written += 1;
            }
            w.count(outcome);
        }
        out
    }

    fn point(&self, w: &mut Writer<'_>, line: &influx::Line<'_>, precision: Precision, now_ms: i64) -> Outcome {
        let time_ms = match line.timestamp {
            None => now_ms,
            Some(t) => match precision.to_millis(t) {
                Some(ms) => ms,
                None => return Outcome::Rejected(Reject::BadTimestamp),
            },
        };
        self.line_protocol
            .iter()
            .find_map(|input| input.point(w, line, time_ms, now_ms))
            .unwrap_or(Outcome::Ignored(Ignored::UnknownMetric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_conversion() {
        assert_eq!(Precision::from_v1("ms").and_then(|p| p.to_millis(1500000000123)), Some(1500000000123));
        assert_eq!(Precision::from_v1("s").and_then(|p| p.to_millis(1500000000)), Some(1500000000000));
        assert_eq!(Precision::from_v1("n").and_then(|p| p.to_millis(-1)), Some(-1));
        assert_eq!(Precision::from_v1("h").and_then(|p| p.to_millis(i64::MAX)), None);
        assert_eq!(Precision::from_v2("m"), None);
        assert_eq!(Precision::from_v1("x"), None);
    }
}
