//! The object store's keys (docs/scale-out.md, "Keys"). Everything of one node lives below
//! `segments/<node>/`, named so that keys sort by segment number: its segments, the packs that
//! compacted them, and the markers retention leaves. One listing that starts after a number
//! ([`after`]) therefore shows everything a reader has not seen yet, and nothing else.

use super::objects::Listed;

/// What a key below `segments/<node>/` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Name {
    /// `<seq>.seg`: one interval of the node.
    Segment(u64),
    /// `<last>-<first>.pack`: segments `first..=last`, each its own section. Named by its last
    /// number first, so that it sorts with the segments it covers the end of.
    Pack { first: u64, last: u64 },
    /// `<upto>-gone`: retention deleted every segment and pack of the node up to `upto`.
    Gone(u64),
}

impl Name {
    /// The segment numbers it covers (a marker: everything up to its number).
    pub fn range(self) -> (u64, u64) {
        match self {
            Name::Segment(s) => (s, s),
            Name::Pack { first, last } => (first, last),
            Name::Gone(upto) => (0, upto),
        }
    }
}

/// Where one node's objects are.
pub fn node_prefix(node: &str) -> String {
    format!("segments/{node}/")
}

/// Numbers are zero-padded to 12 digits, so that keys sort by number.
pub fn segment(node: &str, seq: u64) -> String {
    format!("segments/{node}/{seq:012}.seg")
}

pub fn pack(node: &str, first: u64, last: u64) -> String {
    format!("segments/{node}/{last:012}-{first:012}.pack")
}

pub fn gone(node: &str, upto: u64) -> String {
    format!("segments/{node}/{upto:012}-gone")
}

/// The lease of the compaction of `first..=last` of `node`: outside `segments/`, so that no
/// reader lists it.
pub fn lease(node: &str, first: u64, last: u64) -> String {
    format!("leases/{node}/{last:012}-{first:012}")
}

/// A listing's start (S3 `start-after`) that skips every object of `node` that covers nothing
/// after `seq`: `~` sorts after the `.`, `-` that follow a number.
pub fn after(node: &str, seq: u64) -> String {
    format!("segments/{node}/{seq:012}~")
}

/// `node`'s listed objects with what each names; anything else left out.
pub fn named(node: &str, listed: Vec<Listed>) -> Vec<(Name, Listed)> {
    listed.into_iter().filter_map(|l| parse(node, &l.key).map(|n| (n, l))).collect()
}

/// Up to which number retention deleted, by the markers among `names` (0: nothing).
pub fn gone_upto(names: &[(Name, Listed)]) -> u64 {
    names.iter().filter_map(|(n, _)| if let Name::Gone(g) = n { Some(*g) } else { None }).max().unwrap_or(0)
}

/// What a listed key names, if it is one of `node`'s objects.
pub fn parse(node: &str, key: &str) -> Option<Name> {
    let name = key.strip_prefix("segments/")?.strip_prefix(node)?.strip_prefix('/')?;
    let number = |s: &str| (s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    if let Some(seq) = name.strip_suffix(".seg") {
        return number(seq).map(Name::Segment);
    }
    if let Some(range) = name.strip_suffix(".pack") {
        let (last, first) = range.split_once('-')?;
        let (first, last) = (number(first)?, number(last)?);
        return (first <= last).then_some(Name::Pack { first, last });
    }
    name.strip_suffix("-gone").and_then(number).map(Name::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_number() {
        assert_eq!(parse("n1", &segment("n1", 7)), Some(Name::Segment(7)));
        assert_eq!(parse("n1", &pack("n1", 1, 60)), Some(Name::Pack { first: 1, last: 60 }));
        assert_eq!(parse("n1", &gone("n1", 42)), Some(Name::Gone(42)));
        assert_eq!(parse("n1", &segment("n10", 7)), None, "another node's");
        assert_eq!(parse("n1", "segments/n1/.000000000007.seg.1.tmp"), None);
        assert_eq!(parse("n1", "segments/n1/000000000060-000000000061.pack"), None, "first after last");
        // A reader that has everything up to 60 lists after 60: it sees 61 and what covers it,
        // never 60 itself nor the pack that ends at 60.
        let mut keys = [segment("n1", 61), pack("n1", 1, 60), segment("n1", 60), gone("n1", 60), pack("n1", 61, 120), segment("n1", 59)];
        keys.sort();
        let start = after("n1", 60);
        let seen: Vec<_> = keys.iter().filter(|k| **k > start).filter_map(|k| parse("n1", k)).collect();
        assert_eq!(seen, [Name::Segment(61), Name::Pack { first: 61, last: 120 }]);
    }
}
