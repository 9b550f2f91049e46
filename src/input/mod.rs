//! Inputs: one module per kind of sender, each owning what its names mean, from the parsed
//! wire line to the [`Ingest`] sink. The wire parsers ([`crate::protocol`]) are shared and know
//! no meaning; an input decides which app and labels a line belongs to and whether it is a
//! stack count or a gauge, and ends in the same vocabulary as every other input: a source
//! ([`Writer::source`]) and stack samples ([`Stack`](crate::sample::Stack), frames root first,
//! encoded or already split) or gauge readings ([`Gauge`](crate::sample::Gauge)).
//!
//! | input | wire | module |
//! |---|---|---|
//! | statsd-jvm-profiler, StatsD reporter | statsd datagrams | [`profiler::statsd`] |
//! | statsd-jvm-profiler, InfluxDB reporter | line protocol (`/write`, `/api/v2/write`) | [`profiler::influx`] |
//! | Uber jvm-profiler `Stacktrace` points | line protocol | [`uber`] |
//! | Spark's `StatsdSink` | statsd datagrams | [`spark`] |
//! | Flink's `InfluxdbReporter` | line protocol | [`flink::influx`] |
//! | Flink's `StatsDReporter` | statsd datagrams | [`flink::statsd`] |
//! | Flink's flame graphs | polled from the JobManager's REST API | [`flink::poller`], [`flink::flamegraph`] |
//! | saved profiles (`POST /import/flink`, `/import/folded`) | HTTP body, one document | [`flink::flamegraph`], [`folded`] |
//! | JFR recordings (`POST /import/jfr`, `--jfr-dir`) | HTTP body or files, one chunk at a time | [`jfr`], [`jfr_dir`] |
//! | Grafana Pyroscope clients (`/ingest`, the Push API) | collapsed stacks, pprof, JFR with labels | [`pyroscope`], [`jfr`] |
//!
//! A statsd line is offered to each statsd input in turn, a line-protocol point to each
//! line-protocol input in turn; the first that claims it handles it, and a line nobody claims
//! is counted as ignored (`unknown_metric`). What each accepts is in `docs/protocols.md`.
//!
//! # Adding an input
//!
//! 1. A new file here (`src/input/<name>.rs`) with a type implementing [`StatsdInput`] or
//!    [`LineInput`]: claim your lines by name, resolve the origin with [`Writer::source`]
//!    (hash your module's name first, then the origin's raw text), hand samples to
//!    [`Writer::add_stack`] / [`Writer::set_gauge`] (an agent's JVM gauges, fixed families) /
//!    [`Writer::set_series`] (an engine's own metrics, families named by the sender), and return
//!    an [`Outcome`] per line. The [`Writer`] is one run (a body, a batch of datagrams): it
//!    resolves each origin once and writes totals once.
//! 2. One registration line in [`Inputs::new`] (and, if it exports gauges, one in [`family`]).
//! 3. For a new HTTP route: one line in `server::http::router` and a handler in
//!    `server/http/write.rs` that passes the body to your input.
//! 4. Its wire format and behaviour in `docs/protocols.md`; tests with real senders in `tests/`.
//!
//! Nothing in `store`, `render` or `metrics` changes.

pub mod flink;
pub mod folded;
pub mod jfr;
pub mod jfr_dir;
pub mod line_protocol;
pub mod profiler;
pub mod pyroscope;
pub mod spark;
pub mod uber;

use std::sync::Arc;

use crate::config::PrefixTemplate;
use crate::ingest::{Ingest, Tally, Writer};
use crate::outcome::{Ignored, Outcome};
use crate::protocol::{influx, statsd};
use crate::sample::{FamilyKind, GaugeFamily};

pub use line_protocol::{Precision, WriteOutcome};

/// An input whose lines arrive as statsd datagrams.
pub trait StatsdInput: Send + Sync + std::fmt::Debug {
    /// Handle one line, counting an outcome per sample ([`Writer::count`]); `false` when the
    /// line's name is not this input's (then the next input is asked).
    fn line(&self, w: &mut Writer<'_>, line: &statsd::Line<'_>, now_ms: i64) -> bool;
}

/// An input whose points arrive as InfluxDB line protocol.
pub trait LineInput: Send + Sync + std::fmt::Debug {
    /// Handle one point stamped `time_ms` (its own timestamp, or arrival); `None` when the
    /// measurement is not this input's (then the next input is asked).
    fn point(&self, w: &mut Writer<'_>, point: &influx::Line<'_>, time_ms: i64, now_ms: i64) -> Option<Outcome>;
}

/// Every input, by wire, in the order they are asked.
#[derive(Debug)]
pub struct Inputs {
    pub ingest: Arc<Ingest>,
    statsd: Vec<Box<dyn StatsdInput>>,
    line_protocol: Vec<Box<dyn LineInput>>,
    statsd_tally: Tally,
    influx_tally: Tally,
}

impl Inputs {
    /// The registry. `prefix_labels` is `--prefix-labels`, the template that splits agent
    /// prefixes into an app and labels.
    pub fn new(ingest: Arc<Ingest>, prefix_labels: Option<PrefixTemplate>) -> Self {
        let prefixes = Arc::new(profiler::Prefixes::new(prefix_labels));
        let statsd: Vec<Box<dyn StatsdInput>> = vec![
            Box::new(spark::Input::default()),
            Box::new(profiler::statsd::Input(Arc::clone(&prefixes))),
            Box::new(flink::statsd::Input),
        ];
        let line_protocol: Vec<Box<dyn LineInput>> =
            vec![Box::new(uber::Input), Box::new(flink::influx::Input), Box::new(profiler::influx::Input(prefixes))];
        let (statsd_tally, influx_tally) = (ingest.tally("statsd"), ingest.tally("influx"));
        Inputs { ingest, statsd, line_protocol, statsd_tally, influx_tally }
    }

    /// A run of writes for statsd datagrams (one batch of them), their lines counted under the
    /// statsd tally.
    pub fn statsd_writer(&self) -> Writer<'_> {
        self.ingest.writer(Some(&self.statsd_tally))
    }

    /// One statsd datagram, received at `now_ms`, in a run of its own.
    pub fn statsd_datagram(&self, datagram: &[u8], now_ms: i64) {
        self.statsd_into(&mut self.statsd_writer(), datagram, now_ms);
    }

    /// One statsd datagram, received at `now_ms`, in the run `w`: each line to the first input
    /// that claims it.
    pub fn statsd_into(&self, w: &mut Writer<'_>, datagram: &[u8], now_ms: i64) {
        for line in statsd::parse_datagram(datagram) {
            match line {
                Err(e) => w.rejected(e.reason()),
                Ok(line) => {
                    if !self.statsd.iter().any(|input| input.line(w, &line, now_ms)) {
                        w.count(Outcome::Ignored(Ignored::UnknownMetric));
                    }
                }
            }
        }
    }

    /// The outcomes of statsd lines (for what happens outside an input, such as a panic).
    pub fn statsd_tally(&self) -> &Tally {
        &self.statsd_tally
    }
}

/// The gauge family with this name and kind, among every input's (how the store finds a
/// stored gauge's family again).
pub fn family(name: &str, kind: FamilyKind) -> Option<&'static GaugeFamily> {
    profiler::names::family(name, kind)
}
