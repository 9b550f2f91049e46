//! `--jfr-dir DIR`: recordings on a shared or mounted file system, as Spark 4's profiler writes
//! them with `spark.profiler.dfsDir`: `DIR/<appId>[_<attemptId>]/profile-exec-<executorId>.jfr`
//! and `profile-driver.jfr`, appended every `spark.profiler.dfsWriteInterval` (30 s) while the
//! app runs. Plain files directly in `DIR` are read too: `<app>-exec-<id>.jfr` and
//! `<app>-driver.jfr` (label `executor`), any other `<name>.jfr` as the app `<name>`.
//!
//! Every `--jfr-scan-interval` each file is read from where the last scan stopped, one whole
//! chunk at a time: a chunk still being written (cut off, or its size not yet written) is left
//! for a later scan. How far each file was read is kept in `<data-dir>/jfr-progress.json`,
//! written after the chunks read are durable in the store, so a chunk is counted once across
//! restarts (a crash between the two writes counts that scan's chunks again on restart). A
//! file that cannot be read, is damaged or shrinks is reported once (log, and
//! `stackd_jfr_chunks_total{input="dir"}`, and `stackd_jfr_file_failed{file}`) and never
//! retried; its earlier chunks stay.

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
use crate::server::flush::Flusher;

/// The progress file's name, in the data dir.
pub const PROGRESS_FILE: &str = "jfr-progress.json";

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
    /// Where the progress is kept (`None`: memory only).
    pub progress_file: Option<PathBuf>,
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
            Some(Target { app: app.to_string(), labels })
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
            Some(Target { app: app.to_string(), labels })
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
pub async fn watch(config: DirConfig, ingest: Arc<Ingest>, flusher: Flusher, token: CancellationToken) {
    let mut progress: BTreeMap<String, Progress> = config
        .progress_file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| match serde_json::from_slice(&b) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, "the JFR progress file cannot be read; files are read from their start");
                None
            }
        })
        .unwrap_or_default();
    for (file, p) in &progress {
        if p.failed.is_some() {
            named_failure(&ingest, file);
        }
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (cfg, ing, before) = (config.clone(), Arc::clone(&ingest), progress.clone());
        let Ok((after, stored)) = tokio::task::spawn_blocking(move || scan(&cfg, &ing, before)).await else { continue };
        if after == progress {
            continue;
        }
        if stored > 0 {
            // The chunks are durable before the progress that skips them is.
            if let Err(e) = flusher.sync().await {
                tracing::warn!(error = %e, "JFR chunks read but not yet durable; they are read again next time");
                continue;
            }
        }
        progress = after;
        if let Some(file) = &config.progress_file {
            if let Err(e) = save(file, &progress) {
                tracing::error!(file = %file.display(), error = %e, "the JFR progress cannot be written");
            }
        }
    }
}

fn save(file: &Path, progress: &BTreeMap<String, Progress>) -> std::io::Result<()> {
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(progress).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, file)
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
            match read_file(&file, &target, p, config.max_chunk, ingest) {
                Ok(n) => stored += n,
                Err(why) => {
                    tracing::error!(file = %key, error = %why, offset = p.offset, "a JFR file is not read any further; the chunks before stay");
                    p.failed = Some(why);
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
fn read_file(path: &Path, target: &Target, p: &mut Progress, max_chunk: usize, ingest: &Ingest) -> Result<usize, String> {
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
        let mut w = ingest.writer(None);
        let result = jfr::store_chunk(&mut w, target, &chunk, &mut state, crate::now_ms());
        drop(w);
        if let Err(e) = result {
            chunks.with_label_values(&["dir", "damaged"]).inc();
            return Err(format!("at byte {}: {e}", p.offset));
        }
        chunks.with_label_values(&["dir", "stored"]).inc();
        p.state = state;
        p.offset += h.size;
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
