//! `--jfr-dir DIR`: recordings on a shared or mounted file system, as Spark 4's profiler writes
//! them with `spark.profiler.dfsDir`: `DIR/<appId>[_<attemptId>]/profile-exec-<executorId>.jfr`
//! and `profile-driver.jfr`, appended every `spark.profiler.dfsWriteInterval` (30 s) while the
//! app runs. Plain files directly in `DIR` are read too: `<app>-exec-<id>.jfr` and
//! `<app>-driver.jfr` (label `executor`), any other `<name>.jfr` as the app `<name>`.
//!
//! Every `--jfr-scan-interval` each file is read from where the last scan stopped, one whole
//! chunk at a time: a chunk still being written (cut off, or its size not yet written) is left
//! for a later scan. How far each file was read is a note in the store ([`Store::note`]),
//! written in the same transaction as the chunk's samples, so a chunk is counted exactly once
//! across restarts and crashes. A file that cannot be read, is damaged or shrinks is reported
//! once (log, `stackd_jfr_chunks_total{input="dir"}`, `stackd_jfr_file_failed{file}`) and never
//! retried; its earlier chunks stay.
//!
//! [`Store::note`]: crate::store::Store::note

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::jfr::{self, FileState, Target};
use crate::ingest::Ingest;
use crate::protocol::jfr::{header, Chunk, Error, HEADER_SIZE};

/// The store notes' key prefix: `jfr-dir:<path>`.
const NOTE_PREFIX: &str = "jfr-dir:";

/// Failed files named in `/metrics` at most.
const MAX_FAILED_NAMED: usize = 100;

/// How far one file was read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes read: the end of the last chunk stored.
    pub offset: u64,
    /// What the file's chunks said that later ones need.
    #[serde(default)]
    pub state: FileState,
    /// Why the file is no longer read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The watcher's settings.
#[derive(Clone, Debug)]
pub struct DirConfig {
    pub dirs: Vec<PathBuf>,
    pub interval: Duration,
    pub max_chunk: usize,
}

/// Where a file's samples go, from its path: `None` when it is not a recording stackd reads.
pub fn target_of(dir: &Path, file: &Path) -> Option<Target> {
    let rel = file.strip_prefix(dir).ok()?;
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => {
            let stem = name.strip_suffix(".jfr").filter(|s| !s.is_empty())?;
            // `<app>-exec-<id>.jfr`, `<app>-driver.jfr`: what `-XX:StartFlightRecording:filename=`
            // can name with Spark's {{APP_ID}} and {{EXECUTOR_ID}} (the JDK creates no
            // directory).
            let (app, executor) = match stem.rsplit_once("-exec-") {
                Some((app, id)) if !app.is_empty() && !id.is_empty() => (app, Some(id)),
                _ => match stem.strip_suffix("-driver").filter(|a| !a.is_empty()) {
                    Some(app) => (app, Some("driver")),
                    None => (stem, None),
                },
            };
            let labels = executor.map(|e| vec![("executor".to_string(), e.to_string())]).unwrap_or_default();
            Some(Target::new(app.to_string(), labels))
        }
        [folder, name] => {
            let executor = if *name == "profile-driver.jfr" {
                "driver"
            } else {
                name.strip_prefix("profile-exec-")?.strip_suffix(".jfr").filter(|e| !e.is_empty())?
            };
            let (app, attempt) = split_attempt(folder);
            let mut labels = vec![("executor".to_string(), executor.to_string())];
            if let Some(a) = attempt {
                labels.push(("attempt".to_string(), a.to_string()));
            }
            labels.sort();
            Some(Target::new(app.to_string(), labels))
        }
        _ => None,
    }
}

/// `<appId>_<attemptId>` → (app id, attempt). YARN's ids have underscores of their own
/// (`application_1701234567890_0001`): an attempt is a fourth part there; other ids (`app-…`,
/// `local-…`) take a trailing `_<digits>`.
fn split_attempt(folder: &str) -> (&str, Option<&str>) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if folder.starts_with("application_") {
        return match folder.rfind('_') {
            Some(i) if folder.matches('_').count() == 3 && digits(&folder[i + 1..]) => (&folder[..i], Some(&folder[i + 1..])),
            _ => (folder, None),
        };
    }
    match folder.rsplit_once('_') {
        Some((app, attempt)) if digits(attempt) && !app.is_empty() => (app, Some(attempt)),
        _ => (folder, None),
    }
}

/// Watch the dirs until `token` is cancelled.
pub async fn watch(config: DirConfig, ingest: Arc<Ingest>, token: CancellationToken) {
    let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
    for (key, value) in ingest.store.notes(NOTE_PREFIX) {
        let file = key[NOTE_PREFIX.len()..].to_string();
        match serde_json::from_slice::<Progress>(&value) {
            Ok(p) => {
                if p.failed.is_some() {
                    named_failure(&ingest, &file);
                }
                progress.insert(file, p);
            }
            Err(e) => tracing::error!(file, error = %e, "the stored progress of a JFR file cannot be read; it is read from its start"),
        }
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (cfg, ing, before) = (config.clone(), Arc::clone(&ingest), std::mem::take(&mut progress));
        match tokio::task::spawn_blocking(move || scan(&cfg, &ing, before)).await {
            Ok((after, _)) => progress = after,
            Err(e) => {
                tracing::error!(error = %e, "a scan of the JFR directories failed; the stored progress is read again");
                progress = ingest
                    .store
                    .notes(NOTE_PREFIX)
                    .into_iter()
                    .filter_map(|(k, v)| Some((k[NOTE_PREFIX.len()..].to_string(), serde_json::from_slice(&v).ok()?)))
                    .collect();
            }
        }
    }
}

/// Note a file's progress in the store (with the samples it covers: see [`read_file`]).
fn note(ingest: &Ingest, file: &str, p: &Progress) {
    if let Ok(value) = serde_json::to_vec(p) {
        ingest.store.note(&format!("{NOTE_PREFIX}{file}"), value);
    }
}

fn named_failure(ingest: &Ingest, file: &str) {
    let m = &ingest.metrics.jfr_file_failed;
    if m.with_label_values(&[file]).get() == 0 && failed_count(ingest) < MAX_FAILED_NAMED {
        m.with_label_values(&[file]).set(1);
    }
}

fn failed_count(ingest: &Ingest) -> usize {
    use prometheus::core::Collector;
    ingest.metrics.jfr_file_failed.collect().iter().map(|f| f.get_metric().len()).sum()
}

/// One pass over the dirs: read what every file has gained. Returns the new progress and how
/// many chunks were stored.
pub fn scan(config: &DirConfig, ingest: &Ingest, mut progress: BTreeMap<String, Progress>) -> (BTreeMap<String, Progress>, usize) {
    let mut stored = 0;
    for dir in &config.dirs {
        for file in recordings(dir) {
            let Some(target) = target_of(dir, &file) else { continue };
            let key = file.display().to_string();
            let p = progress.entry(key.clone()).or_default();
            if p.failed.is_some() {
                continue;
            }
            match read_file(&file, &key, &target, p, config.max_chunk, ingest) {
                Ok(n) => stored += n,
                Err(why) => {
                    tracing::error!(file = %key, error = %why, offset = p.offset, "a JFR file is not read any further; the chunks before stay");
                    p.failed = Some(why);
                    note(ingest, &key, p);
                    named_failure(ingest, &key);
                }
            }
        }
    }
    (progress, stored)
}

/// `DIR/*.jfr` and `DIR/*/*.jfr`, sorted.
fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                if let Ok(inner) = std::fs::read_dir(&path) {
                    out.extend(inner.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jfr")));
                }
            }
            Ok(t) if t.is_file() && path.extension().is_some_and(|x| x == "jfr") => out.push(path),
            _ => {}
        }
    }
    out.sort();
    out
}

/// Read the whole chunks a file has past `p.offset`; the number stored. An error names why the
/// file is given up.
fn read_file(path: &Path, key: &str, target: &Target, p: &mut Progress, max_chunk: usize, ingest: &Ingest) -> Result<usize, String> {
    let chunks = &ingest.metrics.jfr_chunks;
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    let size = f.metadata().map_err(|e| format!("cannot be read: {e}"))?.len();
    if size < p.offset {
        chunks.with_label_values(&["dir", "damaged"]).inc();
        return Err(format!("it shrank from {} to {size} bytes (rewritten?)", p.offset));
    }
    let mut stored = 0;
    let mut buf = Vec::new();
    while size - p.offset >= HEADER_SIZE as u64 {
        f.seek(SeekFrom::Start(p.offset)).map_err(|e| format!("cannot be read: {e}"))?;
        buf.clear();
        (&mut f).take(HEADER_SIZE as u64).read_to_end(&mut buf).map_err(|e| format!("cannot be read: {e}"))?;
        let h = match header(&buf) {
            Ok(h) => h,
            // Its size is written last: a chunk being written.
            Err(Error::Incomplete { .. }) => break,
            Err(e) => {
                chunks.with_label_values(&["dir", "damaged"]).inc();
                return Err(format!("at byte {}: {e}", p.offset));
            }
        };
        if h.size > max_chunk as u64 {
            chunks.with_label_values(&["dir", "too_large"]).inc();
            return Err(format!("at byte {}: the chunk is {} bytes, over --max-jfr-chunk-size ({max_chunk})", p.offset, h.size));
        }
        if p.offset + h.size > size {
            break; // the rest is still being written
        }
        (&mut f).take(h.size - HEADER_SIZE as u64).read_to_end(&mut buf).map_err(|e| format!("cannot be read: {e}"))?;
        if (buf.len() as u64) < h.size {
            break; // shorter than its size said a moment ago: being written
        }
        let chunk = Chunk::parse(&buf).map_err(|e| {
            chunks.with_label_values(&["dir", "damaged"]).inc();
            format!("at byte {}: {e}", p.offset)
        })?;
        let mut state = p.state;
        // The chunk's samples and the note that it was read reach the disk together.
        let noting = ingest.store.noting();
        let mut w = ingest.writer(None);
        let result = jfr::store_chunk(&mut w, target, &chunk, &mut state, crate::now_ms());
        drop(w);
        if let Err(e) = result {
            chunks.with_label_values(&["dir", "damaged"]).inc();
            return Err(format!("at byte {}: {e}", p.offset));
        }
        p.state = state;
        p.offset += h.size;
        note(ingest, key, p);
        drop(noting);
        chunks.with_label_values(&["dir", "stored"]).inc();
        stored += 1;
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dir: &str, file: &str) -> Option<(String, Vec<(String, String)>)> {
        target_of(Path::new(dir), &Path::new(dir).join(file)).map(|t| (t.app, t.labels))
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn spark_profiler_layout() {
        assert_eq!(t("/p", "app-20261203-0001/profile-exec-3.jfr"), Some(("app-20261203-0001".into(), l(&[("executor", "3")]))));
        assert_eq!(t("/p", "local-1701234567890/profile-driver.jfr"), Some(("local-1701234567890".into(), l(&[("executor", "driver")]))));
        assert_eq!(
            t("/p", "application_1701234567890_0001_2/profile-exec-12.jfr"),
            Some(("application_1701234567890_0001".into(), l(&[("attempt", "2"), ("executor", "12")])))
        );
        assert_eq!(
            t("/p", "application_1701234567890_0001/profile-exec-1.jfr"),
            Some(("application_1701234567890_0001".into(), l(&[("executor", "1")])))
        );
        assert_eq!(t("/p", "app-1_3/profile-exec-1.jfr"), Some(("app-1".into(), l(&[("attempt", "3"), ("executor", "1")]))));
        assert_eq!(t("/p", "nightly-etl.jfr"), Some(("nightly-etl".into(), vec![])));
        assert_eq!(t("/p", "app-20261203-0001-exec-12.jfr"), Some(("app-20261203-0001".into(), l(&[("executor", "12")]))));
        assert_eq!(t("/p", "nightly-etl-driver.jfr"), Some(("nightly-etl".into(), l(&[("executor", "driver")]))));
        assert_eq!(t("/p", "-exec-1.jfr"), Some(("-exec-1".into(), vec![])));
        assert_eq!(t("/p", "app/other.jfr"), None, "not the profiler's name");
        assert_eq!(t("/p", "app/profile-exec-.jfr"), None);
        assert_eq!(t("/p", "a/b/profile-exec-1.jfr"), None, "two levels down");
        assert_eq!(t("/p", ".jfr"), None);
    }
}
