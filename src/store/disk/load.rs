//! Start-up: frames, apps, stacks, label sets and gauges are read into memory, one reader per
//! table; buckets stay on disk until a sample or a query needs them. A row that cannot be
//! decoded refuses the whole store (the caller names the file).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec::{decode_gauge_row, decode_labelset_row, decode_series_row, decode_stack_row};
use super::{StoreError, APPS, FRAMES, GAUGES, LABELSETS, NOTES, SERIES, STACKS};
use crate::sample::{FamilyKind, Origin, ProfileType, Series, SeriesKind};
use crate::store::app::{saturating_add, series_suffix, App, GaugeCell, LabelStats, SeriesCell, StackEntry};
use crate::store::{Labels, Store, OVERFLOW_FRAME, TYPE_LABEL};

/// Damage found while loading; [`super::guarded`] adds the file's path.
fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { path: PathBuf::new(), detail: detail.to_string() }
}

impl Store {
    /// Load metadata from disk; buckets stay on disk until needed.
    pub(in crate::store) fn load(&self, db: &impl ReadableDatabase, now_ms: i64) -> Result<(), StoreError> {
        let read = db.begin_read().map_err(corrupt)?;
        self.load_frames(&read)?;
        // Buckets from now on, up to the furthest accepted future, may already be on disk:
        // their first sample takes the reload path.
        let first_fresh = now_ms.saturating_add(self.future_ms).div_euclid(self.bucket_ms) + 1;
        let apps_t = read.open_table(APPS).map_err(corrupt)?;
        for entry in apps_t.iter().map_err(corrupt)? {
            let (name, _) = entry.map_err(corrupt)?;
            let name: Arc<str> = name.value().into();
            let app = App::new(Arc::clone(&name), &self.limits, first_fresh);
            self.load_stacks(&read, &app)?;
            load_labelsets(&read, &app)?;
            self.load_gauges(&read, &app)?;
            load_series(&read, &app)?;
            self.apps.insert(name, Arc::new(app));
        }
        self.load_notes(&read)
    }

    /// `notes`, when the file has the table.
    fn load_notes(&self, read: &ReadTransaction) -> Result<(), StoreError> {
        let notes_t = match read.open_table(NOTES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(corrupt(e)),
        };
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        for entry in notes_t.iter().map_err(corrupt)? {
            let (k, v) = entry.map_err(corrupt)?;
            notes.saved.insert(k.value().to_string(), v.value().to_vec());
        }
        Ok(())
    }

    /// `frames`: ids must run 0, 1, 2… (they are positions in the interner).
    fn load_frames(&self, read: &ReadTransaction) -> Result<(), StoreError> {
        let frames_t = read.open_table(FRAMES).map_err(corrupt)?;
        let mut names = self.frames.names.write().unwrap_or_else(|e| e.into_inner());
        for (i, entry) in frames_t.iter().map_err(corrupt)?.enumerate() {
            let (id, name) = entry.map_err(corrupt)?;
            if id.value() as usize != i {
                return Err(corrupt(format!("frame ids are not contiguous at {}", id.value())));
            }
            let name: Arc<str> = name.value().into();
            self.frames.ids.insert(Arc::clone(&name), i as u32);
            names.push(name);
        }
        *self.flushing.lock().unwrap_or_else(|e| e.into_inner()) = names.len();
        Ok(())
    }

    /// `stacks` of one app; the overflow stack is known by its one frame.
    fn load_stacks(&self, read: &ReadTransaction, app: &App) -> Result<(), StoreError> {
        let name = &*app.name;
        let stacks_t = read.open_table(STACKS).map_err(corrupt)?;
        let mut stacks = app.stacks.write().unwrap_or_else(|e| e.into_inner());
        for (i, e) in stacks_t.range((name, 0u32)..=(name, u32::MAX)).map_err(corrupt)?.enumerate() {
            let (key, blob) = e.map_err(corrupt)?;
            let id = key.value().1;
            let (hash, frames) = decode_stack_row(blob.value())
                .filter(|_| id as usize == i)
                .ok_or_else(|| corrupt(format!("stack {id} of app {name:?} is malformed")))?;
            if frames.len() == 1 && self.frames().get(frames[0] as usize).is_some_and(|f| &**f == OVERFLOW_FRAME) {
                let _ = app.overflow.set(i as u32);
            } else {
                app.stack_ids.insert(hash, i as u32);
            }
            stacks.push(StackEntry { hash, frames: frames.into_boxed_slice() });
        }
        *app.persisted.lock().unwrap_or_else(|e| e.into_inner()) = (stacks.len(), 1);
        Ok(())
    }

    /// `gauges` of one app. A gauge of a family this stackd does not know is dropped (logged).
    fn load_gauges(&self, read: &ReadTransaction, app: &App) -> Result<(), StoreError> {
        let name = &*app.name;
        let gauges_t = read.open_table(GAUGES).map_err(corrupt)?;
        for e in gauges_t.range((name, 0u64)..=(name, u64::MAX)).map_err(corrupt)? {
            let (key, blob) = e.map_err(corrupt)?;
            let row = decode_gauge_row(blob.value()).ok_or_else(|| corrupt(format!("a gauge of app {name:?} is malformed")))?;
            let Some(family) = FamilyKind::from_u8(row.kind).and_then(|k| (self.family)(&row.family, k)) else {
                tracing::warn!(app = %name, family = row.family, "dropping a stored gauge of a family this stackd does not know");
                continue;
            };
            let cell = GaugeCell::new(family, row.label_value.into(), row.labels, f64::from_bits(row.bits), row.updated_ms, false);
            app.gauges.insert(key.value().1, cell);
        }
        Ok(())
    }
}

/// `series` of one app (a file written before engine metrics has no such table).
fn load_series(read: &ReadTransaction, app: &App) -> Result<(), StoreError> {
    let name = &*app.name;
    let series_t = match read.open_table(SERIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(corrupt(e)),
    };
    for e in series_t.range((name, 0u64)..=(name, u64::MAX)).map_err(corrupt)? {
        let (key, blob) = e.map_err(corrupt)?;
        let malformed = || corrupt(format!("an engine series of app {name:?} is malformed"));
        let row = decode_series_row(blob.value()).ok_or_else(malformed)?;
        let (Some(origin), Some(kind), Some(suffix)) =
            (Origin::from_u8(row.origin), SeriesKind::from_u8(row.kind), series_suffix(&row.suffix))
        else {
            return Err(malformed());
        };
        let labels =
            row.labels.iter().map(|(k, v)| (std::borrow::Cow::Borrowed(k.as_str()), std::borrow::Cow::Borrowed(v.as_str()))).collect();
        let series = Series { origin, family: &row.family, kind, suffix, labels, value: f64::from_bits(row.bits) };
        app.series.insert(key.value().1, SeriesCell::new(&series, row.updated_ms, false));
        app.last_seen_ms.fetch_max(row.updated_ms, Ordering::Relaxed);
    }
    Ok(())
}

/// `labelsets` of one app, with their running totals (which make the app's total).
fn load_labelsets(read: &ReadTransaction, app: &App) -> Result<(), StoreError> {
    let name = &*app.name;
    let labels_t = read.open_table(LABELSETS).map_err(corrupt)?;
    let mut sets = app.labelsets.write().unwrap_or_else(|e| e.into_inner());
    for e in labels_t.range((name, 0u32)..=(name, u32::MAX)).map_err(corrupt)? {
        let (_, blob) = e.map_err(corrupt)?;
        let row = decode_labelset_row(blob.value()).ok_or_else(|| corrupt(format!("a label set of app {name:?} is malformed")))?;
        saturating_add(&app.total, row.samples);
        app.last_seen_ms.fetch_max(row.last_ms, Ordering::Relaxed);
        sets.insert(typed(row.labels), Arc::new(LabelStats::new(row.samples, row.first_ms, row.last_ms, false)));
    }
    Ok(())
}

/// A label set as stored before profile types: the Flink poller's `type` label (`on_cpu`,
/// `off_cpu`, `full`, beside `job_id` and `vertex`) becomes the set's profile type. Sets stored
/// since are unchanged.
pub(crate) fn typed(mut labels: Labels) -> Labels {
    let has = |labels: &Labels, k: &str| labels.iter().any(|(lk, _)| lk == k);
    if has(&labels, TYPE_LABEL) || !has(&labels, "job_id") || !has(&labels, "vertex") {
        return labels;
    }
    let Some(at) = labels.iter().position(|(k, v)| k == "type" && matches!(v.as_str(), "on_cpu" | "off_cpu" | "full")) else {
        return labels;
    };
    let (_, graph) = labels.remove(at);
    let profile = ProfileType::from_name(&graph).unwrap_or_default();
    if profile != ProfileType::Cpu {
        labels.push((TYPE_LABEL.to_string(), profile.name().to_string()));
        labels.sort();
    }
    labels
}
