//! The embedded store: one redb file, `<data-dir>/stackd.redb`.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64: `format` = [`FORMAT`], `bucket_ms` = the bucket width it is filed by |
//! | `frames` | frame id | frame text |
//! | `apps` | app name | first seen, Unix ms |
//! | `stacks` | (app, stack id) | xxh3 of the raw stack, then frame ids (varints) |
//! | `labelsets` | (app, label-set id) | samples, first/last seen, then the labels |
//! | `buckets` | (app, bucket number) | (label-set id, stack id, count) varint triples |
//! | `gauges` | (app, gauge key) | family, label value, label-set id, value, updated |
//!
//! Ids are append-only, so a flush writes the new tail of each id space plus every bucket that
//! changed. A bucket is always written whole.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, Durability, ReadOnlyDatabase, ReadableDatabase, TableDefinition};

/// Version of the layout above. A data dir written by a newer stackd is refused, never rewritten.
pub const FORMAT: u64 = 1;
pub const FILE_NAME: &str = "stackd.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const FRAMES: TableDefinition<u32, &str> = TableDefinition::new("frames");
pub(super) const APPS: TableDefinition<&str, i64> = TableDefinition::new("apps");
pub(super) const STACKS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("stacks");
pub(super) const LABELSETS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("labelsets");
pub(super) const BUCKETS: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("buckets");
pub(super) const GAUGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("gauges");

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("{path} was written by a newer stackd (format {found}, this one reads {FORMAT}); refusing to start rather than risk it")]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("{path} is damaged: {detail}; stackd never deletes data, move the file away to start empty")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} was written with --bucket {stored_ms}ms and stackd was started with --bucket {asked_ms}ms; start with the same --bucket (the stored counts are filed by it)")]
    BucketChanged { path: PathBuf, stored_ms: u64, asked_ms: u64 },
    #[error("store write failed: {0}")]
    Write(String),
}

impl StoreError {
    pub(super) fn write(e: impl std::fmt::Display) -> Self {
        StoreError::Write(e.to_string())
    }
}

/// The open database. After an I/O error redb accepts no more writes until it is reopened;
/// [`Disk::reopen`] does that, and while it cannot, the slot is empty.
#[derive(Debug)]
pub struct Disk {
    db: RwLock<Option<Database>>,
    pub path: PathBuf,
}

impl Disk {
    /// Open (or create) the store in `dir`, for buckets of `bucket_ms`. Refuses a newer format, a
    /// damaged file, or a store filed with another bucket width.
    pub fn open(dir: &Path, bucket_ms: u64) -> Result<Disk, StoreError> {
        let path = dir.join(FILE_NAME);
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open { path: path.clone(), source: e };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let db = Self::create(&path)?;
        let disk = Disk { db: RwLock::new(Some(db)), path };
        disk.check_format(bucket_ms)?;
        Ok(disk)
    }

    /// The database, unless it could not be reopened after an error.
    pub fn db(&self) -> Option<RwLockReadGuard<'_, Option<Database>>> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        guard.is_some().then_some(guard)
    }

    /// Close and open the file again (after an I/O error such as a full disk).
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        drop(slot.take()); // the file lock goes with the old handle
        *slot = Some(Self::create(&self.path)?);
        Ok(())
    }

    fn create(path: &Path) -> Result<Database, StoreError> {
        guarded(path, || Database::create(path).map_err(|e| open_error(path, e)))
    }

    fn check_format(&self, bucket_ms: u64) -> Result<(), StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt { path: self.path.clone(), detail: e.to_string() };
        let guard = self.db().ok_or_else(|| corrupt(&"not open"))?;
        let Some(db) = guard.as_ref() else { return Err(corrupt(&"not open")) };
        if check_format(db, &self.path, bucket_ms)? {
            return Ok(());
        }
        let mut w = db.begin_write().map_err(StoreError::write)?;
        w.set_durability(Durability::Immediate).map_err(StoreError::write)?;
        {
            let mut meta = w.open_table(META).map_err(StoreError::write)?;
            meta.insert("format", FORMAT).map_err(StoreError::write)?;
            meta.insert("bucket_ms", bucket_ms).map_err(StoreError::write)?;
            // Create every table, so that readers never meet a missing one.
            w.open_table(FRAMES).map_err(StoreError::write)?;
            w.open_table(APPS).map_err(StoreError::write)?;
            w.open_table(STACKS).map_err(StoreError::write)?;
            w.open_table(LABELSETS).map_err(StoreError::write)?;
            w.open_table(BUCKETS).map_err(StoreError::write)?;
            w.open_table(GAUGES).map_err(StoreError::write)?;
        }
        w.commit().map_err(StoreError::write)
    }
}

/// A read-only handle on an existing store that was closed cleanly; `None` when there is no
/// store yet, or when it was not closed cleanly (then only a writable open can repair it).
pub(super) fn open_read_only(path: &Path) -> Result<Option<ReadOnlyDatabase>, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => {}
        _ => return Ok(None),
    }
    guarded(path, || match ReadOnlyDatabase::open(path) {
        Ok(db) => Ok(Some(db)),
        Err(redb::DatabaseError::RepairAborted) => Ok(None),
        Err(e) => Err(open_error(path, e)),
    })
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => StoreError::Corrupt { path, detail },
        other => {
            let text = other.to_string();
            if text.contains("invalid") || text.contains("corrupt") || text.contains("magic") || text.contains("version") {
                StoreError::Corrupt { path, detail: text }
            } else {
                StoreError::Open { path, source: Box::new(other) }
            }
        }
    }
}

/// Check the stored format and bucket width without writing. `Ok(false)`: no format recorded
/// yet (a new store).
pub(super) fn check_format(db: &impl ReadableDatabase, path: &Path, bucket_ms: u64) -> Result<bool, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() };
    let (found, stored_bucket) = guarded(path, || {
        let read = db.begin_read().map_err(|e| corrupt(&e))?;
        match read.open_table(META) {
            Ok(t) => Ok((
                t.get("format").map_err(|e| corrupt(&e))?.map(|v| v.value()),
                t.get("bucket_ms").map_err(|e| corrupt(&e))?.map(|v| v.value()),
            )),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok((None, None)),
            Err(e) => Err(corrupt(&e)),
        }
    })?;
    match (found, stored_bucket) {
        (Some(f), _) if f > FORMAT => Err(StoreError::NewerFormat { path: path.to_path_buf(), found: f }),
        (Some(_), Some(stored)) if stored != bucket_ms => {
            Err(StoreError::BucketChanged { path: path.to_path_buf(), stored_ms: stored, asked_ms: bucket_ms })
        }
        (Some(_), _) => Ok(true),
        (None, _) => Ok(false),
    }
}

/// Run `f`, which reads the store, so that a damaged file ends in a refusal naming it: an error
/// reported as damage gets the file's path, and a panic inside the storage library (it asserts
/// on some malformed pages) becomes a damage error rather than a crash. The panic message is
/// not printed: the refusal says it.
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    match result {
        Ok(Err(StoreError::Corrupt { detail, .. })) => Err(StoreError::Corrupt { path: path.to_path_buf(), detail }),
        Ok(other) => other,
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("reading it failed ({})", what.as_deref().unwrap_or("the storage library gave up")),
            })
        }
    }
}

/// LEB128 varints: the compact integer form of every blob.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(input: &mut &[u8]) -> Option<u64> {
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
pub(super) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(super) fn get_ivarint(input: &mut &[u8]) -> Option<i64> {
    let v = get_varint(input)?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn get_str(input: &mut &[u8]) -> Option<String> {
    let len = get_varint(input)? as usize;
    if input.len() < len {
        return None;
    }
    let (s, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(s.to_vec()).ok()
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
}
