//! Compaction and retention of the object store (docs/scale-out.md, "Compaction"). Any node
//! does it, for every node (one that never returns too), every few rounds ([`super::run`]):
//!
//! 1. **Packs.** A node's segments are grouped in fixed windows of numbers (1–60, 61–120, … with
//!    `--pack-segments 60`). Once a window is closed (a later number exists) and has no pack,
//!    its segments become one pack, `<last>-<first>.pack`, each segment its own section. Two
//!    nodes never merge the same window: the merge starts with a lease written put-if-absent,
//!    and the loser leaves the window alone. Even a merge repeated after an expired lease
//!    changes nothing: the pack is written put-if-absent too, and readers take each section
//!    once ([`super::importer::plan`]).
//! 2. **Sources.** A pack's segments are deleted once the pack is older than the grace period
//!    (`5 × --segment-interval`): longer than any reader takes between listing a segment and
//!    fetching it, and a reader that finds one gone reads the pack in its next round.
//! 3. **Retention.** Objects written before `--retention` (plus `--max-future`: no count in
//!    them can be newer) are deleted in number order, after a marker `<upto>-gone` that tells
//!    readers not to wait for them.

use std::collections::BTreeMap;

use axum::body::Bytes;

use super::keys::{self, Name};
use super::objects::{Listed, Objects, Put};
use super::segment::PackWriter;
use crate::metrics::Metrics;

/// How compaction runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Segments per pack (the window).
    pub pack_segments: u64,
    /// How long a pack's segments stay after it is written.
    pub grace_ms: i64,
    /// How long a compaction lease holds before another node may take the window.
    pub lease_ms: i64,
    /// Objects written longer ago than this are deleted (`None`: kept).
    pub keep_ms: Option<i64>,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Packs this node wrote: (node, first, last).
    pub packed: Vec<(String, u64, u64)>,
    /// Windows whose lease another node held.
    pub lease_held: u64,
    /// Windows this node merged and found packed already (a lease that expired under a slow
    /// merge): the work done twice, the data still once.
    pub repeated: u64,
    /// Segments deleted because their pack was older than the grace period.
    pub sources_deleted: u64,
    /// Segments and packs deleted by retention.
    pub expired: u64,
    /// Bytes of the segments this node merged, and of the packs it wrote.
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// One pass over every node's objects at `now_ms`.
pub async fn compact_once(objects: &Objects, me: &str, settings: Settings, now_ms: i64, metrics: &Metrics) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let mut report = Report::default();
    let pass = async {
        for node in objects.children("segments/").await? {
            if crate::config::parse_node_id(&node).is_ok() {
                compact_node(objects, me, &node, settings, now_ms, &mut report).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    if !report.packed.is_empty() {
        tracing::info!(
            packs = report.packed.len(),
            read_bytes = report.read_bytes,
            written_bytes = report.written_bytes,
            ms = started.elapsed().as_millis() as u64,
            "compaction: segments merged into packs"
        );
    }
    let count = |outcome: &str, n: u64| metrics.compaction.with_label_values(&[outcome]).inc_by(n);
    count("packed", report.packed.len() as u64);
    count("lease_held", report.lease_held);
    count("repeated", report.repeated);
    count("sources_deleted", report.sources_deleted);
    count("expired", report.expired);
    // What a pass that failed midway did is counted too.
    pass.map(|()| report)
}

async fn compact_node(objects: &Objects, me: &str, node: &str, s: Settings, now: i64, report: &mut Report) -> anyhow::Result<()> {
    let objs = keys::named(node, objects.list(&keys::node_prefix(node)).await?);
    let gone = keys::gone_upto(&objs);
    let top = objs.iter().map(|(n, _)| n.range().1).max().unwrap_or(0);
    let packs: Vec<(u64, u64, &Listed)> = objs
        .iter()
        .filter_map(|(n, l)| match n {
            Name::Pack { first, last } => Some((*first, *last, l)),
            _ => None,
        })
        .collect();

    // 1. Closed windows without a pack.
    let width = s.pack_segments.max(1);
    let mut windows: BTreeMap<u64, Vec<(u64, &Listed)>> = BTreeMap::new();
    for (n, l) in &objs {
        if let Name::Segment(seq) = n {
            let last = seq.div_ceil(width) * width;
            let packed = packs.iter().any(|(f, t, _)| *f <= last + 1 - width && *t >= last);
            if *seq > gone && last <= top && !packed {
                windows.entry(last).or_default().push((*seq, l));
            }
        }
    }
    for (last, sources) in windows {
        pack_window(objects, me, node, last + 1 - width, last, &sources, s, now, report).await?;
    }

    // 2. Sources of packs older than the grace period.
    for (first, last, pack) in &packs {
        if now - pack.modified_ms < s.grace_ms {
            continue;
        }
        let mut sources = 0;
        for (n, l) in &objs {
            if let Name::Segment(seq) = n {
                if (*first..=*last).contains(seq) {
                    objects.delete(&l.key).await?;
                    sources += 1;
                }
            }
        }
        // Once, with its sources (a lease left by a crash here goes with retention).
        if sources > 0 {
            objects.delete(&keys::lease(node, *first, *last)).await?;
            report.sources_deleted += sources;
        }
    }

    // 3. Retention: a prefix of the numbers, oldest first.
    let Some(keep) = s.keep_ms else { return Ok(()) };
    let mut by_number: Vec<&(Name, Listed)> = objs.iter().filter(|(n, _)| !matches!(n, Name::Gone(_))).collect();
    by_number.sort_by_key(|(n, _)| (n.range().1, n.range().0));
    let expired: Vec<&(Name, Listed)> = by_number.into_iter().take_while(|(_, l)| l.modified_ms < now - keep).collect();
    let Some(upto) = expired.iter().map(|(n, _)| n.range().1).max().filter(|u| *u > gone) else { return Ok(()) };
    // The marker first: a reader that lists between two deletes knows not to wait.
    objects.put_if_absent(&keys::gone(node, upto), Bytes::new()).await?;
    for (_, l) in &expired {
        objects.delete(&l.key).await?;
        report.expired += 1;
    }
    for (n, l) in &objs {
        if matches!(n, Name::Gone(g) if *g < upto) {
            objects.delete(&l.key).await?;
        }
    }
    // Leases of windows retention took before they were packed.
    for l in objects.list(&format!("leases/{node}/")).await? {
        let last = l.key.rsplit('/').next().and_then(|n| n.split('-').next()).and_then(|n| n.parse::<u64>().ok());
        if last.is_some_and(|last| last <= upto) {
            objects.delete(&l.key).await?;
        }
    }
    Ok(())
}

/// Merge one window's segments into a pack, under a lease.
#[allow(clippy::too_many_arguments)]
async fn pack_window(
    objects: &Objects,
    me: &str,
    node: &str,
    first: u64,
    last: u64,
    sources: &[(u64, &Listed)],
    s: Settings,
    now: i64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let lease = keys::lease(node, first, last);
    let body = serde_json::json!({ "holder": me, "until_ms": now + s.lease_ms }).to_string();
    if objects.put_if_absent(&lease, Bytes::from(body)).await? == Put::Exists {
        report.lease_held += 1;
        // A holder that died: its lease is removed once expired, and the window is taken by
        // whoever puts the next one first.
        let held = objects.get(&lease).await?;
        let until = held.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()).and_then(|v| v["until_ms"].as_i64());
        if until.is_none_or(|u| u < now) {
            objects.delete(&lease).await?;
        }
        return Ok(());
    }
    let mut fetched = Vec::with_capacity(sources.len());
    for (seq, l) in sources {
        match objects.get(&l.key).await? {
            Some(bytes) => {
                report.read_bytes += bytes.len() as u64;
                fetched.push((*seq, l.key.clone(), bytes))
            }
            // Deleted since the listing (retention): the lease expires and a later pass packs
            // what is left.
            None => return Ok(()),
        }
    }
    let node_id = node.to_string();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut pack = PackWriter::default();
        for (seq, key, bytes) in fetched {
            if let Err(e) = pack.add(&bytes, seq) {
                tracing::error!(key, error = %e, "a segment cannot be read; left out of its pack");
            }
        }
        pack.finish(&node_id)
    })
    .await?;
    let size = encoded.len() as u64;
    match objects.put_if_absent(&keys::pack(node, first, last), encoded.into()).await? {
        Put::Created => {
            report.packed.push((node.to_string(), first, last));
            report.written_bytes += size;
        }
        Put::Exists => report.repeated += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::segment::{Pack, Segment};

    fn settings() -> Settings {
        Settings { pack_segments: 3, grace_ms: 5_000, lease_ms: 30_000, keep_ms: Some(3_600_000) }
    }

    async fn keys_of(objects: &Objects, prefix: &str) -> Vec<String> {
        objects.list(prefix).await.expect("list").into_iter().map(|l| l.key).collect()
    }

    /// Segments 1–7 of n1, each with one count of its own number.
    async fn seven_segments(name: &str) -> (std::path::PathBuf, Objects) {
        let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let objects = Objects::dir(root.clone());
        for seq in 1..=7 {
            let mut s = Segment::new("n1", seq);
            s.add("shop", vec![], vec![Arc::from("main"), Arc::from(format!("f{seq}").as_str())], 60_000, seq);
            objects.put_if_absent(&keys::segment("n1", seq), s.encode().into()).await.expect("put");
        }
        (root, objects)
    }

    #[tokio::test]
    async fn closed_windows_become_packs_and_their_sources_go_after_the_grace_period() {
        let (root, objects) = seven_segments("stackd-compactor").await;
        let metrics = Metrics::new();
        let now = crate::now_ms();
        let r = compact_once(&objects, "n2", settings(), now, &metrics).await.expect("pass");
        // 1–3 and 4–6 are closed; 7–9 is not.
        assert_eq!(r.packed, [("n1".to_string(), 1, 3), ("n1".to_string(), 4, 6)]);
        let pack = Pack::decode(&objects.get(&keys::pack("n1", 4, 6)).await.expect("get").expect("there")).expect("a pack");
        assert_eq!(pack.sections.iter().map(|s| (s.seq, s.totals()["shop"])).collect::<Vec<_>>(), [(4, 4), (5, 5), (6, 6)]);
        // Within the grace period nothing more happens; another node's pass neither packs again.
        assert!(r.written_bytes > 0 && r.written_bytes < r.read_bytes, "{r:?}");
        let again = compact_once(&objects, "n3", settings(), now + 1_000, &metrics).await.expect("pass");
        assert_eq!(again, Report::default());
        assert_eq!(keys_of(&objects, "segments/n1/").await.len(), 9);
        // After it, the sources and the leases go.
        let later = compact_once(&objects, "n3", settings(), now + 6_000, &metrics).await.expect("pass");
        assert_eq!(later.sources_deleted, 6);
        assert_eq!(keys_of(&objects, "segments/").await, [keys::pack("n1", 1, 3), keys::pack("n1", 4, 6), keys::segment("n1", 7)]);
        assert_eq!(keys_of(&objects, "leases/").await, Vec::<String>::new());
        // From then on a pass only lists: nothing deleted again.
        let counted = Metrics::new();
        let quiet = compact_once(&objects.clone().counted(&counted), "n3", settings(), now + 60_000, &metrics).await.expect("pass");
        assert_eq!(quiet, Report::default());
        let requests: Vec<u64> =
            ["put", "get", "list", "delete"].iter().map(|op| counted.object_requests.with_label_values(&[op]).get()).collect();
        assert_eq!(requests, [0, 0, 2, 0], "the nodes, then n1's objects");
        assert_eq!(metrics.compaction.with_label_values(&["packed"]).get(), 2);
        assert_eq!(metrics.compaction.with_label_values(&["sources_deleted"]).get(), 6);
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[tokio::test]
    async fn retention_leaves_a_marker_and_deletes_in_number_order() {
        let (root, objects) = seven_segments("stackd-compactor-retention").await;
        let metrics = Metrics::new();
        let now = crate::now_ms();
        compact_once(&objects, "n2", settings(), now, &metrics).await.expect("pass");
        // Leases of windows never packed (their holders died; one ran with --pack-segments 2):
        // each goes with its window.
        let dead = serde_json::json!({ "holder": "n9", "until_ms": now }).to_string();
        objects.put_if_absent(&keys::lease("n1", 7, 9), dead.clone().into()).await.expect("put");
        objects.put_if_absent(&keys::lease("n1", 1, 2), dead.into()).await.expect("put");
        // Two hours on, everything is older than the hour kept: the packs and 7 go (the packs'
        // sources with them), behind a marker.
        let r = compact_once(&objects, "n2", settings(), now + 7_200_000, &metrics).await.expect("pass");
        assert_eq!(r.expired, 9, "{r:?}");
        assert_eq!(keys_of(&objects, "segments/").await, [keys::gone("n1", 7)]);
        assert_eq!(keys_of(&objects, "leases/").await, [keys::lease("n1", 7, 9)], "window 7–9 goes on past 7");
        // A reader that had 2 skips to 7 and reads nothing.
        let listed = keys::named("n1", objects.list_after("segments/n1/", Some(&keys::after("n1", 2))).await.expect("list"));
        assert_eq!(crate::cluster::importer::plan(2, u64::MAX, &listed), [crate::cluster::importer::Step::Skip { upto: 7 }]);
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[tokio::test]
    async fn a_lease_whose_holder_died_is_taken_over_once_expired() {
        let (root, objects) = seven_segments("stackd-compactor-lease").await;
        let metrics = Metrics::new();
        let now = crate::now_ms();
        let settings = || Settings { grace_ms: 3_600_000, ..settings() };
        let dead = serde_json::json!({ "holder": "n9", "until_ms": now + 30_000 }).to_string();
        objects.put_if_absent(&keys::lease("n1", 1, 3), dead.into()).await.expect("put");
        let r = compact_once(&objects, "n2", settings(), now, &metrics).await.expect("pass");
        assert_eq!((r.packed, r.lease_held), (vec![("n1".to_string(), 4, 6)], 1));
        // Still held a little later; once expired it is removed, and the next pass packs.
        assert_eq!(compact_once(&objects, "n2", settings(), now + 10_000, &metrics).await.expect("pass").lease_held, 1);
        assert_eq!(keys_of(&objects, "leases/").await, [keys::lease("n1", 1, 3), keys::lease("n1", 4, 6)]);
        assert_eq!(compact_once(&objects, "n2", settings(), now + 31_000, &metrics).await.expect("pass").lease_held, 1);
        assert_eq!(keys_of(&objects, "leases/").await, [keys::lease("n1", 4, 6)]);
        let r = compact_once(&objects, "n2", settings(), now + 32_000, &metrics).await.expect("pass");
        assert_eq!(r.packed, [("n1".to_string(), 1, 3)]);
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
