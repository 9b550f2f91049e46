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

const SEGMENT_MAGIC: &[u8; 8] = b"STKDSEG1";
const PACK_MAGIC: &[u8; 8] = b"STKDPAK1";
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
    #[error("not a stackd segment (no {0} magic)")]
    Magic(String),
    #[error("the segment's deflate stream is damaged: {0}")]
    Inflate(String),
    #[error("the segment is cut short or damaged at byte {0} of its contents")]
    Damaged(usize),
    #[error("the segment holds number {found}, not {named} as its name says")]
    Number { found: u64, named: u64 },
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
        let dict = Frames::of([self]);
        dict.put(&mut body);
        put_apps(&mut body, &self.apps, &dict);
        deflate(SEGMENT_MAGIC, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
        let body = inflate(SEGMENT_MAGIC, bytes)?;
        let mut r = Reader { input: &body, total: body.len() };
        let node = r.str()?;
        let seq = r.varint()?;
        let frames = r.frames()?;
        let mut seg = Segment { node, seq, apps: BTreeMap::new() };
        r.apps(&frames, &mut seg)?;
        r.end()?;
        Ok(seg)
    }
}

/// The counts of a segment or a pack, read without building a map: what a node importing
/// another's segments needs. Opening checks the whole object, so that a damaged one is refused
/// before any of its counts is used.
#[derive(Debug)]
pub struct Counts {
    body: Vec<u8>,
    pack: bool,
}

impl Counts {
    pub fn open(bytes: &[u8]) -> Result<Counts, SegmentError> {
        let pack = bytes.starts_with(PACK_MAGIC);
        let c = Counts { body: inflate(if pack { PACK_MAGIC } else { SEGMENT_MAGIC }, bytes)?, pack };
        c.read(|_| true, |_, _, _, _, _| {})?;
        Ok(c)
    }

    /// Every count of the sections whose number `keep` accepts, to `emit(app, labels, frames
    /// root first, bucket start ms, count)`: how many sections.
    pub fn each(&self, keep: impl Fn(u64) -> bool, emit: impl FnMut(&str, &Labels, &[Arc<str>], i64, u64)) -> u64 {
        // Checked when opened.
        self.read(keep, emit).unwrap_or(0)
    }

    fn read(&self, keep: impl Fn(u64) -> bool, mut emit: impl FnMut(&str, &Labels, &[Arc<str>], i64, u64)) -> Result<u64, SegmentError> {
        let mut r = Reader { input: &self.body, total: self.body.len() };
        r.str()?;
        let sections = if self.pack {
            let frames = r.frames()?;
            let mut kept = 0;
            for _ in 0..r.count()? {
                if keep(r.varint()?) {
                    r.each_app(&frames, &mut emit)?;
                    kept += 1;
                } else {
                    r.each_app(&frames, |_, _, _, _, _| {})?;
                }
            }
            kept
        } else {
            let seq = r.varint()?;
            let frames = r.frames()?;
            match keep(seq) {
                true => r.each_app(&frames, &mut emit)?,
                false => r.each_app(&frames, |_, _, _, _, _| {})?,
            }
            u64::from(keep(seq))
        };
        r.end()?;
        Ok(sections)
    }
}

/// Several segments of one node, compacted into one object: each keeps its own section, so a
/// reader that has some of them takes only the others. One frame dictionary and one deflate
/// stream for all: a frame that every interval repeats is written once.
///
/// Encoding: the magic `STKDPAK1`, then deflate of: the node, the frame dictionary, the number
/// of sections, and per section its number and its apps, as in a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pack {
    pub node: String,
    /// Sorted by number.
    pub sections: Vec<Segment>,
}

impl Pack {
    /// Compaction writes packs with [`PackWriter`]; this encoding of decoded segments is what
    /// its output is checked against.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, &self.node);
        let dict = Frames::of(&self.sections);
        dict.put(&mut body);
        put_varint(&mut body, self.sections.len() as u64);
        for s in &self.sections {
            put_varint(&mut body, s.seq);
            put_apps(&mut body, &s.apps, &dict);
        }
        deflate(PACK_MAGIC, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Pack, SegmentError> {
        let body = inflate(PACK_MAGIC, bytes)?;
        let mut r = Reader { input: &body, total: body.len() };
        let node = r.str()?;
        let frames = r.frames()?;
        let mut sections = Vec::new();
        for _ in 0..r.count()? {
            let mut seg = Segment { node: node.clone(), seq: r.varint()?, apps: BTreeMap::new() };
            r.apps(&frames, &mut seg)?;
            sections.push(seg);
        }
        r.end()?;
        Ok(Pack { node, sections })
    }
}

/// Writes a pack straight from encoded segments, without decoding their counts into maps:
/// each segment's contents are copied across as its section, only its stacks' frame numbers
/// changed to the pack's one dictionary (what compaction does; [`Pack::encode`] gives the same
/// contents from decoded segments).
#[derive(Debug, Default)]
pub struct PackWriter {
    ids: std::collections::HashMap<String, u64>,
    frames: Vec<String>,
    sections: Vec<u8>,
    count: u64,
}

impl PackWriter {
    /// Add encoded segment number `seq` as the next section (segments go in number order). A
    /// damaged segment, or one that holds another number, is refused whole and the pack left
    /// as it was.
    pub fn add(&mut self, bytes: &[u8], seq: u64) -> Result<(), SegmentError> {
        let body = inflate(SEGMENT_MAGIC, bytes)?;
        let mut r = Reader { input: &body, total: body.len() };
        r.str()?;
        let found = r.varint()?;
        if found != seq {
            return Err(SegmentError::Number { found, named: seq });
        }
        let local = r.frames()?;
        let mut out = Vec::new();
        put_varint(&mut out, seq);
        // Frame numbers of this segment → the pack's; new frames go in only if it all reads.
        let mut map: Vec<Option<u64>> = vec![None; local.len()];
        let mut new_frames: Vec<&str> = Vec::new();
        let apps = r.count()?;
        put_varint(&mut out, apps as u64);
        for _ in 0..apps {
            let start = r.pos();
            r.str()?;
            for _ in 0..r.count()? {
                for _ in 0..r.count()? {
                    r.str()?;
                    r.str()?;
                }
            }
            out.extend_from_slice(&body[start..r.pos()]);
            let stacks = r.count()?;
            put_varint(&mut out, stacks as u64);
            for _ in 0..stacks {
                let n = r.count()?;
                put_varint(&mut out, n as u64);
                for _ in 0..n {
                    let at = r.damaged();
                    let f = r.varint()? as usize;
                    let slot = map.get_mut(f).ok_or(at)?;
                    let id = *slot.get_or_insert_with(|| match self.ids.get(&*local[f]) {
                        Some(id) => *id,
                        None => {
                            new_frames.push(&local[f]);
                            (self.frames.len() + new_frames.len() - 1) as u64
                        }
                    });
                    put_varint(&mut out, id);
                }
            }
            let start = r.pos();
            for _ in 0..r.count()? {
                get_ivarint(&mut r.input).ok_or_else(|| r.damaged())?;
                r.varint()?;
                r.varint()?;
                r.varint()?;
            }
            out.extend_from_slice(&body[start..r.pos()]);
        }
        r.end()?;
        for f in new_frames {
            self.ids.insert(f.to_string(), self.frames.len() as u64);
            self.frames.push(f.to_string());
        }
        self.sections.extend_from_slice(&out);
        self.count += 1;
        Ok(())
    }

    /// The pack of `node`'s segments added.
    pub fn finish(self, node: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.sections.len() + self.frames.len() * 32);
        put_str(&mut body, node);
        put_varint(&mut body, self.frames.len() as u64);
        for f in &self.frames {
            put_str(&mut body, f);
        }
        put_varint(&mut body, self.count);
        body.extend_from_slice(&self.sections);
        deflate(PACK_MAGIC, &body)
    }
}

/// A frame dictionary, in first-use order (deterministic: the maps are sorted).
struct Frames<'a> {
    ids: std::collections::HashMap<&'a str, u64>,
    frames: Vec<&'a str>,
}

impl<'a> Frames<'a> {
    fn of(segments: impl IntoIterator<Item = &'a Segment>) -> Frames<'a> {
        let mut d = Frames { ids: std::collections::HashMap::new(), frames: Vec::new() };
        for seg in segments {
            for counts in seg.apps.values() {
                for (_, stack, _) in counts.keys() {
                    for f in stack {
                        d.ids.entry(f).or_insert_with(|| {
                            d.frames.push(f);
                            d.frames.len() as u64 - 1
                        });
                    }
                }
            }
        }
        d
    }

    fn put(&self, body: &mut Vec<u8>) {
        put_varint(body, self.frames.len() as u64);
        for f in &self.frames {
            put_str(body, f);
        }
    }
}

/// Per app: its label sets, its stacks as frame numbers, and its counts.
fn put_apps(body: &mut Vec<u8>, apps: &BTreeMap<String, BTreeMap<Key, u64>>, dict: &Frames) {
    put_varint(body, apps.len() as u64);
    for (app, counts) in apps {
        put_str(body, app);
        let mut label_sets: BTreeMap<&Labels, u64> = BTreeMap::new();
        let mut stacks: BTreeMap<&Vec<Arc<str>>, u64> = BTreeMap::new();
        for (labels, stack, _) in counts.keys() {
            label_sets.insert(labels, 0);
            stacks.insert(stack, 0);
        }
        put_varint(body, label_sets.len() as u64);
        for (i, (labels, n)) in label_sets.iter_mut().enumerate() {
            *n = i as u64;
            put_varint(body, labels.len() as u64);
            for (k, v) in labels.iter() {
                put_str(body, k);
                put_str(body, v);
            }
        }
        put_varint(body, stacks.len() as u64);
        for (i, (stack, n)) in stacks.iter_mut().enumerate() {
            *n = i as u64;
            put_varint(body, stack.len() as u64);
            for f in stack.iter() {
                put_varint(body, dict.ids[&**f]);
            }
        }
        put_varint(body, counts.len() as u64);
        let mut last_time = 0i64;
        for ((labels, stack, time), n) in counts {
            put_ivarint(body, time.wrapping_sub(last_time));
            last_time = *time;
            put_varint(body, label_sets[labels]);
            put_varint(body, stacks[stack]);
            put_varint(body, *n);
        }
    }
}

fn deflate(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(magic.to_vec(), flate2::Compression::new(6));
    let _ = z.write_all(body);
    z.finish().unwrap_or_default()
}

fn inflate(magic: &[u8; 8], bytes: &[u8]) -> Result<Vec<u8>, SegmentError> {
    let zipped = bytes.strip_prefix(magic.as_slice()).ok_or_else(|| SegmentError::Magic(String::from_utf8_lossy(magic).into_owned()))?;
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(zipped)
        .take(MAX_INFLATED)
        .read_to_end(&mut body)
        .map_err(|e| SegmentError::Inflate(e.to_string()))?;
    Ok(body)
}

/// The contents of a segment or pack, read front to back; every error names its position.
struct Reader<'a> {
    input: &'a [u8],
    total: usize,
}

impl Reader<'_> {
    fn damaged(&self) -> SegmentError {
        SegmentError::Damaged(self.pos())
    }

    /// How far it has read.
    fn pos(&self) -> usize {
        self.total - self.input.len()
    }

    fn str(&mut self) -> Result<String, SegmentError> {
        get_str(&mut self.input).ok_or_else(|| self.damaged())
    }

    fn varint(&mut self) -> Result<u64, SegmentError> {
        get_varint(&mut self.input).ok_or_else(|| self.damaged())
    }

    /// A count of things that follow, each taking at least a byte: never more than the bytes
    /// left (so a damaged count cannot make the decoder reserve memory for nothing).
    fn count(&mut self) -> Result<usize, SegmentError> {
        let at = self.damaged();
        let n = get_varint(&mut self.input).ok_or(at.clone())?;
        if n > self.input.len() as u64 {
            return Err(at);
        }
        Ok(n as usize)
    }

    fn frames(&mut self) -> Result<Vec<Arc<str>>, SegmentError> {
        let n = self.count()?;
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(self.str()?.into());
        }
        Ok(frames)
    }

    fn index<'t, T>(&mut self, table: &'t [T]) -> Result<&'t T, SegmentError> {
        let at = self.damaged();
        table.get(self.varint()? as usize).ok_or(at)
    }

    fn apps(&mut self, frames: &[Arc<str>], seg: &mut Segment) -> Result<(), SegmentError> {
        self.each_app(frames, |app, labels, stack, time, n| seg.add(app, labels.clone(), stack.to_vec(), time, n))
    }

    /// Every count of the apps that follow, to `emit(app, labels, frames, time, count)`.
    fn each_app(&mut self, frames: &[Arc<str>], mut emit: impl FnMut(&str, &Labels, &[Arc<str>], i64, u64)) -> Result<(), SegmentError> {
        for _ in 0..self.count()? {
            let app = self.str()?;
            let mut label_sets: Vec<Labels> = Vec::new();
            for _ in 0..self.count()? {
                let mut labels = Labels::new();
                for _ in 0..self.count()? {
                    let k = self.str()?;
                    let v = self.str()?;
                    labels.push((k, v));
                }
                label_sets.push(labels);
            }
            let mut stacks: Vec<Vec<Arc<str>>> = Vec::new();
            for _ in 0..self.count()? {
                let n = self.count()?;
                let mut stack = Vec::with_capacity(n);
                for _ in 0..n {
                    stack.push(Arc::clone(self.index(frames)?));
                }
                stacks.push(stack);
            }
            let mut time = 0i64;
            for _ in 0..self.count()? {
                time = time.wrapping_add(get_ivarint(&mut self.input).ok_or_else(|| self.damaged())?);
                let labels = self.index(&label_sets)?;
                let stack = self.index(&stacks)?;
                let n = self.varint()?;
                emit(&app, labels, stack, time, n);
            }
        }
        Ok(())
    }

    fn end(&self) -> Result<(), SegmentError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(self.damaged())
        }
    }
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
        assert_eq!(Segment::decode(b"PK\x03\x04"), Err(SegmentError::Magic("STKDSEG1".into())));
        assert_eq!(Pack::decode(&bytes), Err(SegmentError::Magic("STKDPAK1".into())));
        assert!(matches!(Segment::decode(&bytes[..bytes.len() - 3]), Err(SegmentError::Inflate(_) | SegmentError::Damaged(_))));
        // Valid deflate of contents that stop early.
        let mut short = SEGMENT_MAGIC.to_vec();
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&[6, b'n', b'o', b'd', b'e', b'-', b'a', 42, 200]).expect("write");
        short.extend(z.finish().expect("finish"));
        assert_eq!(Segment::decode(&short), Err(SegmentError::Damaged(8)));
    }
}

#[cfg(test)]
mod pack_tests {
    use super::*;

    fn interval(seq: u64) -> Segment {
        let mut s = Segment::new("node-a", seq);
        for e in 0..20 {
            let labels: Labels = vec![("executor".into(), e.to_string())];
            let stack: Vec<Arc<str>> =
                ["java.lang.Thread.run", "org.apache.spark.executor.Executor$TaskRunner.run", "com.shop.Job.compute"]
                    .iter()
                    .map(|f| Arc::from(format!("{f}{}", e % 3)))
                    .collect();
            s.add("shop", labels, stack, seq as i64 * 60_000, seq * 10 + e);
        }
        s
    }

    #[test]
    fn a_pack_keeps_each_section_and_shares_its_frames() {
        let sections: Vec<Segment> = (7..=9).map(interval).collect();
        let pack = Pack { node: "node-a".into(), sections: sections.clone() };
        let bytes = pack.encode();
        assert_eq!(&bytes[..8], b"STKDPAK1");
        assert_eq!(Pack::decode(&bytes), Ok(pack));
        let apart: usize = sections.iter().map(|s| s.encode().len()).sum();
        assert!(bytes.len() < apart, "one dictionary and one stream: {} bytes packed, {apart} apart", bytes.len());
        assert_eq!(Segment::decode(&bytes), Err(SegmentError::Magic("STKDSEG1".into())));
        assert!(matches!(Pack::decode(&bytes[..bytes.len() - 2]), Err(SegmentError::Inflate(_) | SegmentError::Damaged(_))));
    }

    /// Compaction's way, from the encoded segments: the same pack as from decoded ones; a
    /// damaged segment refused and the pack left as it was.
    #[test]
    fn a_pack_written_from_encoded_segments_is_the_pack_of_the_decoded_ones() {
        let sections: Vec<Segment> = (7..=9).map(interval).collect();
        let mut w = PackWriter::default();
        for s in &sections {
            assert_eq!(w.add(&s.encode(), s.seq), Ok(()));
        }
        let damaged = interval(10).encode();
        assert!(w.add(&damaged[..damaged.len() - 3], 10).is_err());
        assert_eq!(w.add(&damaged, 11), Err(SegmentError::Number { found: 10, named: 11 }));
        assert_eq!(w.add(b"STKDPAK1", 10), Err(SegmentError::Magic("STKDSEG1".into())));
        let bytes = w.finish("node-a");
        let want = Pack { node: "node-a".into(), sections };
        assert_eq!(Pack::decode(&bytes), Ok(want.clone()));
        assert_eq!(bytes, want.encode(), "the same bytes too");
    }

    /// What the importer reads: the counts of the sections asked for, as decoding gives them.
    #[test]
    fn counts_stream_the_sections_asked_for() {
        let sections: Vec<Segment> = (7..=9).map(interval).collect();
        let bytes = Pack { node: "node-a".into(), sections: sections.clone() }.encode();
        let counts = Counts::open(&bytes).expect("opens");
        let mut got = Segment::new("node-a", 0);
        let n = counts.each(|seq| seq >= 8, |app, labels, frames, time, count| got.add(app, labels.clone(), frames.to_vec(), time, count));
        let mut want = Segment::new("node-a", 0);
        want.merge(&sections[1]);
        want.merge(&sections[2]);
        assert_eq!((n, got), (2, want));
        // A segment: its one section, or none.
        let one = Counts::open(&sections[0].encode()).expect("opens");
        let mut sum = 0;
        assert_eq!(one.each(|seq| seq == 7, |_, _, _, _, c| sum += c), 1);
        assert_eq!(sum, sections[0].totals()["shop"]);
        assert_eq!(one.each(|seq| seq == 8, |_, _, _, _, _| panic!("not asked for")), 0);
        // Damaged: refused whole, before any count is used.
        assert!(Counts::open(&bytes[..bytes.len() - 2]).is_err());
        assert!(matches!(Counts::open(b"STKDSEG1"), Err(SegmentError::Inflate(_) | SegmentError::Damaged(0))));
        assert!(matches!(Counts::open(b"PK"), Err(SegmentError::Magic(_))));
    }
}
