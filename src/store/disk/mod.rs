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
//! | `series` | (app, series key) | engine, family, kind, suffix, labels, value, updated |
//! | `notes` | key | what an input keeps about its progress ([`Store::note`](crate::store::Store::note)) |
//!
//! Ids are append-only, so a flush writes the new tail of each id space plus every bucket that
//! changed. A bucket is always written whole. Row encodings are in [`codec`]; [`flush`] has one
//! writer per table, [`load`] one reader per table.

pub(crate) mod codec;
mod flush;
mod load;
mod outbox;

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, Durability, ReadOnlyDatabase, ReadableDatabase, TableDefinition};

pub(super) use codec::decode_bucket;
pub use flush::FlushStats;
#[cfg(test)]
pub(crate) use load::typed;
pub use outbox::Pending;

/// Version of the layout above. A data dir written by a newer stackd is refused, never rewritten.
pub const FORMAT: u64 = 1;
pub const FILE_NAME: &str = "stackd.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FRAMES: TableDefinition<u32, &str> = TableDefinition::new("frames");
const APPS: TableDefinition<&str, i64> = TableDefinition::new("apps");
const STACKS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("stacks");
const LABELSETS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("labelsets");
const BUCKETS: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("buckets");
const GAUGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("gauges");
/// Added after format 1 was first written: a file without it simply has no engine series.
const SERIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("series");
/// Added after format 1 was first written: a file without it has no notes.
const NOTES: TableDefinition<&str, &[u8]> = TableDefinition::new("notes");
/// With `--object-store`: what each flush added to this node's own counts, not yet in a segment
/// (`outbox.rs`). Added after format 1 was first written.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Why the store could not be opened, read or written. Each keeps the error it came from.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cause is part of the message, not a `source`: an error chain would say it twice.
    #[error("cannot open {path}: {cause}")]
    Open { path: PathBuf, cause: Box<dyn std::error::Error + Send + Sync> },
    /// The data directory cannot be used: one line saying why.
    #[error("{0}")]
    DataDir(String),
    #[error("{path} was written by a newer stackd (format {found}, this one reads {FORMAT}); refusing to start rather than risk it")]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("{path} is damaged: {detail}; stackd never deletes data, move the file away to start empty")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} was written with --bucket {stored_ms}ms and stackd was started with --bucket {asked_ms}ms; start with the same --bucket (the stored counts are filed by it)")]
    BucketChanged { path: PathBuf, stored_ms: u64, asked_ms: u64 },
    #[error("store write failed: {0}")]
    Write(redb::Error),
    #[error("store read failed: {0}")]
    Read(redb::Error),
    /// The storage library gave up on a page (it panics on some malformed pages).
    #[error("store read failed: a damaged page")]
    DamagedPage,
    /// After an I/O error the file is reopened; until that succeeds there is no store to use.
    #[error("the store is not open (reopening it after an error failed)")]
    Unavailable,
}

impl StoreError {
    fn write(e: impl Into<redb::Error>) -> Self {
        StoreError::Write(e.into())
    }

    fn read(e: impl Into<redb::Error>) -> Self {
        StoreError::Read(e.into())
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
        usable_dir(dir)?;
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

    /// Close the file, as a reopen that fails leaves it.
    #[cfg(test)]
    pub(super) fn close(&self) {
        drop(self.db.write().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Close and open the file again (after an I/O error such as a full disk).
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        drop(slot.take()); // the file lock goes with the old handle
        *slot = Some(Self::create(&self.path)?);
        Ok(())
    }

    /// One stored bucket of `app`, or `None` when it was never written.
    pub(super) fn read_bucket(&self, app: &str, n: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.reading(|db| {
            let read = db.begin_read().map_err(StoreError::read)?;
            let table = read.open_table(BUCKETS).map_err(StoreError::read)?;
            let value = table.get((app, n)).map_err(StoreError::read)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
    }

    /// Decode every stored bucket of `app` numbered in `range`, except those `skip` says (they
    /// are in memory), calling `add` with each (label set, stack, count).
    pub(super) fn each_bucket(
        &self,
        app: &str,
        range: std::ops::RangeInclusive<i64>,
        skip: impl Fn(i64) -> bool,
        add: &mut dyn FnMut(i64, u32, u32, u64),
    ) -> Result<(), StoreError> {
        self.reading(|db| {
            let read = db.begin_read().map_err(StoreError::read)?;
            let table = read.open_table(BUCKETS).map_err(StoreError::read)?;
            for entry in table.range((app, *range.start())..=(app, *range.end())).map_err(StoreError::read)? {
                let (key, blob) = entry.map_err(StoreError::read)?;
                let n = key.value().1;
                if !skip(n) {
                    decode_bucket(blob.value(), |labels, stack, count| add(n, labels, stack, count));
                }
            }
            Ok(())
        })
    }

    /// Run a read on the open database. A panic inside the storage library (a damaged page) is
    /// an unreadable store too, and must not take down the thread that asked.
    fn reading<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.db().ok_or(StoreError::Unavailable)?;
        let db = guard.as_ref().ok_or(StoreError::Unavailable)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(db))).unwrap_or(Err(StoreError::DamagedPage))
    }

    fn create(path: &Path) -> Result<Database, StoreError> {
        guarded(path, || Database::create(path).map_err(|e| open_error(path, e)))
    }

    fn check_format(&self, bucket_ms: u64) -> Result<(), StoreError> {
        let guard = self.db().ok_or(StoreError::Unavailable)?;
        let Some(db) = guard.as_ref() else { return Err(StoreError::Unavailable) };
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
pub(crate) fn open_read_only(path: &Path) -> Result<Option<ReadOnlyDatabase>, StoreError> {
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

/// The data directory exists (or is created) as a directory this user may write in.
fn usable_dir(dir: &Path) -> Result<(), StoreError> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(StoreError::DataDir(format!("--data-dir {shown} is not a directory"))),
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::DataDir(match e.kind() {
                std::io::ErrorKind::PermissionDenied => format!("cannot create --data-dir {shown} as {}: permission denied", user()),
                std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
                    format!("cannot create --data-dir {shown}: a part of the path is a file, not a directory")
                }
                _ => format!("cannot create --data-dir {shown}: {e}"),
            })
        })?,
    }
    if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(StoreError::DataDir(format!("cannot write --data-dir {shown} as {}: permission denied", user())));
    }
    Ok(())
}

/// The user stackd runs as: `name (uid N)`.
fn user() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => format!("user {} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// An error opening the file: damage (redb's checks failed, or it is no redb file at all) is
/// told apart from a failure to open (permissions, a lock) by the error's kind, never its text.
fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    let damaged = match &e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) | redb::DatabaseError::UpgradeRequired(_) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    let dir = path.parent().unwrap_or(Path::new(".")).display().to_string();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::DataDir(format!("another stackd is using {dir} (its store file is locked); give each stackd its own --data-dir"))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            StoreError::DataDir(format!("cannot write {} as {}: permission denied", path.display(), user()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => StoreError::Corrupt { path, detail },
        e if damaged => StoreError::Corrupt { path, detail: e.to_string() },
        other => StoreError::Open { path, cause: Box::new(other) },
    }
}

/// Check the stored format and bucket width without writing. `Ok(false)`: no format recorded
/// yet (a new store).
pub(crate) fn check_format(db: &impl ReadableDatabase, path: &Path, bucket_ms: u64) -> Result<bool, StoreError> {
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
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
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
