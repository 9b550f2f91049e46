//! The importer: every round ([`super::run`]), this node reads the segments other nodes wrote
//! and adds their counts to its store under the reserved label [`crate::store::NODE_LABEL`]
//! (the writer's id). Queries then sum every node's counts with no change to any of them; the
//! label is never listed or matched, and this node's outbox leaves those counts out.
//!
//! Each segment is imported once: a note (`segment:<key>`) is written by the flush that makes
//! its counts durable, in the same transaction ([`Store::noting`]), so after a crash a segment
//! is either in the store with its note or not at all, and then imported again.

use std::collections::HashSet;
use std::sync::Arc;

use super::objects::Objects;
use super::segment::Segment;
use crate::metrics::Metrics;
use crate::sample::{ProfileType, Stack};
use crate::store::{SourceSpec, Store, Writes, NODE_LABEL, PERIOD_LABEL, TYPE_LABEL};

const NOTE: &str = "segment:";

/// What this node has imported (or given up on), seeded from the store's notes.
#[derive(Debug, Default)]
pub struct Imported {
    keys: HashSet<String>,
}

impl Imported {
    pub fn load(store: &Store) -> Imported {
        Imported { keys: store.notes(NOTE).into_iter().filter_map(|(k, _)| k.strip_prefix(NOTE).map(str::to_string)).collect() }
    }
}

/// The node that wrote a segment key (`segments/<node>/<seq>.seg`).
fn writer(key: &str) -> Option<&str> {
    key.strip_prefix("segments/")?.split('/').next().filter(|n| !n.is_empty())
}

/// Import every segment of another node not imported yet: how many.
pub async fn import_once(
    store: &Arc<Store>,
    objects: &Objects,
    me: &str,
    imported: &mut Imported,
    metrics: &Metrics,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for listed in objects.list("segments/").await? {
        let Some(node) = writer(&listed.key) else { continue };
        if node == me || imported.keys.contains(&listed.key) {
            continue;
        }
        let Some(bytes) = objects.get(&listed.key).await? else { continue };
        let (s, key, node) = (Arc::clone(store), listed.key.clone(), node.to_string());
        let outcome = tokio::task::spawn_blocking(move || match Segment::decode(&bytes) {
            Ok(segment) => {
                add(&s, &node, &segment);
                s.note(&format!("{NOTE}{key}"), Vec::new());
                Ok(())
            }
            Err(e) => {
                // Never readable: noted, so that it is not fetched again and again.
                s.note(&format!("{NOTE}{key}"), e.to_string().into_bytes());
                Err(e)
            }
        })
        .await?;
        match outcome {
            Ok(()) => metrics.segments.with_label_values(&["imported"]).inc(),
            Err(e) => {
                metrics.segments.with_label_values(&["damaged"]).inc();
                tracing::error!(key = %listed.key, error = %e, "a segment in the object store cannot be read; it is left out");
            }
        }
        imported.keys.insert(listed.key);
        n += 1;
    }
    Ok(n)
}

/// Add a segment's counts as `node`'s, with the note gate held (see the module's doc).
fn add(store: &Store, node: &str, segment: &Segment) {
    let _gate = store.noting();
    let now = crate::now_ms();
    let mut refused = 0u64;
    for (app, counts) in &segment.apps {
        let mut w = Writes::default();
        for ((labels, frames, time), count) in counts {
            let mut spec = SourceSpec { node: Some(node.to_string()), ..SourceSpec::new(app.clone(), Vec::new()) };
            for (k, v) in labels {
                match k.as_str() {
                    TYPE_LABEL => spec.profile = ProfileType::from_name(v).unwrap_or_default(),
                    PERIOD_LABEL => spec.period_ns = v.parse().ok(),
                    NODE_LABEL => {}
                    _ => spec.labels.push((k.clone(), v.clone())),
                }
            }
            let origin = origin(node, app, labels);
            let frames: Vec<&str> = frames.iter().map(|f| &**f).collect();
            let added = store.source(origin, || spec).and_then(|source| {
                let id = w.adopt(&source);
                store.add_stack(&mut w, id, &Stack::Frames(&frames), *count, *time, now)
            });
            if added.is_err() {
                refused += 1;
            }
        }
    }
    if refused > 0 {
        tracing::warn!(
            node,
            seq = segment.seq,
            refused,
            "counts of another node's segment were refused here (older than --retention, or a limit)"
        );
    }
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
