//! What Pyroscope clients send, decoded and stored on one core, in process (the HTTP figures,
//! requests/s with `wrk`, and Google's own pprof parser in Go on the same files:
//! `benches/pyroscope.sh`).
//!
//! Input: Spark executors' on-CPU stacks recorded with JFR (tests/fixtures/jfr/spark.folded,
//! 571 stacks, up to 100+ frames) as 16 executors profile them: each executor's profile a
//! different mix of those stacks with a leaf of its own, encoded as pyroscope-rs (the
//! `pyroscope-io` client) encodes a 10 s upload: `cpu`/`nanoseconds`, period 10 ms, a value of
//! samples × period, the pprof plain inside a gzip-compressed `PushRequest`. Half the profiles
//! are stamped now, half five minutes late.
//!
//! * `pprof/decode_and_check`: `pprof::decode` (prost) and every id and string index checked.
//! * `pprof/decode_check_and_store`: the same, each profile's stacks named and summed into a
//!   batch, and stored (a fresh store per iteration: the first sight of every stack, the
//!   costliest case).
//! * `push/request`: a whole Push request as `/push.v1.PusherService/Push` handles it after
//!   reading the body: gunzip, `PushRequest` decode, and the above, into a store that has seen
//!   the stacks (the steady state: each executor pushes every 10 s).
//! * `jfr_multipart/request`: the Java agent's request (multipart, gzip JFR + labels) of the
//!   async-profiler itimer fixture: split, gunzip, JFR prepared and stored.
//!
//! The bodies are also written to `target/pyroscope-bench/` for `benches/pyroscope.sh`.
//!
//! Run: `cargo bench --bench pyroscope`.

use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use stackd::ingest::Ingest;
use stackd::input::pyroscope::{Batch, Series};
use stackd::metrics::Metrics;
use stackd::protocol::pprof::{self, Function, Line, Location, Profile, Sample, ValueType};
use stackd::protocol::pyroscope::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use stackd::store::{Limits, Store};

const SPARK: &str = include_str!("../tests/fixtures/jfr/spark.folded");
const EXECUTORS: usize = 16;

/// One executor's profile, as pyroscope-rs encodes it.
fn executor_profile(executor: usize, time_nanos: i64) -> Profile {
    let mut strings: Vec<String> = vec!["".into(), "cpu".into(), "nanoseconds".into()];
    let mut string_ids: std::collections::HashMap<String, i64> = Default::default();
    let mut intern = |s: &str, strings: &mut Vec<String>| -> i64 {
        *string_ids.entry(s.to_string()).or_insert_with(|| {
            strings.push(s.to_string());
            strings.len() as i64 - 1
        })
    };
    let (mut functions, mut locations, mut samples) = (Vec::new(), Vec::new(), Vec::new());
    let mut loc_of: std::collections::HashMap<i64, u64> = Default::default();
    for (i, line) in SPARK.lines().enumerate() {
        // A different mix per executor: about two thirds of the stacks, weights of its own.
        if (i * 7 + executor * 3) % 3 == 0 {
            continue;
        }
        let (stack, count) = line.rsplit_once(' ').expect("folded");
        let count: i64 = count.parse().expect("count");
        let leaf = format!("org.apache.spark.executor.Task{executor}.run");
        let mut ids = Vec::new();
        for frame in stack.split(';').chain(std::iter::once(leaf.as_str())) {
            let name = intern(frame, &mut strings);
            let loc = *loc_of.entry(name).or_insert_with(|| {
                functions.push(Function { id: functions.len() as u64 + 1, name, system_name: 0, filename: 0 });
                locations.push(Location {
                    id: locations.len() as u64 + 1,
                    mapping_id: 0,
                    address: 0,
                    line: vec![Line { function_id: functions.len() as u64, line: 0 }],
                });
                locations.len() as u64
            });
            ids.push(loc);
        }
        ids.reverse(); // leaf first
        let weight = 1 + (count + (executor as i64) * (i as i64 % 5)) % 40;
        samples.push(Sample { location_id: ids, value: vec![weight * 10_000_000], label: vec![] });
    }
    Profile {
        sample_type: vec![ValueType { r#type: 1, unit: 2 }],
        sample: samples,
        location: locations,
        function: functions,
        string_table: strings,
        time_nanos,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { r#type: 1, unit: 2 }),
        period: 10_000_000,
        ..Profile::default()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// The pprof of each executor, and each executor's Push request (gzip).
pub fn bodies(now_ns: i64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut pprofs = Vec::new();
    let mut pushes = Vec::new();
    for e in 0..EXECUTORS {
        let late = if e % 2 == 0 { 0 } else { 300_000_000_000 };
        let pprof = executor_profile(e, now_ns - late).encode_to_vec();
        let label = |name: &str, value: String| LabelPair { name: name.into(), value };
        let request = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![
                    label("__name__", "process_cpu".into()),
                    label("service_name", "spark-job".into()),
                    label("executor", e.to_string()),
                    label("process.runtime.name", "cpython".into()),
                ],
                samples: vec![RawSample { raw_profile: pprof.clone(), id: String::new() }],
            }],
        };
        pushes.push(gzip(&request.encode_to_vec()));
        pprofs.push(pprof);
    }
    (pprofs, pushes)
}

/// The Java agent's multipart request body of a recording.
pub fn agent_body(jfr: &[u8], boundary: &str) -> Vec<u8> {
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"jfr\"; filename=\"jfr\"\r\n\r\n").into_bytes();
    body.extend_from_slice(&gzip(jfr));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

fn store() -> Ingest {
    Ingest::new(Arc::new(Store::new(Limits::default(), Duration::from_secs(365 * 86_400))), Metrics::new())
}

fn series(executor: usize) -> Series {
    Series {
        app: "spark-job".into(),
        labels: vec![("executor".into(), executor.to_string())],
        time_ms: None,
        sample_rate: None,
        wall: false,
    }
}

fn bench(c: &mut Criterion) {
    let now_ns = stackd::now_ms() * 1_000_000;
    let (pprofs, pushes) = bodies(now_ns);
    let jfr = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/ap-itimer.jfr")).expect("fixture");
    let boundary = "bench-boundary-1";
    let multipart = agent_body(&jfr, boundary);
    // The bodies, for benches/pyroscope.sh.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyroscope-bench");
    std::fs::create_dir_all(&out).expect("target dir");
    for (i, (p, push)) in pprofs.iter().zip(&pushes).enumerate() {
        std::fs::write(out.join(format!("executor-{i}.pprof")), p).expect("write");
        std::fs::write(out.join(format!("push-{i}.bin")), push).expect("write");
    }
    std::fs::write(out.join("agent-jfr.multipart"), &multipart).expect("write");

    let pprof_bytes: usize = pprofs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("pprof");
    g.throughput(Throughput::Bytes(pprof_bytes as u64));
    g.bench_function("decode_and_check", |b| {
        b.iter(|| {
            for p in &pprofs {
                black_box(pprof::decode(p).expect("valid"));
            }
        })
    });
    g.bench_function("decode_check_and_store", |b| {
        b.iter(|| {
            let ingest = store();
            for (e, p) in pprofs.iter().enumerate() {
                let checked = pprof::decode(p).expect("valid");
                let mut batch = Batch::new(4096);
                batch.add_pprof(&series(e), &checked, None, &Default::default(), now_ns / 1_000_000).expect("batch");
                black_box(batch.store(&ingest, now_ns / 1_000_000));
            }
        })
    });
    g.finish();

    let push_bytes: usize = pushes.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Bytes(push_bytes as u64));
    // Steady state: the same executors push every 10 s, their stacks already in the store.
    let ingest = store();
    g.bench_function("request", |b| {
        b.iter(|| {
            for push in &pushes {
                let mut raw = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&push[..]), &mut raw).expect("gzip");
                let request = PushRequest::decode(&raw[..]).expect("push");
                for s in &request.series {
                    let labels =
                        stackd::input::pyroscope::labels(s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))).expect("labels");
                    let series = Series { app: "spark-job".into(), labels, time_ms: None, sample_rate: None, wall: false };
                    let mut batch = Batch::new(4096);
                    for raw in &s.samples {
                        let checked = pprof::decode(&raw.raw_profile).expect("valid");
                        batch.add_pprof(&series, &checked, None, &Default::default(), now_ns / 1_000_000).expect("batch");
                    }
                    black_box(batch.store(&ingest, now_ns / 1_000_000));
                }
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("jfr_multipart");
    g.throughput(Throughput::Bytes(multipart.len() as u64));
    g.bench_function("request", |b| {
        b.iter(|| {
            let ingest = store();
            let parts = stackd::protocol::pyroscope::multipart(&multipart, boundary).expect("multipart");
            let mut jfr = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(parts[0].data), &mut jfr).expect("gzip");
            let chunk = stackd::protocol::jfr::Chunk::parse(&jfr).expect("chunk");
            let target = stackd::input::jfr::Target::new("spark-job".into(), vec![]);
            let mut state = stackd::input::jfr::FileState::default();
            let prepared = stackd::input::jfr::prepare(ingest.store.bucket_ms(), &chunk, &mut state).expect("prepare");
            let mut w = ingest.writer(None);
            black_box(prepared.store(&mut w, &target, &chunk, 0).expect("store"));
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
