//! The importer: every round ([`super::run`]), this node reads what other nodes wrote and adds
//! their counts to its store under the reserved label [`crate::store::NODE_LABEL`] (the
//! writer's id). Queries then sum every node's counts with no change to any of them; the label
//! is never listed or matched, and this node's outbox leaves those counts out.
//!
//! Each node's segments are numbered 1, 2, 3… and go up in that order, so what this node has
//! imported of another is one number (its watermark): every segment up to it. One listing that
//! starts after it (S3 `start-after`, [`keys::after`]) shows what is new, whether as segments,
//! as packs that compacted them, or as a retention marker ([`plan`]). The watermark is a note
//! written by the flush that makes the counts durable, in the same transaction
//! ([`Store::noting`]): after a crash the counts are in the store with their watermark, or
//! neither and read again.

use std::collections::HashMap;
use std::sync::Arc;

use super::keys::{self, Name};
use super::objects::{Listed, Objects};
use super::segment::Counts;
use crate::metrics::Metrics;
use crate::sample::{ProfileType, Stack};
use crate::store::{SourceSpec, Store, Writes, NODE_LABEL, PERIOD_LABEL, TYPE_LABEL};

/// The note of a node's watermark: `cluster:imported:<node>` → the number, in decimal.
const WATERMARK: &str = "cluster:imported:";
/// One note per segment key, as the first version of the importer kept them.
const LEGACY: &str = "segment:";

/// How far this node has imported each other node's segments, seeded from the store's notes.
#[derive(Debug, Default)]
pub struct Imported {
    upto: HashMap<String, u64>,
    /// This node's own segments written before its data dir (a data dir lost and replaced
    /// under the same id), read back like another node's: up to this number. `None` until
    /// known ([`super::uploader::number`]).
    pub own: Option<u64>,
}

impl Imported {
    pub fn load(store: &Store) -> Imported {
        let mut upto: HashMap<String, u64> = HashMap::new();
        for (key, _) in store.notes(LEGACY) {
            let key = &key[LEGACY.len()..];
            let Some(node) = key.strip_prefix("segments/").and_then(|k| k.split('/').next()) else { continue };
            if let Some(Name::Segment(seq)) = keys::parse(node, key) {
                let u = upto.entry(node.to_string()).or_default();
                *u = (*u).max(seq);
            }
        }
        for (key, value) in store.notes(WATERMARK) {
            if let Some(n) = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()) {
                upto.insert(key[WATERMARK.len()..].to_string(), n);
            }
        }
        Imported { upto, own: None }
    }

    /// Every segment of `node` up to this number is in this node's store.
    pub fn upto(&self, node: &str) -> u64 {
        self.upto.get(node).copied().unwrap_or(0)
    }
}

/// One step of catching up with a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Retention deleted everything up to `upto`: nothing to read.
    Skip { upto: u64 },
    /// Read `key` and take its segments `from..=to` (a pack's other sections are in the store
    /// already).
    Read { key: String, from: u64, to: u64 },
}

/// How to go on from watermark `upto` with what a listing after it showed, up to number
/// `limit`: from each next number, the object that covers it and reaches furthest (a pack over
/// its segments), until a number no object covers. A gap waits for the next round: a segment
/// is only ever missing because retention deleted it (then its marker says so), or because it
/// is being compacted (then its pack is there by the next listing).
pub fn plan(upto: u64, limit: u64, listed: &[(Name, Listed)]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut cursor = upto;
    let gone = keys::gone_upto(listed).min(limit);
    if gone > cursor {
        steps.push(Step::Skip { upto: gone });
        cursor = gone;
    }
    while cursor < limit {
        let next = cursor + 1;
        let best = listed
            .iter()
            .filter(|(n, _)| !matches!(n, Name::Gone(_)))
            .filter(|(n, _)| n.range().0 <= next && next <= n.range().1)
            .max_by_key(|(n, _)| n.range().1);
        let Some((name, l)) = best else { break };
        let to = name.range().1.min(limit);
        steps.push(Step::Read { key: l.key.clone(), from: next, to });
        cursor = to;
    }
    steps
}

/// Import what every other node wrote since this node last looked: how many segments.
pub async fn import_once(
    store: &Arc<Store>,
    objects: &Objects,
    me: &str,
    imported: &mut Imported,
    metrics: &Metrics,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for node in objects.children("segments/").await? {
        // This node's own segments only when they are its past (see [`Imported::own`]).
        let limit = if node == me { imported.own.unwrap_or(0) } else { u64::MAX };
        let upto = imported.upto(&node);
        if upto >= limit || crate::config::parse_node_id(&node).is_err() {
            continue;
        }
        let listed = keys::named(&node, objects.list_after(&keys::node_prefix(&node), Some(&keys::after(&node, upto))).await?);
        for step in plan(upto, limit, &listed) {
            let (from, to, bytes) = match step {
                Step::Skip { upto } => {
                    tracing::info!(node, upto, "segments of another node were deleted by retention before this node read them");
                    (0, upto, None)
                }
                Step::Read { key, from, to } => match objects.get(&key).await? {
                    Some(bytes) => (from, to, Some((key, bytes))),
                    // Compacted and deleted since the listing: the next round reads the pack.
                    None => break,
                },
            };
            let (s, node_id) = (Arc::clone(store), node.clone());
            let read = tokio::task::spawn_blocking(move || {
                let Some((key, bytes)) = bytes else {
                    add(&s, &node_id, None, to);
                    return Ok(0);
                };
                match Counts::open(&bytes) {
                    Ok(counts) => Ok(add(&s, &node_id, Some((&counts, from)), to)),
                    Err(e) => {
                        // Never readable: passed over, so that it is not fetched again and again.
                        add(&s, &node_id, None, to);
                        Err((key, e))
                    }
                }
            })
            .await?;
            match read {
                Ok(count) => {
                    metrics.segments.with_label_values(&["imported"]).inc_by(count);
                    n += count as usize;
                }
                Err((key, e)) => {
                    metrics.segments.with_label_values(&["damaged"]).inc();
                    tracing::error!(key, error = %e, "an object in the object store cannot be read; its segments are left out");
                }
            }
            imported.upto.insert(node.clone(), to);
        }
    }
    Ok(n)
}

/// Add the counts of sections `from..=upto` of a segment or pack as `node`'s, and `node`'s
/// watermark `upto`, with the note gate held (see the module's doc): how many sections.
fn add(store: &Store, node: &str, counts: Option<(&Counts, u64)>, upto: u64) -> u64 {
    let _gate = store.noting();
    let now = crate::now_ms();
    let mut refused = 0u64;
    let mut w = Writes::default();
    let sections = counts.map_or(0, |(counts, from)| {
        counts.each(
            |seq| (from..=upto).contains(&seq),
            |app, labels, stack, time, count| {
                let spec = || {
                    let mut spec = SourceSpec { node: Some(node.to_string()), ..SourceSpec::new(app.to_string(), Vec::new()) };
                    for (k, v) in labels {
                        match k.as_str() {
                            TYPE_LABEL => spec.profile = ProfileType::from_name(v).unwrap_or_default(),
                            PERIOD_LABEL => spec.period_ns = v.parse().ok(),
                            NODE_LABEL => {}
                            _ => spec.labels.push((k.clone(), v.clone())),
                        }
                    }
                    spec
                };
                let frames: Vec<&str> = stack.iter().map(|f| &**f).collect();
                let added = w
                    .resolve(store, origin(node, app, labels), spec)
                    .and_then(|id| store.add_stack(&mut w, id, &Stack::Frames(&frames), count, time, now));
                if added.is_err() {
                    refused += 1;
                }
            },
        )
    });
    drop(w);
    store.note(&format!("{WATERMARK}{node}"), upto.to_string().into_bytes());
    if refused > 0 {
        tracing::warn!(node, upto, refused, "counts of another node's segment were refused here (older than --retention, or a limit)");
    }
    sections
}

/// The origin of another node's label set: its own hash space (the seed), apart from every
/// input's.
fn origin(node: &str, app: &str, labels: &[(String, String)]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(u64::from_le_bytes(*b"segment\0"));
    for part in [node, app].into_iter().chain(labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])) {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(names: &[Name]) -> Vec<(Name, Listed)> {
        names
            .iter()
            .map(|n| {
                let key = match *n {
                    Name::Segment(s) => keys::segment("n2", s),
                    Name::Pack { first, last } => keys::pack("n2", first, last),
                    Name::Gone(g) => keys::gone("n2", g),
                };
                (*n, Listed { key, size: 0, modified_ms: 0 })
            })
            .collect()
    }

    fn read(key: String, from: u64, to: u64) -> Step {
        Step::Read { key, from, to }
    }

    #[test]
    fn plans_take_each_segment_once() {
        use Name::*;
        // New segments in order.
        assert_eq!(
            plan(4, u64::MAX, &listed(&[Segment(5), Segment(6)])),
            [read(keys::segment("n2", 5), 5, 5), read(keys::segment("n2", 6), 6, 6)]
        );
        // A pack over them, its sources still there: the pack, from where this node is.
        assert_eq!(
            plan(2, u64::MAX, &listed(&[Segment(3), Segment(4), Pack { first: 1, last: 4 }, Segment(5)])),
            [read(keys::pack("n2", 1, 4), 3, 4), read(keys::segment("n2", 5), 5, 5)]
        );
        // A gap (being compacted, or not up yet): wait at it.
        assert_eq!(plan(4, u64::MAX, &listed(&[Segment(5), Segment(7)])), [read(keys::segment("n2", 5), 5, 5)]);
        assert_eq!(plan(4, u64::MAX, &listed(&[Segment(6)])), []);
        // Retention took everything up to 8: skip to it, then on.
        assert_eq!(
            plan(2, u64::MAX, &listed(&[Gone(8), Pack { first: 5, last: 12 }, Segment(13)])),
            [Step::Skip { upto: 8 }, read(keys::pack("n2", 5, 12), 9, 12), read(keys::segment("n2", 13), 13, 13)]
        );
        // A marker this node is past already changes nothing.
        assert_eq!(plan(9, u64::MAX, &listed(&[Gone(8), Segment(10)])), [read(keys::segment("n2", 10), 10, 10)]);
        // Up to a limit (a node's own past): cut there, a pack across it read up to it.
        let past = listed(&[Gone(2), Pack { first: 1, last: 4 }, Segment(5), Segment(6)]);
        assert_eq!(plan(0, 3, &past), [Step::Skip { upto: 2 }, read(keys::pack("n2", 1, 4), 3, 3)]);
        assert_eq!(plan(0, 1, &past), [Step::Skip { upto: 1 }]);
        assert_eq!(plan(3, 3, &past), []);
    }
}
