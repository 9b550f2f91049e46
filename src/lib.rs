//! stackd: statsd for stack traces.
//!
//! JVM profiling agents (statsd-jvm-profiler, Uber jvm-profiler) send stack samples and JVM
//! gauges over statsd (UDP) and InfluxDB line protocol (HTTP). stackd adds the samples up per
//! app in lock-free counters, serves the gauges to Prometheus, and renders flame graphs on
//! request. Every wire format it accepts, and what it does with each, is in
//! `docs/protocols.md`.
//!
//! # Data flow
//!
//! ```text
//!  UDP datagrams ─┐   protocol::*      input::*             ingest        store           ┌─> /metrics
//!  HTTP /write  ──┼─> (pure parse,  ─> (what names mean: ─> (source,   ─> (per app:    ──┼─> /flamegraph/… (SVG,
//!  /api/v2/write ─┘    borrowed)        app, labels,         limits,       buckets ×      │    folded, JSON)
//!                                       stack or gauge)      counting)     labels ×       └─> /apps, /
//!                                                                          stacks; redb)
//! ```
//!
//! # Module map
//!
//! * [`config`]: flags with env twins, defaults as named constants, the `--prefix-labels`
//!   template.
//! * [`protocol`]: pure wire parsers, no meaning: [`protocol::statsd`] (datagrams),
//!   [`protocol::influx`] (line protocol, nom), [`protocol::jfr`] (JFR chunks: metadata,
//!   constant pools, the sample events).
//! * [`input`]: one module per input, each from parsed line to the sink:
//!   [`input::profiler`] (statsd-jvm-profiler over statsd and line protocol), [`input::uber`],
//!   [`input::spark`], [`input::flink`] (Flink's reporters, and its flame graphs polled from the
//!   JobManager: [`input::flink::poller`]), [`input::folded`] (collapsed stacks for
//!   `POST /import/folded`), [`input::jfr`] (JFR samples by profile type, for `POST /import/jfr`)
//!   and [`input::jfr_dir`] (`--jfr-dir`); the registry [`input::Inputs`], and how to add an input.
//! * [`sample`]: the vocabulary every input ends in: stacks (encoded or split frames), their
//!   profile types and units, and gauge readings.
//! * [`ingest`]: the shared sink: sources, limits, outcome counting by wire.
//! * [`outcome`]: every reason a line is refused or ignored, every limit, with its message and
//!   its metric label.
//! * [`cluster`]: scale-out through an object store (`--object-store`, docs/scale-out.md): the
//!   S3 or directory client, segments, the uploader of this node's outbox and the importer of
//!   the other nodes' segments.
//! * [`store`]: per-app aggregation and queries; [`store::disk`] the redb persistence (table
//!   layout, row codecs, one writer and one reader per table). Never imports an input.
//! * [`render`]: folded text, inferno SVG (cut to its frame budget: [`render::narrow`]), d3/Flink
//!   JSON; the URL's render options ([`render::options`]), differential graphs
//!   ([`render::diff`]), and how a search term is matched in the browser
//!   (`src/render/search.js`, used by the SVG's script and the explorer alike).
//! * [`metrics`]: stackd's own metrics, the exported JVM gauges, the Prometheus text.
//! * [`server`]: [`run`] and the running service: UDP threads, flush loop, HTTP connection layer
//!   (cap, timeouts, TLS), authentication, the write API, the import API, the read API and the
//!   explorer (the index, `/app/<app>`, `/apps/<app>/timeline`).
//! * `src/bin/stackd-load.rs`: the package's second binary, a profiler-shaped load generator with
//!   latency probes and store checks (`benches/overload.sh`, `BENCHMARKS.md`).
//! * `invariants` (feature `invariants`): what holds for any input, checked by the fuzz targets
//!   in `fuzz/` and over their kept corpora by `tests/fuzz_corpus.rs`.

pub mod cluster;
pub mod config;
pub mod ingest;
pub mod input;
#[cfg(feature = "invariants")]
pub mod invariants;
pub mod metrics;
pub mod outcome;
pub mod protocol;
pub mod render;
pub mod sample;
pub mod server;
pub mod store;

pub use server::{open_store, run, Listeners};

/// Unix time in milliseconds: stackd's one clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Unix milliseconds as RFC 3339 with milliseconds (`2026-11-22T00:36:26.401Z`), for status
/// documents and messages.
pub fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// Percent-encode everything but RFC 3986's unreserved characters: a name in a link, an id from
/// a JobManager's answer in a request path (it can never change the path or query it is put
/// into).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
