//! The outbox (`--object-store`, docs/scale-out.md): what this node ingested and has not yet put
//! in a segment. Each flush that writes buckets also writes, in the same transaction, what it
//! added to them for this node's own label sets ([`crate::store::NODE_LABEL`] marks the others'),
//! as one row: so whatever the store made durable is in the outbox too, and nothing else.
//!
//! A segment is assigned before it is uploaded: its number and the last outbox row it covers
//! are recorded first ([`Store::outbox_pending`]). An upload that fails, or a node that dies
//! after uploading but before [`Store::outbox_done`], uploads the same rows under the same
//! number again, and the object store's put-if-absent keeps the first: each row is counted in
//! exactly one segment.

use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::codec::{get_ivarint, get_str, get_varint};
use super::{Disk, StoreError, META, OUTBOX};
use crate::store::{Labels, Store};

const NEXT_SEQ: &str = "outbox_next_seq";
const PENDING_SEQ: &str = "outbox_pending_seq";
const PENDING_UPTO: &str = "outbox_pending_upto";
/// The segments of this node's id that were in the object store before this data dir numbered
/// any: a data dir lost and replaced under the same id. They are its own past, read back.
const INHERITED: &str = "outbox_inherited";

/// A segment assigned and not yet known to be uploaded: its number, and the last outbox row
/// it covers (every row up to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub seq: u64,
    pub upto: u64,
}

/// A value of the META table.
fn meta_get(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<Option<u64>, StoreError> {
    meta.get(key).map(|v| v.map(|v| v.value())).map_err(StoreError::read)
}

/// Whether a data dir has numbered segments, and if so the numbers it inherited (see
/// [`Store::outbox_number_after`]).
fn numbered(meta: &impl ReadableTable<&'static str, u64>) -> Result<Option<u64>, StoreError> {
    match (meta_get(meta, NEXT_SEQ)?, meta_get(meta, PENDING_SEQ)?) {
        (None, None) => Ok(None),
        _ => Ok(Some(meta_get(meta, INHERITED)?.unwrap_or(0))),
    }
}

impl Store {
    /// `f` on the open database; `none` without a data dir.
    fn with_db<T>(&self, none: T, f: impl FnOnce(&Disk, &redb::Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let Some(disk) = &self.disk else { return Ok(none) };
        let guard = disk.db().ok_or(StoreError::Unavailable)?;
        f(disk, guard.as_ref().ok_or(StoreError::Unavailable)?)
    }

    /// The segment to upload next: the one assigned before, or a new one covering every outbox
    /// row there is now; `None` when the outbox is empty (or there is no data dir).
    pub fn outbox_pending(&self) -> Result<Option<Pending>, StoreError> {
        self.with_db(None, |_, db| {
            let w = db.begin_write().map_err(StoreError::write)?;
            // (the segment, whether it is newly assigned)
            let pending = {
                let mut meta = w.open_table(META).map_err(StoreError::write)?;
                if let (Some(seq), Some(upto)) = (meta_get(&meta, PENDING_SEQ)?, meta_get(&meta, PENDING_UPTO)?) {
                    Some((Pending { seq, upto }, false))
                } else {
                    let last = w.open_table(OUTBOX).map_err(StoreError::write)?.last().map_err(StoreError::read)?.map(|(k, _)| k.value());
                    match last {
                        None => None,
                        Some(upto) => {
                            let p = Pending { seq: meta_get(&meta, NEXT_SEQ)?.unwrap_or(1), upto };
                            meta.insert(PENDING_SEQ, p.seq).map_err(StoreError::write)?;
                            meta.insert(PENDING_UPTO, p.upto).map_err(StoreError::write)?;
                            Some((p, true))
                        }
                    }
                }
            };
            match pending {
                Some((p, true)) => w.commit().map(|()| Some(p)).map_err(StoreError::write),
                other => {
                    w.abort().map_err(StoreError::write)?;
                    Ok(other.map(|(p, _)| p))
                }
            }
        })
    }

    /// Every count of the pending segment's rows, names resolved: `add(app, labels, frames root
    /// first, bucket start ms, count)`. How many rows it read, and how many counts it could not
    /// resolve (an app, label set or stack no longer known: never expected, counted).
    pub fn outbox_counts(
        &self,
        p: Pending,
        mut add: impl FnMut(&str, Labels, Vec<Arc<str>>, i64, u64),
    ) -> Result<(usize, u64), StoreError> {
        self.with_db((0, 0), |disk, db| self.read_outbox(disk, db, p, &mut add))
    }

    fn read_outbox(
        &self,
        disk: &Disk,
        db: &redb::Database,
        p: Pending,
        add: &mut impl FnMut(&str, Labels, Vec<Arc<str>>, i64, u64),
    ) -> Result<(usize, u64), StoreError> {
        let r = db.begin_read().map_err(StoreError::read)?;
        let outbox = r.open_table(OUTBOX).map_err(StoreError::read)?;
        let frames = self.frames();
        let (mut rows, mut unresolved) = (0, 0);
        for row in outbox.range(..=p.upto).map_err(StoreError::read)? {
            let (_, blob) = row.map_err(StoreError::read)?;
            rows += 1;
            let mut b = blob.value();
            let damaged = || StoreError::Corrupt { path: disk.path.clone(), detail: "an outbox row is damaged".into() };
            for _ in 0..get_varint(&mut b).ok_or_else(damaged)? {
                let name = get_str(&mut b).ok_or_else(damaged)?;
                let app = self.app(&name);
                for _ in 0..get_varint(&mut b).ok_or_else(damaged)? {
                    let bucket = get_ivarint(&mut b).ok_or_else(damaged)?;
                    let (l, s, n) = (
                        get_varint(&mut b).ok_or_else(damaged)?,
                        get_varint(&mut b).ok_or_else(damaged)?,
                        get_varint(&mut b).ok_or_else(damaged)?,
                    );
                    let resolved = app.as_ref().and_then(|a| {
                        let labels = a.labelset_by_id(u32::try_from(l).ok()?)?;
                        let ids = a.stack_frames(u32::try_from(s).ok()?)?;
                        let names: Option<Vec<Arc<str>>> = ids.iter().map(|&f| frames.get(f as usize).cloned()).collect();
                        Some((labels, names?))
                    });
                    match resolved {
                        Some((labels, names)) => add(&name, labels, names, bucket.saturating_mul(self.bucket_ms), n),
                        None => unresolved += 1,
                    }
                }
            }
        }
        Ok((rows, unresolved))
    }

    /// The pending segment is in the object store: its rows leave the outbox, and the next
    /// segment takes the next number.
    pub fn outbox_done(&self, p: Pending) -> Result<(), StoreError> {
        self.with_db((), |_, db| {
            let w = db.begin_write().map_err(StoreError::write)?;
            {
                let mut outbox = w.open_table(OUTBOX).map_err(StoreError::write)?;
                let keys: Vec<u64> = outbox.range(..=p.upto).map_err(StoreError::read)?.flatten().map(|(k, _)| k.value()).collect();
                for k in keys {
                    outbox.remove(k).map_err(StoreError::write)?;
                }
                let mut meta = w.open_table(META).map_err(StoreError::write)?;
                meta.insert(NEXT_SEQ, p.seq + 1).map_err(StoreError::write)?;
                meta.remove(PENDING_SEQ).map_err(StoreError::write)?;
                meta.remove(PENDING_UPTO).map_err(StoreError::write)?;
            }
            w.commit().map_err(StoreError::write)
        })
    }

    /// Before this data dir's first segment: number on after `found`, the highest segment
    /// number of this node's id in the object store (0: none). A data dir that has numbered
    /// already keeps its numbers. Returns the numbers inherited: every segment up to it was
    /// written before this data dir, by a node of the same id whose data dir is gone.
    pub fn outbox_number_after(&self, found: u64) -> Result<u64, StoreError> {
        self.with_db(0, |_, db| {
            let w = db.begin_write().map_err(StoreError::write)?;
            let inherited = {
                let mut meta = w.open_table(META).map_err(StoreError::write)?;
                match numbered(&meta)? {
                    Some(inherited) => inherited,
                    None => {
                        meta.insert(NEXT_SEQ, found + 1).map_err(StoreError::write)?;
                        meta.insert(INHERITED, found).map_err(StoreError::write)?;
                        found
                    }
                }
            };
            w.commit().map_err(StoreError::write)?;
            Ok(inherited)
        })
    }

    /// Whether this data dir has numbered segments (see [`Store::outbox_number_after`]), and
    /// the numbers it inherited.
    pub fn outbox_numbered(&self) -> Result<Option<u64>, StoreError> {
        self.with_db(Some(0), |_, db| {
            let r = db.begin_read().map_err(StoreError::read)?;
            match r.open_table(META) {
                Ok(meta) => numbered(&meta),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(StoreError::read(e)),
            }
        })
    }

    /// Outbox rows waiting (flushes whose counts are in no segment yet), for /metrics.
    pub fn outbox_backlog(&self) -> Result<u64, StoreError> {
        self.with_db(0, |_, db| {
            let r = db.begin_read().map_err(StoreError::read)?;
            match r.open_table(OUTBOX) {
                Ok(t) => t.len().map_err(StoreError::read),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(StoreError::read(e)),
            }
        })
    }
}
