//! JFR decoding, side by side on the same multi-chunk recording: every real recording of
//! tests/fixtures/jfr (JDK 17 `settings=profile`, async-profiler 2.9 in itimer, wall, alloc and
//! lock modes) one after another, repeated to about 20 MB, as a recording that many chunks
//! were appended to.
//!
//! * `stackd/decode_and_store`: what `POST /import/jfr` does per chunk: read the chunk, every
//!   sample event by type and time bucket, name each distinct stack's frames, store them in a
//!   fresh in-memory store. Each repetition of the five recordings is filed as another executor
//!   of the app (as `--jfr-dir` files one per executor): stacks repeat across executors as on a
//!   cluster, label sets do not.
//! * `stackd/decode`: the same without the store (events walked, every event's stack read).
//! * `jfrs/generic_api`: the `jfrs` crate (the one other Rust JFR reader) reading the same
//!   sample events and, through its generic accessor API, each one's frames (class, method,
//!   line) from the constant pools: less than stackd does (no store, nothing kept).
//!
//! Compare the ratio in one run (the machine is shared and noisy). The JDK's own `jfr print`
//! and the peak memory of a 200 MB import: `benches/jfr.sh`.
//!
//! Run: `cargo bench --bench jfr`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stackd::ingest::Ingest;
use stackd::input::jfr::{store_chunk, FileState, Target};
use stackd::metrics::Metrics;
use stackd::protocol::jfr::Chunk;
use stackd::store::{Limits, Store};

/// The recordings of tests/fixtures/jfr, one chunk each.
const FIXTURES: [&str; 5] = ["jdk-profile", "ap-itimer", "ap-wall", "ap-alloc", "ap-lock"];

/// The fixtures one after another, repeated to at least `size` bytes.
pub fn recording(size: usize) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/");
    let one: Vec<u8> = FIXTURES.iter().flat_map(|n| std::fs::read(format!("{dir}{n}.jfr")).expect("fixture")).collect();
    let mut out = Vec::with_capacity(size + one.len());
    while out.len() < size {
        out.extend_from_slice(&one);
    }
    out
}

/// Every chunk of `bytes`.
fn chunks(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let size = stackd::protocol::jfr::header(&bytes[at..]).expect("header").size as usize;
        out.push(&bytes[at..at + size]);
        at += size;
    }
    out
}

const SAMPLE_EVENTS: [&str; 7] = [
    "jdk.ExecutionSample",
    "jdk.NativeMethodSample",
    "jdk.ObjectAllocationSample",
    "jdk.ObjectAllocationInNewTLAB",
    "jdk.ObjectAllocationOutsideTLAB",
    "jdk.JavaMonitorEnter",
    "jdk.ThreadPark",
];

/// jfrs, generic API: each sample event's frames (class, method, line), counted.
fn jfrs_frames(bytes: &[u8]) -> usize {
    use jfrs::reader::JfrReader;
    let mut frames = 0;
    let mut reader = JfrReader::new(std::io::Cursor::new(bytes));
    for (mut chunk_reader, chunk) in reader.chunks().flatten() {
        for event in chunk_reader.events(&chunk).flatten() {
            if !SAMPLE_EVENTS.contains(&event.class.name()) {
                continue;
            }
            let value = event.value();
            let Some(list) = value.get_field("stackTrace").and_then(|s| s.get_field("frames")).and_then(|f| f.as_iter()) else { continue };
            for frame in list {
                let method = frame.get_field("method");
                let name: Option<&str> = method
                    .as_ref()
                    .and_then(|m| m.get_field("name"))
                    .and_then(|n| n.get_field("string"))
                    .and_then(|s| s.value.try_into().ok());
                let class: Option<&str> = method
                    .as_ref()
                    .and_then(|m| m.get_field("type"))
                    .and_then(|t| t.get_field("name"))
                    .and_then(|n| n.get_field("string"))
                    .and_then(|s| s.value.try_into().ok());
                let line: Option<&i32> = frame.get_field("lineNumber").and_then(|l| l.value.try_into().ok());
                black_box((name, class, line));
                frames += 1;
            }
        }
    }
    frames
}

/// stackd's reader alone: each sample event's frames.
fn stackd_frames(bytes: &[u8]) -> usize {
    let mut frames = Vec::new();
    let mut n = 0;
    for c in chunks(bytes) {
        let chunk = Chunk::parse(c).expect("chunk");
        chunk
            .events(|e| {
                if chunk.stack(e.stack, &mut frames).expect("stack").is_some() {
                    n += frames.len();
                }
            })
            .expect("events");
    }
    n
}

/// What an import does: decode and store every chunk into a fresh store, each repetition of
/// the recordings as another executor.
fn stackd_import(bytes: &[u8]) -> u64 {
    let store = Arc::new(Store::new(Limits { max_stacks_per_app: 1_000_000, ..Limits::default() }, Duration::from_secs(60)));
    let ingest = Ingest::new(Arc::clone(&store), Metrics::new());
    let mut state = FileState::default();
    let now = stackd::now_ms();
    for (i, c) in chunks(bytes).into_iter().enumerate() {
        let target = Target::new("bench".into(), vec![("executor".into(), (i / FIXTURES.len()).to_string())]);
        let chunk = Chunk::parse(c).expect("chunk");
        let mut w = ingest.writer(None);
        store_chunk(&mut w, &target, &chunk, &mut state, now).expect("stored");
    }
    store.app("bench").map_or(0, |a| a.total_samples())
}

fn bench(c: &mut Criterion) {
    let bytes = recording(20 << 20);
    let mut g = c.benchmark_group("jfr");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("stackd/decode_and_store", |b| b.iter(|| black_box(stackd_import(&bytes))));
    g.bench_function("stackd/decode", |b| b.iter(|| black_box(stackd_frames(&bytes))));
    g.bench_function("jfrs/generic_api", |b| b.iter(|| black_box(jfrs_frames(&bytes))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
