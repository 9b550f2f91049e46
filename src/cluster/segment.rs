//! Segments: what one node ingested in one interval, as an immutable object. For each app, each
//! (label set, stack, time bucket) and its count. Counts of the same key from several segments
//! simply add up, so a query sums segments and a compaction merges them, with no owner and no
//! deduplication, as long as each segment is counted once (its name is unique, and written with
//! put-if-absent).
//!
//! Encoding (`docs/scale-out.md`): the magic `STKDSEG1`, then a deflate stream of LEB128 varints
//! and length-prefixed strings: the writer (node, sequence number), a frame dictionary, and per
//! app its label sets, its stacks (frame numbers, root first) and its counts (time delta-encoded,
//! label set, stack, count). The same counts always encode to the same bytes: keys are written
//! sorted.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use crate::store::disk::codec::{get_ivarint, get_str, get_varint, put_ivarint, put_str, put_varint};
use crate::store::Labels;

const MAGIC: &[u8; 8] = b"STKDSEG1";
/// The most bytes a segment inflates to: far above any interval's counts, and a bound on what a
/// corrupt or hostile object can make a node allocate.
const MAX_INFLATED: u64 = 4 << 30;

/// One count's key: label set (profile type and period among them), frames root first, and the
/// start of its time bucket (Unix ms).
pub type Key = (Labels, Vec<Arc<str>>, i64);

/// What one node ingested in one interval (or, compacted, what several did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The node that wrote it.
    pub node: String,
    /// Its number among that node's segments.
    pub seq: u64,
    /// App → key → count.
    pub apps: BTreeMap<String, BTreeMap<Key, u64>>,
}

/// Why a segment could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("not a stackd segment (no STKDSEG1 magic)")]
    Magic,
    #[error("the segment's deflate stream is damaged: {0}")]
    Inflate(String),
    #[error("the segment is cut short or damaged at byte {0} of its contents")]
    Damaged(usize),
}

impl Segment {
    pub fn new(node: &str, seq: u64) -> Segment {
        Segment { node: node.to_string(), seq, apps: BTreeMap::new() }
    }

    /// Add `count` to one key of `app` (saturating).
    pub fn add(&mut self, app: &str, labels: Labels, frames: Vec<Arc<str>>, time_ms: i64, count: u64) {
        if count == 0 {
            return;
        }
        let counts = match self.apps.get_mut(app) {
            Some(c) => c,
            None => self.apps.entry(app.to_string()).or_default(),
        };
        let c = counts.entry((labels, frames, time_ms)).or_insert(0);
        *c = c.saturating_add(count);
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &Segment) {
        for (app, counts) in &other.apps {
            for ((labels, frames, time), n) in counts {
                self.add(app, labels.clone(), frames.clone(), *time, *n);
            }
        }
    }

    /// The sum of every count, per app.
    pub fn totals(&self) -> BTreeMap<&str, u64> {
        self.apps.iter().map(|(a, c)| (a.as_str(), c.values().fold(0u64, |t, n| t.saturating_add(*n)))).collect()
    }

    /// The earliest and latest bucket start of its counts, if it has any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let times = self.apps.values().flat_map(|c| c.keys().map(|k| k.2));
        times.fold(None, |r, t| Some(r.map_or((t, t), |(lo, hi): (i64, i64)| (lo.min(t), hi.max(t)))))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, &self.node);
        put_varint(&mut body, self.seq);
        // The frame dictionary, in first-use order (deterministic: the maps are sorted).
        let mut frame_ids: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        let mut frames: Vec<&str> = Vec::new();
        for counts in self.apps.values() {
            for (_, stack, _) in counts.keys() {
                for f in stack {
                    frame_ids.entry(f).or_insert_with(|| {
                        frames.push(f);
                        frames.len() as u64 - 1
                    });
                }
            }
        }
        put_varint(&mut body, frames.len() as u64);
        for f in &frames {
            put_str(&mut body, f);
        }
        put_varint(&mut body, self.apps.len() as u64);
        for (app, counts) in &self.apps {
            put_str(&mut body, app);
            let mut label_sets: BTreeMap<&Labels, u64> = BTreeMap::new();
            let mut stacks: BTreeMap<&Vec<Arc<str>>, u64> = BTreeMap::new();
            for (labels, stack, _) in counts.keys() {
                label_sets.insert(labels, 0);
                stacks.insert(stack, 0);
            }
            put_varint(&mut body, label_sets.len() as u64);
            for (i, (labels, n)) in label_sets.iter_mut().enumerate() {
                *n = i as u64;
                put_varint(&mut body, labels.len() as u64);
                for (k, v) in labels.iter() {
                    put_str(&mut body, k);
                    put_str(&mut body, v);
                }
            }
            put_varint(&mut body, stacks.len() as u64);
            for (i, (stack, n)) in stacks.iter_mut().enumerate() {
                *n = i as u64;
                put_varint(&mut body, stack.len() as u64);
                for f in stack.iter() {
                    put_varint(&mut body, frame_ids[&**f]);
                }
            }
            put_varint(&mut body, counts.len() as u64);
            let mut last_time = 0i64;
            for ((labels, stack, time), n) in counts {
                put_ivarint(&mut body, time.wrapping_sub(last_time));
                last_time = *time;
                put_varint(&mut body, label_sets[labels]);
                put_varint(&mut body, stacks[stack]);
                put_varint(&mut body, *n);
            }
        }
        let mut out = MAGIC.to_vec();
        let mut z = flate2::write::DeflateEncoder::new(out.split_off(MAGIC.len()), flate2::Compression::new(6));
        let _ = z.write_all(&body);
        out.extend(z.finish().unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
        let zipped = bytes.strip_prefix(MAGIC.as_slice()).ok_or(SegmentError::Magic)?;
        let mut body = Vec::new();
        flate2::read::DeflateDecoder::new(zipped)
            .take(MAX_INFLATED)
            .read_to_end(&mut body)
            .map_err(|e| SegmentError::Inflate(e.to_string()))?;
        let total = body.len();
        let mut input = body.as_slice();
        let at = |input: &[u8]| SegmentError::Damaged(total - input.len());
        let node = get_str(&mut input).ok_or_else(|| at(input))?;
        let seq = get_varint(&mut input).ok_or_else(|| at(input))?;
        let mut seg = Segment { node, seq, apps: BTreeMap::new() };
        let n_frames = count(&mut input, total)?;
        let mut frames: Vec<Arc<str>> = Vec::with_capacity(n_frames);
        for _ in 0..n_frames {
            frames.push(get_str(&mut input).ok_or_else(|| at(input))?.into());
        }
        for _ in 0..count(&mut input, total)? {
            let app = get_str(&mut input).ok_or_else(|| at(input))?;
            let mut label_sets: Vec<Labels> = Vec::new();
            for _ in 0..count(&mut input, total)? {
                let mut labels = Labels::new();
                for _ in 0..count(&mut input, total)? {
                    let k = get_str(&mut input).ok_or_else(|| at(input))?;
                    let v = get_str(&mut input).ok_or_else(|| at(input))?;
                    labels.push((k, v));
                }
                label_sets.push(labels);
            }
            let mut stacks: Vec<Vec<Arc<str>>> = Vec::new();
            for _ in 0..count(&mut input, total)? {
                let n = count(&mut input, total)?;
                let mut stack = Vec::with_capacity(n);
                for _ in 0..n {
                    let f = get_varint(&mut input).ok_or_else(|| at(input))?;
                    stack.push(Arc::clone(frames.get(f as usize).ok_or_else(|| at(input))?));
                }
                stacks.push(stack);
            }
            let mut time = 0i64;
            for _ in 0..count(&mut input, total)? {
                time = time.wrapping_add(get_ivarint(&mut input).ok_or_else(|| at(input))?);
                let labels = label_sets.get(get_varint(&mut input).ok_or_else(|| at(input))? as usize).ok_or_else(|| at(input))?;
                let stack = stacks.get(get_varint(&mut input).ok_or_else(|| at(input))? as usize).ok_or_else(|| at(input))?;
                let n = get_varint(&mut input).ok_or_else(|| at(input))?;
                seg.add(&app, labels.clone(), stack.clone(), time, n);
            }
        }
        if !input.is_empty() {
            return Err(at(input));
        }
        Ok(seg)
    }
}

/// A count of things that follow, each taking at least a byte: never more than the bytes left
/// (so a damaged count cannot make the decoder reserve memory for nothing).
fn count(input: &mut &[u8], total: usize) -> Result<usize, SegmentError> {
    let at = SegmentError::Damaged(total - input.len());
    let n = get_varint(input).ok_or(at.clone())?;
    if n > input.len() as u64 {
        return Err(at);
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(s: &str) -> Vec<Arc<str>> {
        s.split(';').map(Arc::from).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sample() -> Segment {
        let mut s = Segment::new("node-a", 42);
        s.add("app-1", labels(&[("executor", "1")]), frames("main;run;work"), 60_000, 3);
        s.add("app-1", labels(&[("executor", "1")]), frames("main;run;work"), 60_000, 2);
        s.add("app-1", labels(&[("executor", "2")]), frames("main;run;idle"), 120_000, 7);
        s.add("app-1", labels(&[("__type", "alloc"), ("executor", "1")]), frames("main;new"), 60_000, 4096);
        s.add("app-2", labels(&[]), frames("main;é;🔥"), -60_000, u64::MAX);
        s
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(&bytes[..8], b"STKDSEG1");
        let back = Segment::decode(&bytes).expect("decodes");
        assert_eq!(back, s);
        assert_eq!(back.totals(), BTreeMap::from([("app-1", 5 + 7 + 4096), ("app-2", u64::MAX)]));
        assert_eq!(back.time_range(), Some((-60_000, 120_000)));
        // The same counts, added in another order: the same bytes.
        let mut other = Segment::new("node-a", 42);
        other.add("app-2", labels(&[]), frames("main;é;🔥"), -60_000, u64::MAX);
        other.add("app-1", labels(&[("__type", "alloc"), ("executor", "1")]), frames("main;new"), 60_000, 4096);
        other.add("app-1", labels(&[("executor", "2")]), frames("main;run;idle"), 120_000, 7);
        other.add("app-1", labels(&[("executor", "1")]), frames("main;run;work"), 60_000, 5);
        assert_eq!(other.encode(), bytes);
    }

    #[test]
    fn merging_adds_counts() {
        let mut a = sample();
        a.merge(&sample());
        let key = (labels(&[("executor", "1")]), frames("main;run;work"), 60_000);
        assert_eq!(a.apps["app-1"][&key], 10);
        assert_eq!(a.apps["app-2"].values().copied().collect::<Vec<_>>(), [u64::MAX], "saturates, never wraps");
        assert_eq!(Segment::default().time_range(), None);
    }

    #[test]
    fn damaged_segments_are_refused() {
        let bytes = sample().encode();
        assert_eq!(Segment::decode(b"PK\x03\x04"), Err(SegmentError::Magic));
        assert!(matches!(Segment::decode(&bytes[..bytes.len() - 3]), Err(SegmentError::Inflate(_) | SegmentError::Damaged(_))));
        // Valid deflate of contents that stop early.
        let mut short = MAGIC.to_vec();
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&[6, b'n', b'o', b'd', b'e', b'-', b'a', 42, 200]).expect("write");
        short.extend(z.finish().expect("finish"));
        assert_eq!(Segment::decode(&short), Err(SegmentError::Damaged(8)));
    }
}
