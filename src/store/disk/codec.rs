//! How rows are encoded: LEB128 varints (zig-zag for signed values), length-prefixed strings,
//! and the bucket blob. Every decoder returns `None` on malformed input, never panics.

use crate::store::Labels;

/// LEB128 varints: the compact integer form of every blob.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Zig-zag for signed values.
pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn get_ivarint(input: &mut &[u8]) -> Option<i64> {
    let v = get_varint(input)?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn get_str(input: &mut &[u8]) -> Option<String> {
    let len = get_varint(input)? as usize;
    if input.len() < len {
        return None;
    }
    let (s, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(s.to_vec()).ok()
}

/// Entries sorted by (label set, stack), each once: runs of one label set, stack ids
/// delta-encoded: `labels, n, (stack delta, count) × n`, repeated.
pub(crate) fn encode_bucket(entries: &[(u32, u32, u64)], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < entries.len() {
        let labels = entries[i].0;
        let run = entries[i..].iter().take_while(|e| e.0 == labels).count();
        put_varint(out, u64::from(labels));
        put_varint(out, run as u64);
        let mut prev = 0u32;
        for &(_, stack, count) in &entries[i..i + run] {
            put_varint(out, u64::from(stack - prev));
            put_varint(out, count);
            prev = stack;
        }
        i += run;
    }
}

pub(crate) fn decode_bucket(mut blob: &[u8], mut f: impl FnMut(u32, u32, u64)) {
    while !blob.is_empty() {
        let (Some(labels), Some(run)) = (get_varint(&mut blob), get_varint(&mut blob)) else { return };
        let mut stack = 0u64;
        for _ in 0..run {
            let (Some(delta), Some(count)) = (get_varint(&mut blob), get_varint(&mut blob)) else { return };
            stack += delta;
            f(labels as u32, stack as u32, count);
        }
    }
}

/// `stacks` row: xxh3 identity of the stack, then its frame ids.
pub(crate) fn encode_stack_row(out: &mut Vec<u8>, identity: u64, frames: &[u32]) {
    out.clear();
    out.extend_from_slice(&identity.to_le_bytes());
    for f in frames {
        put_varint(out, u64::from(*f));
    }
}

pub(crate) fn decode_stack_row(blob: &[u8]) -> Option<(u64, Vec<u32>)> {
    let (identity, mut b) = blob.split_first_chunk::<8>()?;
    let mut frames = Vec::new();
    while !b.is_empty() {
        frames.push(u32::try_from(get_varint(&mut b)?).ok()?);
    }
    Some((u64::from_le_bytes(*identity), frames))
}

/// A label set's running totals and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabelSetRow {
    pub samples: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub labels: Labels,
}

/// `labelsets` row: samples, first and last sample time, then the labels.
pub(crate) fn encode_labelset_row(out: &mut Vec<u8>, samples: u64, first_ms: i64, last_ms: i64, labels: &Labels) {
    out.clear();
    put_varint(out, samples);
    put_ivarint(out, first_ms);
    put_ivarint(out, last_ms);
    put_varint(out, labels.len() as u64);
    for (k, v) in labels {
        put_str(out, k);
        put_str(out, v);
    }
}

pub(crate) fn decode_labelset_row(mut b: &[u8]) -> Option<LabelSetRow> {
    let samples = get_varint(&mut b)?;
    let first_ms = get_ivarint(&mut b)?;
    let last_ms = get_ivarint(&mut b)?;
    let n = get_varint(&mut b)?;
    let mut labels = Vec::new();
    for _ in 0..n {
        labels.push((get_str(&mut b)?, get_str(&mut b)?));
    }
    Some(LabelSetRow { samples, first_ms, last_ms, labels })
}

/// A stored gauge: its family by name and kind, its own label value, its label set, value and
/// when it was last updated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GaugeRow {
    pub family: String,
    pub kind: u8,
    pub label_value: String,
    pub labels: u32,
    pub bits: u64,
    pub updated_ms: i64,
}

/// `gauges` row.
pub(crate) fn encode_gauge_row(out: &mut Vec<u8>, row: &GaugeRow) {
    out.clear();
    put_str(out, &row.family);
    out.push(row.kind);
    put_str(out, &row.label_value);
    put_varint(out, u64::from(row.labels));
    out.extend_from_slice(&row.bits.to_le_bytes());
    put_ivarint(out, row.updated_ms);
}

pub(crate) fn decode_gauge_row(mut b: &[u8]) -> Option<GaugeRow> {
    let family = get_str(&mut b)?;
    let (&kind, rest) = b.split_first()?;
    b = rest;
    let label_value = get_str(&mut b)?;
    let labels = u32::try_from(get_varint(&mut b)?).ok()?;
    let (bits, rest) = b.split_first_chunk::<8>()?;
    b = rest;
    let updated_ms = get_ivarint(&mut b)?;
    Some(GaugeRow { family, kind, label_value, labels, bits: u64::from_le_bytes(*bits), updated_ms })
}

/// A stored engine series (see [`crate::sample::Series`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SeriesRow {
    pub origin: u8,
    pub family: String,
    pub kind: u8,
    pub suffix: String,
    pub labels: Vec<(String, String)>,
    pub bits: u64,
    pub updated_ms: i64,
}

/// `series` row.
pub(crate) fn encode_series_row(out: &mut Vec<u8>, row: &SeriesRow) {
    out.clear();
    out.push(row.origin);
    put_str(out, &row.family);
    out.push(row.kind);
    put_str(out, &row.suffix);
    put_varint(out, row.labels.len() as u64);
    for (k, v) in &row.labels {
        put_str(out, k);
        put_str(out, v);
    }
    out.extend_from_slice(&row.bits.to_le_bytes());
    put_ivarint(out, row.updated_ms);
}

pub(crate) fn decode_series_row(mut b: &[u8]) -> Option<SeriesRow> {
    let (&origin, rest) = b.split_first()?;
    b = rest;
    let family = get_str(&mut b)?;
    let (&kind, rest) = b.split_first()?;
    b = rest;
    let suffix = get_str(&mut b)?;
    let n = get_varint(&mut b)?;
    let mut labels = Vec::new();
    for _ in 0..n {
        labels.push((get_str(&mut b)?, get_str(&mut b)?));
    }
    let (bits, rest) = b.split_first_chunk::<8>()?;
    b = rest;
    let updated_ms = get_ivarint(&mut b)?;
    b.is_empty().then_some(SeriesRow { origin, family, kind, suffix, labels, bits: u64::from_le_bytes(*bits), updated_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let mut buf = Vec::new();
        let values = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        for v in values {
            put_varint(&mut buf, v);
        }
        let signed = [0i64, -1, 1, i64::MIN, i64::MAX, -123456789];
        for v in signed {
            put_ivarint(&mut buf, v);
        }
        put_str(&mut buf, "héllo");
        let mut r = &buf[..];
        for v in values {
            assert_eq!(get_varint(&mut r), Some(v));
        }
        for v in signed {
            assert_eq!(get_ivarint(&mut r), Some(v));
        }
        assert_eq!(get_str(&mut r).as_deref(), Some("héllo"));
        assert!(r.is_empty());
        assert_eq!(get_varint(&mut &[0x80u8][..]), None, "truncated");
    }

    #[test]
    fn rows_round_trip_and_refuse_truncation() {
        let mut blob = Vec::new();
        encode_stack_row(&mut blob, 0xdead_beef, &[0, 300, 7]);
        assert_eq!(decode_stack_row(&blob), Some((0xdead_beef, vec![0, 300, 7])));
        assert_eq!(decode_stack_row(&blob[..5]), None);
        let labels = vec![("executor".to_string(), "7".to_string())];
        encode_labelset_row(&mut blob, 12, -5, 99, &labels);
        assert_eq!(decode_labelset_row(&blob), Some(LabelSetRow { samples: 12, first_ms: -5, last_ms: 99, labels }));
        assert_eq!(decode_labelset_row(&blob[..blob.len() - 1]), None);
        let row = GaugeRow { family: "g".into(), kind: 1, label_value: "heap".into(), labels: 3, bits: 2.5f64.to_bits(), updated_ms: 7 };
        encode_gauge_row(&mut blob, &row);
        assert_eq!(decode_gauge_row(&blob), Some(row));
        assert_eq!(decode_gauge_row(&blob[..blob.len() - 2]), None);

        let row = SeriesRow {
            origin: 2,
            family: "flink_taskmanager_Status_JVM_Memory_Heap_Used".into(),
            kind: 2,
            suffix: "_count".into(),
            labels: vec![("host".into(), "localhost".into()), ("tm_id".into(), "localhost:43463_fb77ac".into())],
            bits: (-7.5f64).to_bits(),
            updated_ms: 1_795_302_508_650,
        };
        encode_series_row(&mut blob, &row);
        assert_eq!(decode_series_row(&blob), Some(row));
        assert_eq!(decode_series_row(&blob[..blob.len() - 1]), None, "a cut row is refused");
    }

    #[test]
    fn bucket_blobs_round_trip() {
        let mut blob = Vec::new();
        encode_bucket(&[(0, 1, 1), (0, 5, 3), (2, 7, 300), (2, 1000, 1)], &mut blob);
        let mut back = Vec::new();
        decode_bucket(&blob, |l, s, c| back.push((l, s, c)));
        assert_eq!(back, [(0, 1, 1), (0, 5, 3), (2, 7, 300), (2, 1000, 1)]);
        assert_eq!(blob.len(), 14, "runs and deltas keep entries small");
    }
}
