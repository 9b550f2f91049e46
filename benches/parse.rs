//! Parse and ingest throughput, on bodies built from the real-JVM fixture
//! (tests/fixtures/jfr/workload.folded), encoded as statsd-jvm-profiler sends them.
//!
//! `line_protocol/*` measures our parser and the `influxdb-line-protocol` crate (InfluxDB IOx's
//! parser) on the same bytes in the same run: compare their ratio, not absolute times.
//!
//! Run: `cargo bench --bench parse`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stackd::ingest::Ingest;
use stackd::input::profiler::names as jvm;
use stackd::input::{Inputs, Precision};
use stackd::metrics::Metrics;
use stackd::protocol::{influx, statsd};
use stackd::store::{Limits, Store};

/// Root-first frames of every fixture stack.
fn fixture_stacks() -> Vec<(Vec<String>, u64)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/workload.folded")).expect("fixture");
    text.lines()
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').expect("count");
            (stack.split(';').map(str::to_string).collect(), count.parse().expect("count"))
        })
        .collect()
}

/// statsd-jvm-profiler's metric name for a root-first stack.
fn agent_name(frames: &[String]) -> String {
    jvm::encode_stack(&frames.iter().map(String::as_str).collect::<Vec<_>>())
}

fn datagrams() -> Vec<Vec<u8>> {
    fixture_stacks().iter().map(|(f, c)| format!("spark.app-1.7.{}:{c}|g", agent_name(f)).into_bytes()).collect()
}

/// One InfluxDBReporter flush per fixture pass, repeated to about 256 KiB.
fn influx_body() -> String {
    let stacks = fixture_stacks();
    let mut body = String::new();
    let mut t = 1_500_000_000_123_000_000i64;
    while body.len() < 256 * 1024 {
        for (frames, count) in &stacks {
            body.push_str(&format!(
                "{},hostname=worker-1,jvmName=4242@worker-1,pid=4242,prefix=spark.app-1.7 value={count}.0 {t}\n",
                agent_name(frames)
            ));
        }
        body.push_str(&format!(
            "heap.total.used,hostname=worker-1,jvmName=4242@worker-1,pid=4242,prefix=spark.app-1.7 value=123456789.0 {t}\n"
        ));
        t += 1_000_000_000;
    }
    body
}

fn inputs() -> Inputs {
    let store = Arc::new(Store::new(Limits { max_apps: 100, max_stacks_per_app: 100_000, ..Limits::default() }, Duration::from_secs(60)));
    Inputs::new(
        Arc::new(Ingest::new(store, Metrics::new())),
        Some(stackd::config::PrefixTemplate::parse("SKIP.app.executor").expect("template")),
    )
}

fn bench_statsd(c: &mut Criterion) {
    let datagrams = datagrams();
    let bytes: usize = datagrams.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("statsd");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse_and_split", |b| {
        b.iter(|| {
            for d in &datagrams {
                for line in statsd::parse_datagram(d).flatten() {
                    black_box(jvm::split_name(&line.name));
                    black_box(line.samples().next());
                }
            }
        })
    });
    // The hot path: every stack already seen (one hash, one map read, one atomic add).
    let inputs = inputs();
    for d in &datagrams {
        inputs.statsd_datagram(d, 0);
    }
    g.bench_function("ingest_seen_stacks", |b| {
        b.iter(|| {
            for d in &datagrams {
                inputs.statsd_datagram(d, 1_000);
            }
        })
    });
    g.finish();
}

fn bench_line_protocol(c: &mut Criterion) {
    let body = influx_body();
    let mut g = c.benchmark_group("line_protocol");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("stackd", |b| {
        b.iter(|| {
            for line in influx::parse_body(body.as_bytes()).flatten() {
                black_box(line.measurement());
                for t in line.tags() {
                    black_box(t);
                }
                for f in line.fields() {
                    black_box(f);
                }
            }
        })
    });
    g.bench_function("influxdb_line_protocol_crate", |b| {
        b.iter(|| {
            for line in influxdb_line_protocol::parse_lines(&body).flatten() {
                black_box(line);
            }
        })
    });
    let inputs = inputs();
    inputs.line_protocol(body.as_bytes(), Precision::Nanos, 0);
    g.bench_function("stackd_ingest_seen_stacks", |b| b.iter(|| black_box(inputs.line_protocol(body.as_bytes(), Precision::Nanos, 0))));
    g.finish();
}

/// A large profile document: the fixture's stacks, each with 1,000 different leaves (23,000
/// stacks), as stackd's own `.json` and `.folded` output write it.
fn import_profile() -> stackd::render::Stacks {
    let mut stacks = Vec::new();
    for (frames, count) in fixture_stacks() {
        for leaf in 0..1_000 {
            let mut f: Vec<Arc<str>> = frames.iter().map(|s| Arc::from(s.as_str())).collect();
            f.push(Arc::from(format!("com.example.Generated.leaf{leaf}:12")));
            stacks.push((f, count + leaf));
        }
    }
    stacks
}

/// `POST /import/flink` and `/import/folded` bodies: stackd's checks and flattening against a
/// plain JSON parse of the same bytes (serde_json into a `Value`, no checks) in the same run.
fn bench_import(c: &mut Criterion) {
    let stacks = import_profile();
    let json = stackd::render::json(&stacks);
    let mut g = c.benchmark_group("import");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("flink_json", |b| b.iter(|| black_box(stackd::input::flink::flamegraph::parse(json.as_bytes()).expect("valid"))));
    g.bench_function("serde_json_value", |b| {
        b.iter(|| {
            let mut de = serde_json::Deserializer::from_str(&json);
            de.disable_recursion_limit();
            black_box(<serde_json::Value as serde::Deserialize>::deserialize(&mut de).expect("valid"))
        })
    });
    // Parse and store, as `POST /import/flink` does (the stacks already seen after the first run).
    let ingest = inputs().ingest;
    let source = ingest.source_at(1, 0, 0, || stackd::store::SourceSpec::new("import", Vec::new())).expect("source");
    g.bench_function("flink_json_and_store", |b| {
        b.iter(|| {
            let Ok(stackd::input::flink::flamegraph::Document::Graph { tree, .. }) =
                stackd::input::flink::flamegraph::parse(json.as_bytes())
            else {
                panic!("valid")
            };
            black_box(ingest.add_profile(&source, 0, 0, |sink| tree.each_stack(sink)).expect("stored"))
        })
    });
    let folded = stackd::render::folded(&stacks);
    g.throughput(Throughput::Bytes(folded.len() as u64));
    g.bench_function("folded", |b| b.iter(|| black_box(stackd::input::folded::parse(&folded).expect("valid"))));
    g.finish();
}

/// 50,000 distinct stacks, as `benches/svg_vs_inferno.sh` builds them: each fixture stack under
/// a pair of frames that differs per stack.
fn render_profile() -> stackd::render::Stacks {
    let base = fixture_stacks();
    (0..50_000usize)
        .map(|n| {
            let (frames, count) = &base[n % base.len()];
            let mut f: Vec<Arc<str>> = frames.iter().map(|s| Arc::from(s.as_str())).collect();
            f.insert(1, Arc::from(format!("org.apache.spark.executor.Stage{}.run:{}", n % 97, n % 13)));
            f.insert(2, Arc::from(format!("com.example.Job{n}.call:{}", n % 7)));
            (f, count + (n as u64) % 5)
        })
        .collect()
}

/// Where an SVG's time goes: stackd's whole render (folded text for inferno, then inferno), the
/// folded text alone, and inferno alone on that text (the same palette) in the same run.
fn bench_render(c: &mut Criterion) {
    let stacks = render_profile();
    let mut g = c.benchmark_group("render_50k_stacks");
    g.sample_size(10);
    let titles = stackd::render::Titles::new("svg50k", None);
    g.bench_function("svg", |b| b.iter(|| black_box(stackd::render::svg(&stacks, &titles).expect("renders"))));
    g.bench_function("folded", |b| b.iter(|| black_box(stackd::render::folded(&stacks))));
    let folded = stackd::render::folded(&stacks);
    // The lines as the SVG renderer gets them (these frames hold nothing to replace), and what the
    // cut of frames too narrow to draw leaves of them.
    let lines: Vec<(String, u64)> =
        folded.lines().map(|l| l.rsplit_once(' ').map(|(s, c)| (s.to_string(), c.parse().expect("count"))).expect("folded line")).collect();
    let min_width = inferno::flamegraph::Options::default().min_width;
    let cut = stackd::render::narrow::collapse(lines.clone(), min_width);
    let bytes = |l: &[(String, u64)]| l.iter().map(|(s, _)| s.len() + 8).sum::<usize>();
    eprintln!(
        "render_50k_stacks: inferno is given {} of {} lines, about {} of {} bytes",
        cut.len(),
        lines.len(),
        bytes(&cut),
        bytes(&lines)
    );
    g.bench_function("narrow_collapse", |b| {
        b.iter_batched(|| lines.clone(), |l| black_box(stackd::render::narrow::collapse(l, min_width)), criterion::BatchSize::LargeInput)
    });
    g.bench_function("inferno_from_folded_text", |b| {
        b.iter(|| {
            let mut opts = inferno::flamegraph::Options::default();
            opts.colors = inferno::flamegraph::color::Palette::Multi(inferno::flamegraph::color::MultiPalette::Java);
            opts.hash = true;
            let mut out = Vec::new();
            inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut out).expect("renders");
            black_box(out)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_statsd, bench_line_protocol, bench_import, bench_render);
criterion_main!(benches);
