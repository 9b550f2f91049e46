//! The uploader: this node's outbox becomes one segment in the object store
//! (`segments/<node>/<seq>.seg`, written with put-if-absent), then leaves the outbox. What the
//! object store does not take stays in the outbox, visible as `stackd_outbox_backlog`, and goes
//! with the next round ([`super::run`]).

use std::sync::Arc;

use super::objects::{Objects, Put};
use super::segment::Segment;
use crate::metrics::Metrics;
use crate::store::Store;

/// Before this data dir's first upload: number on after every segment of this node's id in
/// the object store. A data dir that was lost and replaced under the same id (a pod whose
/// volume went with it) would otherwise number from 1 again, and put-if-absent would keep the
/// old segments and drop its new ones as repeated. Returns the numbers inherited: the
/// importer reads them back as this node's past.
pub async fn number(store: &Arc<Store>, objects: &Objects, node: &str) -> anyhow::Result<u64> {
    if let Some(inherited) = store.outbox_numbered()? {
        return Ok(inherited);
    }
    let listed = super::keys::named(node, objects.list(&super::keys::node_prefix(node)).await?);
    let top = listed.iter().map(|(n, _)| n.range().1).max().unwrap_or(0);
    let s = Arc::clone(store);
    let inherited = tokio::task::spawn_blocking(move || s.outbox_number_after(top)).await??;
    if inherited > 0 {
        tracing::warn!(
            node,
            inherited,
            "this data dir is new, and the object store holds segments of this node's id up to {inherited}: it numbers on after them and reads them back as its own past"
        );
    }
    Ok(inherited)
}

/// Upload what is pending, if anything: `Ok(true)` when a segment went up (or was up already).
pub async fn upload_once(store: &Arc<Store>, objects: &Objects, node: &str, metrics: &Metrics) -> anyhow::Result<bool> {
    let (s, n) = (Arc::clone(store), node.to_string());
    let built = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<(crate::store::disk::Pending, Segment, u64)>> {
        let Some(p) = s.outbox_pending()? else { return Ok(None) };
        let mut segment = Segment::new(&n, p.seq);
        let (_, unresolved) = s.outbox_counts(p, |app, labels, frames, time, count| segment.add(app, labels, frames, time, count))?;
        Ok(Some((p, segment, unresolved)))
    })
    .await??;
    let Some((pending, segment, unresolved)) = built else { return Ok(false) };
    if unresolved > 0 {
        metrics.segments.with_label_values(&["unresolved_counts"]).inc_by(unresolved);
        tracing::error!(unresolved, seq = pending.seq, "counts of this node's outbox could not be named; they are left out of its segment");
    }
    let key = super::keys::segment(node, pending.seq);
    match objects.put_if_absent(&key, segment.encode().into()).await {
        Ok(Put::Created) => metrics.segments.with_label_values(&["uploaded"]).inc(),
        Ok(Put::Exists) => metrics.segments.with_label_values(&["repeated"]).inc(),
        Err(e) => {
            metrics.segments.with_label_values(&["failed"]).inc();
            return Err(e.into());
        }
    }
    let s = Arc::clone(store);
    tokio::task::spawn_blocking(move || s.outbox_done(pending)).await??;
    metrics.segment_last_upload.set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sample::Stack;
    use crate::store::{Limits, SourceSpec, StoreConfig};

    /// A store with a data dir under a fresh temporary directory, keeping an outbox.
    fn outbox_store(name: &str) -> (std::path::PathBuf, Arc<Store>) {
        let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let config = StoreConfig {
            data_dir: Some(root.join("data")),
            outbox: true,
            ..StoreConfig::in_memory(Limits::default(), Duration::from_secs(60))
        };
        (root.clone(), Arc::new(Store::open(config, 0).expect("open")))
    }

    fn counts(bytes: &[u8]) -> Vec<(String, u64)> {
        let s = Segment::decode(bytes).expect("a segment");
        s.apps.iter().flat_map(|(app, c)| c.iter().map(move |((_, f, _), n)| (format!("{app}:{}", f.join(";")), *n))).collect()
    }

    /// An upload that wrote its segment and died before it was marked done: the next upload
    /// writes the same rows under the same number, the store keeps the first, and what arrived
    /// meanwhile goes in the next segment. Every count once.
    #[tokio::test]
    async fn an_upload_repeated_after_a_crash_counts_once() {
        let (root, store) = outbox_store("stackd-uploader");
        let objects = Objects::dir(root.join("objects"));
        let metrics = Metrics::new();
        let now = 120_000;
        let src = store.source(1, || SourceSpec::new("shop", vec![("host".into(), "h1".into())])).expect("source");
        let main_work = ["main", "work"];
        store.add_stack_now(&src, &Stack::Frames(&main_work), 3, now, now).expect("add");
        store.flush(now).expect("flush");

        // The upload that died: assigned, written, never marked done.
        let p = store.outbox_pending().expect("pending").expect("rows");
        assert_eq!(p, crate::store::disk::Pending { seq: 1, upto: 0 });
        let mut first = Segment::new("n1", p.seq);
        store.outbox_counts(p, |app, labels, frames, time, n| first.add(app, labels, frames, time, n)).expect("counts");
        assert_eq!(objects.put_if_absent(&crate::cluster::keys::segment("n1", 1), first.encode().into()).await.expect("put"), Put::Created);
        // Meanwhile, more.
        store.add_stack_now(&src, &Stack::Frames(&main_work), 4, now, now).expect("add");
        store.flush(now).expect("flush");
        // Assigned already: the same segment again.
        assert_eq!(store.outbox_pending().expect("pending"), Some(p));

        assert!(upload_once(&store, &objects, "n1", &metrics).await.expect("upload"));
        assert_eq!(metrics.segments.with_label_values(&["repeated"]).get(), 1);
        assert!(upload_once(&store, &objects, "n1", &metrics).await.expect("upload"));
        assert_eq!(metrics.segments.with_label_values(&["uploaded"]).get(), 1);
        assert!(!upload_once(&store, &objects, "n1", &metrics).await.expect("nothing left"));
        assert_eq!(store.outbox_backlog().expect("backlog"), 0);

        let listed: Vec<String> = objects.list("segments/").await.expect("list").into_iter().map(|l| l.key).collect();
        assert_eq!(listed, ["segments/n1/000000000001.seg", "segments/n1/000000000002.seg"]);
        let one = objects.get(&listed[0]).await.expect("get").expect("there");
        let two = objects.get(&listed[1]).await.expect("get").expect("there");
        assert_eq!((counts(&one), counts(&two)), (vec![("shop:main;work".into(), 3)], vec![("shop:main;work".into(), 4)]));
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    /// Another node's counts (the reserved `__node__` label) never go into this node's outbox.
    #[tokio::test]
    async fn other_nodes_counts_stay_out_of_the_outbox() {
        let (root, store) = outbox_store("stackd-uploader-remote");
        let mine = store.source(1, || SourceSpec::new("shop", vec![])).expect("source");
        let theirs = store.source(2, || SourceSpec { node: Some("n2".into()), ..SourceSpec::new("shop", vec![]) }).expect("source");
        let stack = ["main", "work"];
        store.add_stack_now(&mine, &Stack::Frames(&stack), 2, 60_000, 60_000).expect("add");
        store.add_stack_now(&theirs, &Stack::Frames(&stack), 40, 60_000, 60_000).expect("add");
        store.flush(60_000).expect("flush");
        let p = store.outbox_pending().expect("pending").expect("rows");
        let mut seg = Segment::new("n1", p.seq);
        store.outbox_counts(p, |app, labels, frames, time, n| seg.add(app, labels, frames, time, n)).expect("counts");
        assert_eq!(seg.totals().get("shop"), Some(&2));
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
