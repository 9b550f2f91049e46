//! Writing memory to the store: one transaction per flush, one writer per table. Each writer
//! writes what changed since the last flush and remembers what it wrote, so that a failed
//! commit can mark it all changed again ([`Written::restore`]): nothing is lost from memory.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use redb::{Durability, ReadableTable, Table, WriteTransaction};

use super::codec::{
    decode_bucket, encode_bucket, encode_gauge_row, encode_labelset_row, encode_series_row, encode_stack_row, put_ivarint, put_str,
    put_varint, GaugeRow, SeriesRow,
};
use super::{StoreError, APPS, BUCKETS, FRAMES, GAUGES, LABELSETS, NOTES, OUTBOX, SERIES, STACKS};
use crate::store::app::{App, Bucket, LabelStats};
use crate::store::Store;

/// What one flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub buckets: usize,
    /// Rows other than buckets written (apps, stacks, label sets, gauges, frames).
    pub rows: usize,
    pub bytes: usize,
    pub evicted: usize,
    pub deleted: usize,
}

/// What a flush wrote from memory: marked clean when written, marked changed again when the
/// commit fails.
#[derive(Default)]
struct Written {
    buckets: Vec<Arc<Bucket>>,
    labelsets: Vec<Arc<LabelStats>>,
    gauges: Vec<(Arc<App>, u64)>,
    series: Vec<(Arc<App>, u64)>,
    /// Expired series whose rows were deleted, per app: put back when the commit fails.
    series_expired: Vec<(Arc<App>, Vec<u64>)>,
    /// Per app (in flush order), how many of its stacks are on disk once this commits.
    stacks: Vec<usize>,
    /// How many frames are on disk once this commits.
    frames: usize,
    /// Apps whose old buckets this deletes: their generation moves once the deletion is
    /// committed (before, a query could still read the buckets and be cached as the new
    /// generation's answer).
    expired: Vec<Arc<App>>,
}

impl Written {
    fn restore(self) {
        for b in self.buckets {
            b.dirty.store(true, Ordering::Release);
        }
        for st in self.labelsets {
            st.dirty.store(true, Ordering::Release);
        }
        for (app, key) in self.gauges {
            if let Some(g) = app.gauges.get(&key) {
                g.dirty.store(true, Ordering::Release);
            }
        }
        for (app, key) in self.series {
            if let Some(c) = app.series.get(&key) {
                c.dirty.store(true, Ordering::Release);
            }
        }
        for (app, keys) in self.series_expired {
            app.series_expired.lock().unwrap_or_else(|e| e.into_inner()).extend(keys);
        }
    }
}

/// Buckets that leave memory with this flush: sealed, and their apps' reload locks held until
/// the commit, so that nobody reads them back from disk before their last write is there.
struct Evicting<'a> {
    _reload: Vec<MutexGuard<'a, ()>>,
    sealed: Vec<(Arc<App>, i64, Arc<Bucket>)>,
}

impl<'a> Evicting<'a> {
    fn seal(apps: &'a [Arc<App>], before: i64) -> Self {
        let mut evicting = Evicting { _reload: Vec::with_capacity(apps.len()), sealed: Vec::new() };
        for app in apps {
            evicting._reload.push(app.lock_reload());
            let _ = app.oldest_resident.fetch_max(before, Ordering::AcqRel);
            // Collected first: sealing waits for writers, and a writer may need the map.
            let old: Vec<(i64, Arc<Bucket>)> =
                app.buckets.iter().filter(|b| *b.key() < before).map(|b| (*b.key(), Arc::clone(b.value()))).collect();
            for (n, bucket) in old {
                bucket.seal();
                evicting.sealed.push((Arc::clone(app), n, bucket));
            }
        }
        evicting
    }

    /// Committed: drop the sealed buckets from memory.
    fn evict(self) -> usize {
        for (app, n, _) in &self.sealed {
            app.buckets.remove(n);
        }
        self.sealed.len()
    }

    /// Not committed: the buckets stay.
    fn unseal(self) {
        for (_, _, b) in self.sealed {
            b.unseal();
        }
    }
}

impl Store {
    /// Write everything changed since the last flush, evict buckets older than the memory window,
    /// delete buckets older than the retention. One redb transaction, durable when it returns.
    /// On failure nothing is lost from memory and the next flush writes it all again.
    pub fn flush(&self, now_ms: i64) -> Result<FlushStats, StoreError> {
        let Some(disk) = &self.disk else {
            return Ok(FlushStats::default());
        };
        let mut frames_on_disk = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        if disk.db().is_none() {
            disk.reopen()?;
        }
        let guard = disk.db().ok_or(StoreError::Unavailable)?;
        let Some(db) = guard.as_ref() else { return Err(StoreError::Unavailable) };
        let now_bucket = now_ms.div_euclid(self.bucket_ms);
        let evict_before = now_bucket.saturating_sub(self.window_ms / self.bucket_ms + 1);
        let delete_before = (now_ms.saturating_sub(self.retention_ms)).div_euclid(self.bucket_ms);
        // No input adds noted samples during the flush: the notes and the buckets it writes
        // agree (a note is written with every sample it covers, and no sample without its note).
        let _gate = self.note_gate.write().unwrap_or_else(|e| e.into_inner());
        let notes = std::mem::take(&mut self.notes.lock().unwrap_or_else(|e| e.into_inner()).pending);
        let apps = self.apps();
        let evicting = Evicting::seal(&apps, evict_before);
        let mut stats = FlushStats::default();
        let mut written = Written { frames: *frames_on_disk, ..Written::default() };
        let mut batch = Batch {
            blob: Vec::with_capacity(64 * 1024),
            stats: &mut stats,
            written: &mut written,
            notes: &notes,
            outbox: self.outbox.then(Outbox::default),
        };
        let result = db
            .begin_write()
            .map_err(StoreError::write)
            .and_then(|w| self.write_changes(w, &apps, now_ms, delete_before, *frames_on_disk, &mut batch));
        match result {
            Ok(()) => {
                self.notes.lock().unwrap_or_else(|e| e.into_inner()).saved.extend(notes);
                for app in &written.expired {
                    app.deletions.fetch_add(1, Ordering::AcqRel);
                }
                *frames_on_disk = written.frames;
                for (app, len) in apps.iter().zip(&written.stacks) {
                    let mut persisted = app.persisted.lock().unwrap_or_else(|e| e.into_inner());
                    *persisted = (*len, persisted.1 + 1);
                }
                stats.evicted = evicting.evict();
                Ok(stats)
            }
            Err(e) => {
                let mut kept = self.notes.lock().unwrap_or_else(|e| e.into_inner());
                for (k, v) in notes {
                    kept.pending.entry(k).or_insert(v); // unless noted again since
                }
                drop(kept);
                written.restore();
                evicting.unseal();
                // redb accepts no writes after an I/O error until reopened: reopen now, so that
                // the next flush can succeed once there is room again.
                drop(guard);
                if let Err(again) = disk.reopen() {
                    tracing::error!(error = %again, "cannot reopen the store; flushes keep failing until it opens");
                }
                Err(e)
            }
        }
    }

    /// Fill one transaction and commit it (or abort it when nothing changed: no fsync, the file
    /// is not touched). Order matters: what is written first may refer only to ids written after
    /// it, and ids only grow. Buckets, then gauges, then label sets, then stacks; frames last.
    fn write_changes(
        &self,
        mut w: WriteTransaction,
        apps: &[Arc<App>],
        now_ms: i64,
        delete_before: i64,
        frames_on_disk: usize,
        batch: &mut Batch<'_>,
    ) -> Result<(), StoreError> {
        w.set_durability(Durability::Immediate).map_err(StoreError::write)?;
        {
            let mut apps_t = w.open_table(APPS).map_err(StoreError::write)?;
            let mut stacks_t = w.open_table(STACKS).map_err(StoreError::write)?;
            let mut labels_t = w.open_table(LABELSETS).map_err(StoreError::write)?;
            let mut buckets_t = w.open_table(BUCKETS).map_err(StoreError::write)?;
            let mut gauges_t = w.open_table(GAUGES).map_err(StoreError::write)?;
            let mut series_t = w.open_table(SERIES).map_err(StoreError::write)?;
            for app in apps {
                batch.buckets(&mut buckets_t, app)?;
                batch.gauges(&mut gauges_t, app)?;
                batch.series(&mut series_t, app)?;
                batch.labelsets(&mut labels_t, app)?;
                batch.app(&mut apps_t, app, now_ms)?;
                batch.stacks(&mut stacks_t, app)?;
                batch.expired(&mut buckets_t, app, delete_before)?;
            }
            let mut frames_t = w.open_table(FRAMES).map_err(StoreError::write)?;
            batch.frames(&mut frames_t, &self.frames(), frames_on_disk)?;
            let mut notes_t = w.open_table(NOTES).map_err(StoreError::write)?;
            for (k, v) in batch.notes {
                notes_t.insert(k.as_str(), v.as_slice()).map_err(StoreError::write)?;
                batch.stats.rows += 1;
            }
            if let Some(outbox) = batch.outbox.take().filter(|o| o.apps > 0) {
                let mut outbox_t = w.open_table(OUTBOX).map_err(StoreError::write)?;
                let next = outbox_t.last().map_err(StoreError::write)?.map_or(0, |(k, _)| k.value() + 1);
                let mut row = Vec::with_capacity(outbox.blob.len() + 4);
                put_varint(&mut row, outbox.apps);
                row.extend_from_slice(&outbox.blob);
                outbox_t.insert(next, row.as_slice()).map_err(StoreError::write)?;
                batch.stats.rows += 1;
            }
        }
        let stats = &batch.stats;
        if stats.buckets + stats.rows + stats.deleted == 0 {
            return w.abort().map_err(StoreError::write);
        }
        w.commit().map_err(StoreError::write)
    }
}

/// One flush's scratch buffer, figures, and record of what it wrote.
struct Batch<'a> {
    blob: Vec<u8>,
    stats: &'a mut FlushStats,
    written: &'a mut Written,
    /// Inputs' notes, written in this transaction.
    notes: &'a std::collections::BTreeMap<String, Vec<u8>>,
    /// With `--object-store`: what this flush adds to the node's own counts.
    outbox: Option<Outbox>,
}

/// One outbox row in the making: per app, its name and its deltas `(bucket, label set, stack,
/// count)` in local ids (resolved to names when the segment is made, `outbox.rs`).
#[derive(Default)]
struct Outbox {
    apps: u64,
    blob: Vec<u8>,
}

impl Batch<'_> {
    /// `buckets`: every bucket changed since it was last written, whole. With an outbox, what
    /// each adds to the version it replaces, for label sets of this node's own (not another
    /// node's, [`crate::store::NODE_LABEL`]).
    fn buckets(&mut self, t: &mut Table<(&str, i64), &[u8]>, app: &Arc<App>) -> Result<(), StoreError> {
        let mut deltas: Vec<(i64, u32, u32, u64)> = Vec::new();
        let mut remote: Vec<bool> = Vec::new();
        for b in app.buckets.iter() {
            if b.value().dirty.swap(false, Ordering::AcqRel) {
                self.written.buckets.push(Arc::clone(b.value()));
                let entries = b.value().counts.sorted();
                encode_bucket(&entries, &mut self.blob);
                let old = t.insert((&*app.name, *b.key()), &self.blob[..]).map_err(StoreError::write)?;
                if self.outbox.is_some() {
                    let mut before = std::collections::HashMap::new();
                    if let Some(old) = old {
                        decode_bucket(old.value(), |l, s, n| {
                            before.insert((l, s), n);
                        });
                    }
                    for (l, s, n) in entries {
                        if l as usize >= remote.len() {
                            remote = app.remote_labelsets();
                        }
                        let was = before.get(&(l, s)).copied().unwrap_or(0);
                        if n > was && !remote.get(l as usize).copied().unwrap_or(false) {
                            deltas.push((*b.key(), l, s, n - was));
                        }
                    }
                }
                self.stats.buckets += 1;
                self.stats.bytes += self.blob.len();
            }
        }
        if let (Some(outbox), false) = (&mut self.outbox, deltas.is_empty()) {
            outbox.apps += 1;
            put_str(&mut outbox.blob, &app.name);
            put_varint(&mut outbox.blob, deltas.len() as u64);
            for (bucket, l, s, n) in deltas {
                put_ivarint(&mut outbox.blob, bucket);
                put_varint(&mut outbox.blob, u64::from(l));
                put_varint(&mut outbox.blob, u64::from(s));
                put_varint(&mut outbox.blob, n);
            }
        }
        Ok(())
    }

    /// `gauges`: those set since they were last written.
    fn gauges(&mut self, t: &mut Table<(&str, u64), &[u8]>, app: &Arc<App>) -> Result<(), StoreError> {
        for g in app.gauges.iter() {
            if !g.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            self.written.gauges.push((Arc::clone(app), *g.key()));
            let row = GaugeRow {
                family: g.family.name.to_string(),
                kind: g.family.kind as u8,
                label_value: g.label_value.to_string(),
                labels: g.labels,
                bits: g.bits.load(Ordering::Relaxed),
                updated_ms: g.updated_ms.load(Ordering::Relaxed),
            };
            encode_gauge_row(&mut self.blob, &row);
            t.insert((&*app.name, *g.key()), &self.blob[..]).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// `series`: rows of expired series deleted first, then those set since they were last
    /// written (a series that expired and came back is deleted and written again).
    fn series(&mut self, t: &mut Table<(&str, u64), &[u8]>, app: &Arc<App>) -> Result<(), StoreError> {
        let expired = std::mem::take(&mut *app.series_expired.lock().unwrap_or_else(|e| e.into_inner()));
        for key in &expired {
            if t.remove((&*app.name, *key)).map_err(StoreError::write)?.is_some() {
                self.stats.deleted += 1;
            }
        }
        if !expired.is_empty() {
            self.written.series_expired.push((Arc::clone(app), expired));
        }
        for c in app.series.iter() {
            if !c.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            self.written.series.push((Arc::clone(app), *c.key()));
            let row = SeriesRow {
                origin: c.origin as u8,
                family: c.family.to_string(),
                kind: c.kind as u8,
                suffix: c.suffix.to_string(),
                labels: c.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                bits: c.bits.load(Ordering::Relaxed),
                updated_ms: c.updated_ms.load(Ordering::Relaxed),
            };
            encode_series_row(&mut self.blob, &row);
            t.insert((&*app.name, *c.key()), &self.blob[..]).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// `labelsets`: label sets carry their running totals; those that changed.
    fn labelsets(&mut self, t: &mut Table<(&str, u32), &[u8]>, app: &Arc<App>) -> Result<(), StoreError> {
        for (id, (labels, st)) in app.labelsets.read().unwrap_or_else(|e| e.into_inner()).list.iter().enumerate() {
            if !st.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            self.written.labelsets.push(Arc::clone(st));
            let (samples, first, last) =
                (st.samples.load(Ordering::Relaxed), st.first_ms.load(Ordering::Relaxed), st.last_ms.load(Ordering::Relaxed));
            encode_labelset_row(&mut self.blob, samples, first, last, labels);
            t.insert((&*app.name, id as u32), &self.blob[..]).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// `apps`: an app's first flush records it.
    fn app(&mut self, t: &mut Table<&str, i64>, app: &Arc<App>, now_ms: i64) -> Result<(), StoreError> {
        if app.persisted.lock().unwrap_or_else(|e| e.into_inner()).1 == 0 {
            t.insert(&*app.name, now_ms).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// `stacks`: the app's new tail.
    fn stacks(&mut self, t: &mut Table<(&str, u32), &[u8]>, app: &Arc<App>) -> Result<(), StoreError> {
        let on_disk = app.persisted.lock().unwrap_or_else(|e| e.into_inner()).0;
        let stacks = app.stacks.read().unwrap_or_else(|e| e.into_inner());
        for (id, s) in stacks.iter().enumerate().skip(on_disk) {
            encode_stack_row(&mut self.blob, s.hash, &s.frames);
            t.insert((&*app.name, id as u32), &self.blob[..]).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        self.written.stacks.push(stacks.len());
        Ok(())
    }

    /// Retention: the app's buckets older than `before` are deleted.
    fn expired(&mut self, t: &mut Table<(&str, i64), &[u8]>, app: &Arc<App>, before: i64) -> Result<(), StoreError> {
        let name = &*app.name;
        let old: Vec<i64> =
            t.range((name, i64::MIN)..(name, before)).map_err(StoreError::write)?.flatten().map(|(k, _)| k.value().1).collect();
        if !old.is_empty() {
            self.written.expired.push(Arc::clone(app));
        }
        for n in old {
            t.remove((name, n)).map_err(StoreError::write)?;
            self.stats.deleted += 1;
        }
        Ok(())
    }

    /// `frames`: the interner's new tail.
    fn frames(&mut self, t: &mut Table<u32, &str>, names: &[Arc<str>], on_disk: usize) -> Result<(), StoreError> {
        for (id, name) in names.iter().enumerate().skip(on_disk) {
            t.insert(id as u32, &**name).map_err(StoreError::write)?;
            self.stats.rows += 1;
        }
        self.written.frames = names.len();
        Ok(())
    }
}
