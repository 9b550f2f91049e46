//! pprof (`perftools.profiles.Profile`, Google's `profile.proto`), the profile format of Go,
//! Node.js (`@datadog/pprof`) and the Pyroscope clients (`pyroscope-rs`, `pyroscope-io`): the
//! fields stackd reads, decoded with `prost` (the others are stepped over by the decoder), and
//! the checks that make a decoded profile safe to walk: every id a sample, location or line
//! refers to exists, every string index is inside the string table.
//!
//! What a profile's values mean (which sample type is which profile type of stackd) is the
//! input's business: [`crate::input::pyroscope`].

use std::collections::HashMap;

use prost::Message;

/// `Profile`: only the fields stackd reads (prost skips the others).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
}

/// `ValueType`: string-table indices of a type and its unit.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: locations leaf first, one value per sample type, labels.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`: a string label (`str`) or a numeric one (`num`, ignored by stackd).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

/// `Mapping`: a binary; its file name names frames that have no symbol.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
}

/// `Location`: an address, and the functions at it (the last line is the caller the others
/// were inlined into).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`: a function and a line in it.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `Function`: string-table indices of its names and file.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// Why a pprof body cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not a pprof profile (protobuf): {0}")]
    Protobuf(String),
    #[error("the pprof profile is inconsistent: {0}")]
    Inconsistent(String),
    #[error("the pprof profile holds {count} {what}, over the {MAX_ELEMENTS} stackd decodes in one profile")]
    TooLarge { what: &'static str, count: usize },
}

/// Samples, locations, functions and strings (each) that one profile may hold: a profile is
/// counted before it is decoded, so that its decoded form (several times its bytes) stays
/// bounded.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// Count the samples, locations, functions and strings of an encoded profile (its top-level
/// fields 2, 4, 5 and 6) without decoding them; refuse more than [`MAX_ELEMENTS`] of any.
pub fn count_elements(bytes: &[u8]) -> Result<[usize; 4], Error> {
    let bad = |why: &str| Error::Protobuf(why.to_string());
    let mut at = 0usize;
    let mut counts = [0usize; 4];
    let varint = |at: &mut usize| -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *bytes.get(*at).ok_or_else(|| bad("cut off inside a varint"))?;
            *at += 1;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("a varint of more than 10 bytes"))
    };
    while at < bytes.len() {
        let tag = varint(&mut at)?;
        match tag & 7 {
            0 => {
                varint(&mut at)?;
            }
            1 => at = at.checked_add(8).filter(|e| *e <= bytes.len()).ok_or_else(|| bad("cut off inside a fixed64"))?,
            5 => at = at.checked_add(4).filter(|e| *e <= bytes.len()).ok_or_else(|| bad("cut off inside a fixed32"))?,
            2 => {
                let len = varint(&mut at)?;
                let end = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|e| *e <= bytes.len());
                at = end.ok_or_else(|| bad("a length beyond the end of the profile"))?;
            }
            _ => return Err(bad("an unknown wire type")),
        }
        let slot = match tag >> 3 {
            2 => 0,
            4 => 1,
            5 => 2,
            6 => 3,
            _ => continue,
        };
        counts[slot] += 1;
        if counts[slot] > MAX_ELEMENTS {
            return Err(Error::TooLarge { what: ["samples", "locations", "functions", "strings"][slot], count: counts[slot] });
        }
    }
    Ok(counts)
}

/// The frame of a location that has neither a function nor a mapping with a file name.
pub const UNKNOWN_FRAME: &str = "[unknown]";

/// A decoded profile whose references are all checked, and each location's frames (innermost
/// first, as pprof lists a location's lines) named once.
#[derive(Debug)]
pub struct Checked {
    pub profile: Profile,
    /// For each location (by position in `profile.location`), its frames: ranges in `frames`.
    location_frames: Vec<(u32, u32)>,
    /// Frame names, string-table indices (`u32::MAX`: a name made here, in `made`).
    frames: Vec<FrameName>,
    made: Vec<String>,
    /// Location id → position.
    by_id: HashMap<u64, u32, ahash::RandomState>,
    /// Location ids are their positions plus one (what every encoder writes): no map needed.
    dense: bool,
}

#[derive(Clone, Copy, Debug)]
enum FrameName {
    Table(u32),
    Made(u32),
}

impl Checked {
    /// The string at a checked index.
    pub fn string(&self, index: i64) -> &str {
        self.profile.string_table.get(index as usize).map_or("", String::as_str)
    }

    /// Call `f` with each frame of a sample's stack, root first (a location's inlined functions
    /// after the function they were inlined into), at most `max` of them (the root-most);
    /// returns how many there were in all.
    pub fn frames_of<'s>(&'s self, sample: &Sample, max: usize, f: &mut impl FnMut(&'s str)) -> usize {
        let mut n = 0;
        for at in self.locations_of(sample) {
            for frame in self.location_frames(at) {
                if n < max {
                    f(frame);
                }
                n += 1;
            }
        }
        n
    }

    /// The positions (in `profile.location`) of a sample's locations, root first.
    pub fn locations_of<'s>(&'s self, sample: &'s Sample) -> impl Iterator<Item = usize> + 's {
        sample.location_id.iter().rev().map(|id| if self.dense { (*id - 1) as usize } else { self.by_id[id] as usize })
    }

    /// The frames of the location at position `at`, root first.
    pub fn location_frames(&self, at: usize) -> impl Iterator<Item = &str> {
        let (start, end) = self.location_frames[at];
        self.frames[start as usize..end as usize].iter().rev().map(|frame| match *frame {
            FrameName::Table(i) => self.profile.string_table[i as usize].as_str(),
            FrameName::Made(i) => self.made[i as usize].as_str(),
        })
    }

    /// Locations in the profile.
    pub fn locations(&self) -> usize {
        self.location_frames.len()
    }
}

/// Decode a pprof profile (not compressed) and check it.
pub fn decode(bytes: &[u8]) -> Result<Checked, Error> {
    count_elements(bytes)?;
    let profile = Profile::decode(bytes).map_err(|e| Error::Protobuf(e.to_string()))?;
    check(profile)
}

fn inconsistent(message: String) -> Error {
    Error::Inconsistent(message)
}

/// Check every reference of a decoded profile, and name each location's frames.
pub fn check(profile: Profile) -> Result<Checked, Error> {
    let strings = profile.string_table.len();
    let string = |what: &str, i: i64| -> Result<i64, Error> {
        if i < 0 || i as usize >= strings {
            return Err(inconsistent(format!("{what} refers to string {i}, the table has {strings}")));
        }
        Ok(i)
    };
    if strings == 0 || !profile.string_table[0].is_empty() {
        return Err(inconsistent("the string table must start with the empty string".to_string()));
    }
    for t in profile.sample_type.iter().chain(profile.period_type.as_ref()) {
        string("a sample type", t.r#type)?;
        string("a sample type's unit", t.unit)?;
    }
    let types = profile.sample_type.len();
    let mut functions: HashMap<u64, Function, ahash::RandomState> = HashMap::default();
    for f in &profile.function {
        string("a function's name", f.name)?;
        string("a function's system name", f.system_name)?;
        string("a function's file name", f.filename)?;
        if f.id == 0 || functions.insert(f.id, *f).is_some() {
            return Err(inconsistent(format!("function id {} is 0 or given twice", f.id)));
        }
    }
    let mut mappings: HashMap<u64, i64, ahash::RandomState> = HashMap::default();
    for m in &profile.mapping {
        string("a mapping's file name", m.filename)?;
        if m.id == 0 || mappings.insert(m.id, m.filename).is_some() {
            return Err(inconsistent(format!("mapping id {} is 0 or given twice", m.id)));
        }
    }
    let mut by_id: HashMap<u64, u32, ahash::RandomState> = HashMap::default();
    let mut dense = true;
    let mut frames = Vec::with_capacity(profile.location.len());
    let mut location_frames = Vec::with_capacity(profile.location.len());
    let mut made: Vec<String> = Vec::new();
    for (at, l) in profile.location.iter().enumerate() {
        dense &= l.id == at as u64 + 1;
        if l.id == 0 || by_id.insert(l.id, at as u32).is_some() {
            return Err(inconsistent(format!("location id {} is 0 or given twice", l.id)));
        }
        let start = frames.len() as u32;
        for line in &l.line {
            let f = functions
                .get(&line.function_id)
                .ok_or_else(|| inconsistent(format!("location {} refers to function {}, which is not there", l.id, line.function_id)))?;
            let name = if f.name != 0 { f.name } else { f.system_name };
            if name != 0 {
                frames.push(FrameName::Table(name as u32));
            } else {
                made.push(UNKNOWN_FRAME.to_string());
                frames.push(FrameName::Made(made.len() as u32 - 1));
            }
        }
        if l.line.is_empty() {
            // Not symbolized: the binary's name (and the address), as Pyroscope shows it.
            let file = match l.mapping_id {
                0 => 0,
                m => {
                    *mappings.get(&m).ok_or_else(|| inconsistent(format!("location {} refers to mapping {m}, which is not there", l.id)))?
                }
            };
            let text = match file {
                0 => format!("{UNKNOWN_FRAME} 0x{:x}", l.address),
                f => {
                    let path = profile.string_table[f as usize].as_str();
                    format!("{} 0x{:x}", path.rsplit('/').next().unwrap_or(path), l.address)
                }
            };
            made.push(text);
            frames.push(FrameName::Made(made.len() as u32 - 1));
        }
        location_frames.push((start, frames.len() as u32));
    }
    for s in &profile.sample {
        if s.value.len() != types {
            return Err(inconsistent(format!("a sample has {} values for {types} sample types", s.value.len())));
        }
        if let Some(id) = s.location_id.iter().find(|id| !by_id.contains_key(id)) {
            return Err(inconsistent(format!("a sample refers to location {id}, which is not there")));
        }
        for l in &s.label {
            string("a label's name", l.key)?;
            string("a label's value", l.str)?;
        }
    }
    if dense {
        by_id = HashMap::default();
    }
    Ok(Checked { profile, location_frames, frames, made, by_id, dense })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn profile() -> Profile {
        Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![Sample { location_id: vec![2, 1], value: vec![7], label: vec![Label { key: 5, str: 6, num: 0 }] }],
            mapping: vec![Mapping { id: 1, filename: 7 }],
            location: vec![
                Location { id: 1, mapping_id: 1, address: 0x10, line: vec![Line { function_id: 1, line: 3 }] },
                // `inner` inlined into `outer`.
                Location {
                    id: 2,
                    mapping_id: 1,
                    address: 0x20,
                    line: vec![Line { function_id: 3, line: 9 }, Line { function_id: 2, line: 4 }],
                },
            ],
            function: vec![
                Function { id: 1, name: 3, system_name: 0, filename: 0 },
                Function { id: 2, name: 4, system_name: 0, filename: 0 },
                Function { id: 3, name: 8, system_name: 0, filename: 0 },
            ],
            string_table: strings(&["", "cpu", "nanoseconds", "main", "outer", "thread", "worker-1", "/usr/lib/libc.so.6", "inner"]),
            ..Profile::default()
        }
    }

    fn stack(c: &Checked, s: &Sample) -> Vec<String> {
        let mut out = Vec::new();
        c.frames_of(s, usize::MAX, &mut |f| out.push(f.to_string()));
        out
    }

    #[test]
    fn frames_root_first_with_inlined_functions_after_their_caller() {
        let p = profile();
        let bytes = p.encode_to_vec();
        let c = decode(&bytes).expect("valid");
        assert_eq!(stack(&c, &c.profile.sample[0]), ["main", "outer", "inner"]);
        let mut cut = Vec::new();
        assert_eq!(c.frames_of(&c.profile.sample[0], 2, &mut |f| cut.push(f)), 3);
        assert_eq!(cut, ["main", "outer"]);
    }

    #[test]
    fn unsymbolized_locations_are_named_by_their_binary_and_ids_need_not_be_dense() {
        let mut p = profile();
        p.location[0].line.clear();
        p.location[0].id = 40;
        p.sample[0].location_id = vec![2, 40];
        let c = check(p).expect("valid");
        assert_eq!(stack(&c, &c.profile.sample[0]), ["libc.so.6 0x10", "outer", "inner"]);
    }

    #[test]
    fn dangling_references_are_refused() {
        type Case = (fn(&mut Profile), &'static str);
        let cases: Vec<Case> = vec![
            (|p| p.sample[0].location_id.push(99), "location 99"),
            (|p| p.location[0].line[0].function_id = 77, "function 77"),
            (|p| p.location[0].mapping_id = 5, ""),
            (|p| p.function[0].name = 1000, "string 1000"),
            (|p| p.sample[0].label[0].str = -1, "string -1"),
            (|p| p.sample[0].value.push(1), "2 values for 1 sample types"),
            (|p| p.location[1].id = 1, "location id 1"),
            (|p| p.string_table[0] = "x".into(), "empty string"),
            (|p| p.sample_type[0].unit = 9, "string 9"),
        ];
        for (i, (break_it, says)) in cases.into_iter().enumerate() {
            let mut p = profile();
            break_it(&mut p);
            if i == 2 {
                // A symbolized location's mapping is not needed; unsymbolized, it is.
                p.location[0].line.clear();
            }
            let e = check(p).expect_err("refused");
            assert!(matches!(e, Error::Inconsistent(_)), "{e}");
            assert!(e.to_string().contains(says), "{e} should say {says:?}");
        }
    }

    #[test]
    fn a_profile_of_too_many_samples_is_refused_before_it_is_decoded() {
        // A million and one empty samples: two bytes each.
        let bytes: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], MAX_ELEMENTS + 1).flatten().collect();
        assert_eq!(count_elements(&bytes[..bytes.len() - 2]).expect("at the limit")[0], MAX_ELEMENTS);
        assert_eq!(decode(&bytes).expect_err("over"), Error::TooLarge { what: "samples", count: MAX_ELEMENTS + 1 });
    }

    #[test]
    fn not_protobuf() {
        assert!(matches!(decode(b"\xff\xff\xff\xff"), Err(Error::Protobuf(_))));
        // A length that claims a gigabyte.
        assert!(matches!(decode(&[0x12, 0x80, 0x80, 0x80, 0x80, 0x04, 1]), Err(Error::Protobuf(_))));
    }
}
