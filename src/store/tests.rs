//! The store's unit tests: aggregation, limits, queries, and a real redb file in a temp dir.

use super::*;
use crate::sample::{FamilyKind, GaugeFamily};

fn split_frames(s: &str, sink: &mut dyn FnMut(&str)) {
    s.split(';').for_each(sink);
}

static SEMICOLONS: crate::sample::Encoding = crate::sample::Encoding { id: 9, decode: split_frames };

fn raw(text: &str) -> Stack<'_> {
    Stack::Encoded { encoding: &SEMICOLONS, text }
}

fn store(max_apps: usize, max_stacks: usize) -> Store {
    Store::new(Limits { max_apps, max_stacks_per_app: max_stacks, ..Limits::default() }, Duration::from_secs(60))
}

fn spec(app: &str, labels: &[(&str, &str)]) -> SourceSpec {
    SourceSpec::new(app, labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// `(frames joined by ;, count)` per stack, sorted.
fn folded(store: &Store, app: &str, q: &Query) -> Vec<(String, u64)> {
    let profile = store.query(&store.app(app).expect("app"), q).expect("readable").expect("labels match");
    let mut lines: Vec<(String, u64)> = store.resolve(&profile).into_iter().map(|(frames, c)| (frames.join(";"), c)).collect();
    lines.sort();
    lines
}

fn add(s: &Store, src: &Arc<Source>, text: &str, n: u64, t: i64) -> Stored {
    s.add_stack_now(src, &raw(text), n, t, t).expect("in range")
}

#[test]
fn counts_add_up_and_decode_once() {
    let s = store(10, 10);
    let src = s.source(1, || spec("app", &[("executor", "1")])).expect("source");
    assert_eq!(add(&s, &src, "a;b", 3, 1_000), Stored::Stack);
    assert_eq!(add(&s, &src, "a;b", 2, 2_000), Stored::Stack);
    add(&s, &src, "a;c", 1, 2_000);
    assert_eq!(folded(&s, "app", &Query::default()), [("a;b".to_string(), 5), ("a;c".to_string(), 1)]);
    let app = s.app("app").expect("app");
    assert_eq!((app.total_samples(), app.unique_stacks()), (6, 2));
    let values = app.label_values();
    assert_eq!(values["executor"]["1"], ValueStats { samples: 6, first_seen_ms: 1_000, last_seen_ms: 2_000 });
}

#[test]
fn origin_is_resolved_once() {
    let s = store(10, 10);
    s.source(7, || spec("a", &[])).expect("first");
    let again = s.source(7, || panic!("resolved twice")).expect("cached");
    assert_eq!(&*again.app.name, "a");
}

#[test]
fn limits_are_enforced() {
    let s = store(1, 2);
    let src = s.source(1, || spec("a", &[])).expect("first app");
    assert_eq!(s.source(2, || spec("b", &[])).map(|_| ()), Err(Reject::AppLimit));
    add(&s, &src, "x", 1, 0);
    add(&s, &src, "y", 1, 0);
    assert_eq!(add(&s, &src, "z", 4, 0), Stored::Overflow);
    assert_eq!(add(&s, &src, "w", 1, 0), Stored::Overflow);
    assert_eq!(add(&s, &src, "x", 1, 0), Stored::Stack);
    assert_eq!(
        folded(&s, "a", &Query::default()),
        [("[stackd: unique stack limit reached]".to_string(), 5), ("x".to_string(), 2), ("y".to_string(), 1)]
    );
}

#[test]
fn queries_filter_by_time_and_labels() {
    let s = store(10, 10);
    let e1 = s.source(1, || spec("a", &[("executor", "1")])).expect("e1");
    let e2 = s.source(2, || spec("a", &[("executor", "2")])).expect("e2");
    add(&s, &e1, "m", 1, 0);
    add(&s, &e1, "m", 10, 60_000);
    add(&s, &e2, "m", 100, 120_000);
    let q = |from, to, labels: &[(&str, &str)]| Query {
        from_ms: from,
        to_ms: to,
        labels: labels.iter().map(|(k, v)| Matcher::equal(*k, *v)).collect(),
        ..Query::default()
    };
    assert_eq!(folded(&s, "a", &q(None, None, &[])), [("m".to_string(), 111)]);
    assert_eq!(folded(&s, "a", &q(Some(60_000), None, &[])), [("m".to_string(), 110)]);
    assert_eq!(folded(&s, "a", &q(None, Some(60_000), &[])), [("m".to_string(), 1)]);
    assert_eq!(folded(&s, "a", &q(None, None, &[("executor", "1")])), [("m".to_string(), 11)]);
    assert!(s.query(&s.app("a").expect("a"), &q(None, None, &[("executor", "9")])).expect("readable").is_none());
}

#[test]
fn matchers_take_several_values_and_negation() {
    let s = store(10, 10);
    for (id, e) in [(1, "1"), (2, "2"), (3, "3")] {
        let src = s.source(id, || spec("a", &[("executor", e)])).expect("source");
        add(&s, &src, "m", 10u64.pow(id as u32 - 1), 0);
    }
    let driver = s.source(4, || spec("a", &[("role", "driver")])).expect("driver");
    add(&s, &driver, "m", 1000, 0);
    let total = |matchers: Vec<Matcher>| {
        let q = Query { labels: matchers, ..Query::default() };
        s.query(&s.app("a").expect("a"), &q).expect("readable").map_or(0, |p| p.total)
    };
    assert_eq!(total(vec![Matcher::parse("executor", "1,3", false)]), 101);
    assert_eq!(total(vec![Matcher::parse("executor", "1", true)]), 1110, "sets without the label meet a negation");
    assert_eq!(total(vec![Matcher::parse("executor", "1,3", true)]), 1010);
    assert_eq!(total(vec![Matcher::parse("executor", "2", false), Matcher::parse("executor", "2,3", false)]), 10);
    assert_eq!(total(vec![Matcher::parse("role", "driver", true), Matcher::parse("executor", "3", true)]), 11);
    assert_eq!(Matcher::parse("executor", "1,3", true).describe(), "executor!=1|3");
}

#[test]
fn time_limits() {
    let config = StoreConfig {
        retention: Duration::from_secs(3600),
        max_future: Duration::from_secs(600),
        ..StoreConfig::in_memory(Limits { max_apps: 1, max_stacks_per_app: 10, ..Limits::default() }, Duration::from_secs(60))
    };
    let s = Store::open(config, 0).expect("open");
    let src = s.source(1, || spec("a", &[])).expect("src");
    let now = 10_000_000;
    assert_eq!(s.add_stack_now(&src, &raw("x"), 1, now - 3_600_001, now), Err(Reject::TooOld));
    assert_eq!(s.add_stack_now(&src, &raw("x"), 1, now + 600_001, now), Err(Reject::InFuture));
    assert_eq!(s.add_stack_now(&src, &raw("x"), 1, now - 3_600_000, now), Ok(Stored::Stack));
}

static G: GaugeFamily = GaugeFamily { name: "g", help: "h", kind: FamilyKind::Gauge, label: None };

#[test]
fn gauges_set_and_relative() {
    let s = store(10, 10);
    let src = s.source(1, || spec("a", &[])).expect("src");
    let g = |value, relative| Gauge { family: &G, label_value: "", value, relative };
    s.set_gauge(&src, &g(0.0, false), 1).expect("set");
    s.set_gauge(&src, &g(-1.0, true), 2).expect("set");
    let readings = s.app("a").expect("a").gauges();
    assert_eq!(readings.len(), 1);
    assert_eq!((readings[0].value, readings[0].updated_ms), (-1.0, 2));
    s.set_gauge(&src, &g(5.0, false), 3).expect("set");
    assert_eq!(s.app("a").expect("a").gauges()[0].value, 5.0);
}

/// A data dir of its own for one test, empty at the start and removed at the end (also when the
/// test fails).
struct TestDir(std::path::PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stackd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

fn on_disk(dir: &std::path::Path, window: Duration) -> Store {
    let config = StoreConfig {
        data_dir: Some(dir.to_path_buf()),
        memory_window: window,
        retention: Duration::from_secs(7 * 86_400),
        max_future: Duration::from_secs(600),
        family: |name, kind| (name == "g" && kind == FamilyKind::Gauge).then_some(&G),
        ..StoreConfig::in_memory(Limits { max_apps: 10, max_stacks_per_app: 100, ..Limits::default() }, Duration::from_secs(60))
    };
    Store::open(config, 100 * 60_000).expect("open")
}

#[test]
fn flush_evict_reload_and_restart() {
    let dir = TestDir::new("flush");
    let now = 100 * 60_000;
    {
        let s = on_disk(&dir, Duration::from_secs(120));
        let src = s.source(1, || spec("a", &[("executor", "1")])).expect("src");
        for minute in 90..=100 {
            s.add_stack_now(&src, &raw("r;x"), 1, minute * 60_000, now).expect("ok");
        }
        s.set_gauge(&src, &Gauge { family: &G, label_value: "", value: 7.0, relative: false }, now).expect("set");
        let stats = s.flush(now).expect("flush");
        assert_eq!(stats.buckets, 11);
        assert_eq!(stats.evicted, 7, "minutes 90..=96 leave memory (the window, plus one bucket of margin, stays)");
        // A late sample for an evicted minute reloads it; nothing is lost.
        s.add_stack_now(&src, &raw("r;x"), 5, 91 * 60_000, now).expect("ok");
        s.add_stack_now(&src, &raw("r;y"), 2, 95 * 60_000, now).expect("ok");
        let q = Query { from_ms: Some(90 * 60_000), to_ms: Some(92 * 60_000), labels: vec![], ..Default::default() };
        assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 7)]);
        assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 16), ("r;y".to_string(), 2)]);
        s.flush(now).expect("flush");
    }
    let s = on_disk(&dir, Duration::from_secs(120));
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 16), ("r;y".to_string(), 2)]);
    let q = Query { from_ms: Some(95 * 60_000), to_ms: Some(96 * 60_000), labels: vec![], ..Default::default() };
    assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 1), ("r;y".to_string(), 2)]);
    let app = s.app("a").expect("a");
    assert_eq!(app.total_samples(), 18);
    assert_eq!(app.gauges()[0].value, 7.0);
    // The current minute is on disk: new samples add to it rather than replace it.
    let src = s.source(1, || spec("a", &[("executor", "1")])).expect("src");
    s.add_stack_now(&src, &raw("r;x"), 1, now, now).expect("ok");
    s.flush(now).expect("flush");
    drop(s);
    let s = on_disk(&dir, Duration::from_secs(120));
    let q = Query { from_ms: Some(now), to_ms: None, labels: vec![], ..Default::default() };
    assert_eq!(folded(&s, "a", &q), [("r;x".to_string(), 2)]);
}

#[test]
fn flushes_write_only_what_changed() {
    let dir = TestDir::new("dirty");
    let now = 100 * 60_000;
    {
        let s = on_disk(&dir, Duration::from_secs(3600));
        for e in 0..50 {
            let src = s.source(e, || spec("a", &[("executor", &e.to_string())])).expect("src");
            s.add_stack_now(&src, &raw("r;x"), 1, now, now).expect("ok");
            s.set_gauge(&src, &Gauge { family: &G, label_value: "", value: e as f64, relative: false }, now).expect("set");
        }
        let first = s.flush(now).expect("flush");
        assert_eq!((first.buckets, first.rows), (1, 1 + 1 + 50 + 50 + 2), "app, stack, label sets, gauges, frames");
        assert_eq!(s.flush(now).expect("flush"), FlushStats::default(), "nothing changed, nothing written");
        let src = s.source(3, || unreachable!()).expect("cached");
        s.add_stack_now(&src, &raw("r;x"), 1, now, now).expect("ok");
        let third = s.flush(now).expect("flush");
        assert_eq!((third.buckets, third.rows), (1, 1), "the bucket (whole) and one label set");
    }
    let s = on_disk(&dir, Duration::from_secs(3600));
    assert_eq!(s.flush(now).expect("flush"), FlushStats::default(), "a restart writes nothing");
}

#[test]
fn many_label_sets_are_found_by_index() {
    let s = store(10, 10);
    for e in 0..30_000u64 {
        let src = s.source(e, || spec("a", &[("executor", &e.to_string()), ("host", "h")])).expect("src");
        s.add_stack_now(&src, &raw("x"), e + 1, 0, 0).expect("ok");
    }
    let app = s.app("a").expect("a");
    let values = app.label_values();
    assert_eq!(values["executor"].len(), 10_000 + 1, "the default cap, plus the overflow value");
    assert_eq!(values["executor"]["29"].samples, 30);
    let overflow: u64 = (10_000..30_000u64).map(|e| e + 1).sum();
    assert_eq!(values["executor"][OVERFLOW_LABEL_VALUE].samples, overflow);
    assert_eq!(app.total_samples(), (1..=30_000u64).sum::<u64>());
    // Resolving a known label set again finds the same id.
    let again = app.labelset(vec![("host".into(), "h".into()), ("executor".into(), "29".into())]);
    assert_eq!((again.0, again.2), (29, false));
}

#[test]
fn label_sets_are_capped_whatever_the_label_names() {
    let limits = Limits { max_apps: 1, max_stacks_per_app: 10, max_label_values: 10, max_series_per_app: 3, ..Limits::default() };
    let s = Store::new(limits, Duration::from_secs(60));
    for n in 0..6u64 {
        let src = s.source(n, || spec("a", &[(&format!("tag{n}"), "v")])).expect("src");
        assert_eq!(src.label_overflow, n >= 3, "{n}");
        s.add_stack_now(&src, &raw("x"), 1, 0, 0).expect("ok");
    }
    let values = s.app("a").expect("a").label_values();
    assert_eq!(values.keys().collect::<Vec<_>>(), ["stackd_overflow", "tag0", "tag1", "tag2"]);
    assert_eq!(values[OVERFLOW_LABEL][OVERFLOW_LABEL_VALUE].samples, 3);
}

#[test]
fn totals_saturate_instead_of_wrapping() {
    let s = store(10, 10);
    let src = s.source(1, || spec("a", &[])).expect("src");
    add(&s, &src, "x", u64::MAX - 1, 0);
    add(&s, &src, "x", 5, 0);
    assert_eq!(s.app("a").expect("a").total_samples(), u64::MAX);
    assert_eq!(folded(&s, "a", &Query::default()), [("x".to_string(), u64::MAX)]);
}

#[test]
fn a_query_that_cannot_read_a_stored_bucket_fails_instead_of_returning_less() {
    let dir = TestDir::new("unreadable");
    let now = 100 * 60_000;
    let s = on_disk(&dir, Duration::from_secs(120));
    let src = s.source(1, || spec("a", &[])).expect("src");
    for minute in 0..60 {
        s.add_stack_now(&src, &raw(&format!("r;x{minute}")), 1, (40 + minute) * 60_000, now).expect("ok");
    }
    s.flush(now).expect("flush");
    // Everything but the newest minutes is on disk only. The state a failed reopen (after an I/O
    // error) leaves: no database to read.
    s.disk.as_ref().expect("on disk").close();
    let app = s.app("a").expect("a");
    let result = s.query(&app, &Query::default());
    assert!(matches!(result, Err(StoreError::Unavailable)), "{result:?}");
    // What is in memory alone is still answered, when that is all that was asked for.
    let q = Query { from_ms: Some(now - 60_000), to_ms: None, labels: vec![], ..Default::default() };
    assert_eq!(s.query(&app, &q).expect("resident only").map(|p| p.total), Some(1));
    // A sample for a bucket that is only on disk is refused rather than started afresh.
    assert_eq!(s.add_stack_now(&src, &raw("r;x0"), 1, 40 * 60_000, now), Err(Reject::StoreUnavailable));
}

/// Engine series: values replace, the series limit counts gauges and series together, they
/// survive a restart, and expired ones are deleted from memory and disk.
#[test]
fn engine_series_persist_and_expire() {
    use crate::sample::{Origin, Series, SeriesKind};
    use std::borrow::Cow;
    let dir = TestDir::new("series");
    let series = |family: &'static str, executor: &'static str, value| Series {
        origin: Origin::Spark,
        family,
        kind: SeriesKind::Counter,
        suffix: "",
        labels: vec![(Cow::Borrowed("executor"), Cow::Borrowed(executor))],
        value,
    };
    {
        let s = on_disk(&dir, Duration::from_secs(3600));
        let src = s.source(1, || spec("app-1", &[])).expect("src");
        s.set_series(&src, &series("spark_x_total", "1", 10.0), 1_000).expect("set");
        s.set_series(&src, &series("spark_x_total", "1", 4.0), 2_000).expect("set"); // a reset
        s.set_series(&src, &series("spark_x_total", "2", 7.0), 1_000).expect("set");
        s.flush(100 * 60_000).expect("flush");
    }
    let s = on_disk(&dir, Duration::from_secs(3600));
    let mut got: Vec<(String, f64, i64)> =
        s.app("app-1").expect("loaded").series().into_iter().map(|r| (r.labels[0].1.clone(), r.value, r.updated_ms)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [("1".to_string(), 4.0, 2_000), ("2".to_string(), 7.0, 1_000)]);
    // Executor 2 went silent: expired, and its row deleted.
    assert_eq!(s.expire_series(1_500), 1);
    let stats = s.flush(100 * 60_000).expect("flush");
    assert_eq!(stats.deleted, 1);
    drop(s);
    let s = on_disk(&dir, Duration::from_secs(3600));
    assert_eq!(s.app("app-1").expect("loaded").series().len(), 1);
}

#[test]
fn the_series_limit_counts_gauges_and_engine_series() {
    use crate::sample::{Origin, Series, SeriesKind};
    let s = Store::new(Limits { max_series_per_app: 2, ..Limits::default() }, Duration::from_secs(60));
    let src = s.source(1, || spec("a", &[])).expect("src");
    s.set_gauge(&src, &Gauge { family: &G, label_value: "", value: 1.0, relative: false }, 1).expect("first");
    let one = |family| Series { origin: Origin::Flink, family, kind: SeriesKind::Gauge, suffix: "", labels: vec![], value: 1.0 };
    s.set_series(&src, &one("flink_a"), 1).expect("second");
    assert_eq!(s.set_series(&src, &one("flink_b"), 1), Err(Reject::SeriesLimit));
    s.set_series(&src, &one("flink_a"), 2).expect("an existing series is updated");
}

#[test]
fn timeline_per_step_and_label_from_memory_and_disk() {
    let dir = TestDir::new("timeline");
    let now = 100 * 60_000;
    let s = on_disk(&dir, Duration::from_secs(120));
    let one = s.source(1, || spec("a", &[("executor", "1")])).expect("src");
    let two = s.source(2, || spec("a", &[("executor", "2")])).expect("src");
    let none = s.source(3, || spec("a", &[("host", "h")])).expect("src");
    for minute in 90..=100 {
        s.add_stack_now(&one, &raw("r;x"), minute as u64 - 89, minute * 60_000, now).expect("ok");
    }
    s.add_stack_now(&two, &raw("r;y"), 50, 91 * 60_000 + 5, now).expect("ok");
    s.add_stack_now(&none, &raw("r;z"), 7, 100 * 60_000, now).expect("ok");
    // Minutes 90..=96 leave memory: the timeline reads them from disk.
    assert_eq!(s.flush(now).expect("flush").evicted, 7);
    let app = s.app("a").expect("a");
    let all = s.timeline(&app, &Query::default(), None, 60_000).expect("readable").expect("matches");
    assert_eq!((all.bucket_ms, all.step_ms, all.series.len()), (60_000, 60_000, 1));
    assert_eq!(all.series[0].value, None);
    assert_eq!(all.series[0].total, 66 + 50 + 7);
    assert_eq!(all.series[0].points[..3], [(90 * 60_000, 1), (91 * 60_000, 52), (92 * 60_000, 3)]);
    assert_eq!(all.series[0].points.last(), Some(&(100 * 60_000, 11 + 7)));
    // Per executor, two-minute steps (a step is rounded down to whole buckets), a time range.
    let q = Query { from_ms: Some(91 * 60_000), to_ms: Some(95 * 60_000), labels: vec![], ..Default::default() };
    let by = s.timeline(&app, &q, Some("executor"), 150_000).expect("readable").expect("matches");
    assert_eq!(by.step_ms, 120_000);
    type Line = (Option<String>, u64, Vec<(i64, u64)>);
    let got: Vec<Line> = by.series.into_iter().map(|s| (s.value, s.total, s.points)).collect();
    assert_eq!(
        got,
        [
            (Some("2".into()), 50, vec![(90 * 60_000, 50)]),
            (Some("1".into()), 2 + 3 + 4 + 5, vec![(90 * 60_000, 2), (92 * 60_000, 3 + 4), (94 * 60_000, 5)]),
        ],
        "largest total first"
    );
    // Label filters select as in queries; no match is None.
    let q = Query { labels: vec![Matcher::equal("host", "h")], ..Query::default() };
    let h = s.timeline(&app, &q, Some("executor"), 60_000).expect("readable").expect("matches");
    assert_eq!((h.series.len(), h.series[0].value.as_deref(), h.series[0].total), (1, Some(""), 7));
    let q = Query { labels: vec![Matcher::equal("executor", "9")], ..Query::default() };
    assert!(s.timeline(&app, &q, None, 60_000).expect("readable").is_none());
    drop(s);
}

#[test]
fn a_run_puts_counts_in_their_buckets_at_once_and_totals_at_its_end() {
    let s = store(10, 100);
    let mut w = Writes::default();
    let spec_a = || spec("a", &[("executor", "1")]);
    let first = w.resolve(&s, 7, spec_a).expect("resolved");
    assert_eq!(w.resolve(&s, 7, || unreachable!("resolved once per run")), Ok(first));
    let other = w.resolve(&s, 8, || spec("a", &[("executor", "2")])).expect("resolved");
    assert_ne!(first, other);
    s.add_stack(&mut w, first, &raw("r;x"), 3, 60_000, 60_000).expect("ok");
    s.add_stack(&mut w, other, &raw("r;x"), 2, 61_000, 61_000).expect("ok");
    s.add_stack(&mut w, first, &raw("r;y"), 1, 125_000, 125_000).expect("ok, another bucket");
    let app = s.app("a").expect("a");
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 5), ("r;y".to_string(), 1)]);
    assert_eq!((app.total_samples(), app.generation()), (0, (0, 0)), "totals wait for the end of the run");
    drop(w);
    assert_eq!(app.total_samples(), 6);
    assert_eq!(app.generation(), (6, 0));
    let values = app.label_values();
    let executors = &values["executor"];
    assert_eq!((executors["1"].samples, executors["1"].first_seen_ms, executors["1"].last_seen_ms), (4, 60_000, 125_000));
    assert_eq!((executors["2"].samples, executors["2"].first_seen_ms, executors["2"].last_seen_ms), (2, 61_000, 61_000));
    assert_eq!(app.info().last_seen_ms, 125_000);
}

#[test]
fn a_run_of_many_origins_writes_its_totals_in_rounds() {
    let s = store(10, 100);
    let mut w = Writes::default();
    let first = w.resolve(&s, 0, || spec("a", &[("executor", "0")])).expect("resolved");
    s.add_stack(&mut w, first, &raw("r;x"), 1, 0, 0).expect("ok");
    for e in 1..=1024u64 {
        let id = w.resolve(&s, e, || spec("a", &[("executor", &e.to_string())])).expect("resolved");
        s.add_stack(&mut w, id, &raw("r;x"), 1, 0, 0).expect("ok");
    }
    // The 1025th origin began a second round: the first round's 1024 samples are in the totals.
    assert_eq!(s.app("a").expect("a").total_samples(), 1024);
    let stale = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.source(first).app.name.to_string()));
    assert!(stale.is_err(), "an id of an earlier round is refused, not read as another source");
    drop(w);
    assert_eq!(s.app("a").expect("a").total_samples(), 1025);
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 1025)]);
}

#[test]
fn eviction_waits_for_the_run_that_holds_the_bucket() {
    let dir = TestDir::new("run-evict");
    let now = 100 * 60_000;
    let s = Arc::new(on_disk(&dir, Duration::from_secs(120)));
    let mut w = Writes::default();
    let id = w.resolve(&s, 1, || spec("a", &[])).expect("resolved");
    // Minute 90 is outside the memory window: the next flush evicts it.
    s.add_stack(&mut w, id, &raw("r;x"), 1, 90 * 60_000, now).expect("ok");
    let (done, flushed) = std::sync::mpsc::channel();
    let flusher = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || done.send(s.flush(now).expect("flush")).expect("send"))
    };
    assert!(flushed.recv_timeout(Duration::from_millis(300)).is_err(), "the flush waits while the run holds minute 90");
    // The run's next line sees the seal, leaves the bucket (the flush goes on) and waits for the
    // eviction to read the bucket back.
    s.add_stack(&mut w, id, &raw("r;x"), 2, 90 * 60_000, now).expect("reloaded");
    let stats = flushed.recv_timeout(Duration::from_secs(10)).expect("the flush goes on once the run leaves");
    flusher.join().expect("flusher");
    assert_eq!(stats.evicted, 1);
    drop(w);
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 3)]);
    assert_eq!(s.flush(now).expect("flush").evicted, 1, "the reloaded minute leaves again, its 3 samples written");
    // A new run finds the bucket on disk only, reloads it and adds to it.
    let mut w = Writes::default();
    let id = w.resolve(&s, 1, || unreachable!("cached by the store")).expect("resolved");
    s.add_stack(&mut w, id, &raw("r;x"), 4, 90 * 60_000, now).expect("reloaded");
    drop(w);
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 7)]);
}

#[test]
fn counts_added_from_several_threads_are_summed_once_per_key() {
    let counts = Arc::new(app::Counts::default());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || {
                counts.add((1, 2), 3);
                counts.add((0, 9), 1);
                counts.add((1, 0), 0);
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("thread"));
    counts.add((0, 9), 1);
    assert_eq!(counts.sorted(), [(0, 9, 5), (1, 2, 12)], "lanes merged, each key once, zero counts left out");
    let mut each = 0;
    counts.each(|_, c| each += c);
    assert_eq!(each, 17);
}

fn typed(app: &str, labels: &[(&str, &str)], profile: ProfileType) -> SourceSpec {
    SourceSpec { profile, ..spec(app, labels) }
}

#[test]
fn profile_types_are_never_summed() {
    let s = store(10, 10);
    let cpu = s.source(1, || spec("a", &[("executor", "1")])).expect("cpu");
    let bytes = s.source(2, || typed("a", &[("executor", "1")], ProfileType::AllocBytes)).expect("bytes");
    let wall = s.source(3, || typed("a", &[("executor", "2")], ProfileType::Wall)).expect("wall");
    add(&s, &cpu, "m;f", 3, 1_000);
    add(&s, &bytes, "m;f", 4096, 1_000);
    add(&s, &bytes, "m;g", 100, 1_000);
    add(&s, &wall, "m;f", 7, 1_000);
    let q = |profile, labels: &[(&str, &str)]| Query {
        profile,
        labels: labels.iter().map(|(k, v)| Matcher::equal(*k, *v)).collect(),
        ..Query::default()
    };
    assert_eq!(folded(&s, "a", &q(ProfileType::Cpu, &[])), [("m;f".to_string(), 3)]);
    assert_eq!(folded(&s, "a", &q(ProfileType::AllocBytes, &[])), [("m;f".to_string(), 4096), ("m;g".to_string(), 100)]);
    assert_eq!(folded(&s, "a", &q(ProfileType::Wall, &[("executor", "2")])), [("m;f".to_string(), 7)]);
    let app = s.app("a").expect("a");
    assert!(s.query(&app, &q(ProfileType::Wall, &[("executor", "1")])).expect("readable").is_none(), "executor 1 has no wall samples");
    let info = app.info();
    let types: Vec<(ProfileType, crate::sample::Unit, u64)> = info.types.iter().map(|t| (t.profile, t.unit, t.total)).collect();
    assert_eq!(
        types,
        [
            (ProfileType::Cpu, crate::sample::Unit::Samples, 3),
            (ProfileType::Wall, crate::sample::Unit::Samples, 7),
            (ProfileType::AllocBytes, crate::sample::Unit::Bytes, 4196)
        ]
    );
    assert_eq!((info.default_type, info.total_samples), (ProfileType::Cpu, 3));
    // The type is no label: listings never show it, and `executor=1` counts all its types.
    assert_eq!(info.labels.keys().collect::<Vec<_>>(), ["executor"]);
    assert_eq!(info.labels["executor"]["1"].samples, 3 + 4196);
    // Without cpu, the first type is the default.
    let only = s.source(4, || typed("b", &[], ProfileType::LockNs)).expect("lock");
    add(&s, &only, "x", 5, 1_000);
    assert_eq!(s.app("b").expect("b").default_type(), ProfileType::LockNs);
}

#[test]
fn label_set_overflow_keeps_the_profile_type() {
    let limits = Limits { max_apps: 1, max_stacks_per_app: 10, max_label_values: 10, max_series_per_app: 1, ..Limits::default() };
    let s = Store::new(limits, Duration::from_secs(60));
    let first = s.source(1, || spec("a", &[("executor", "1")])).expect("first");
    let cpu = s.source(2, || spec("a", &[("executor", "2")])).expect("cpu over");
    let bytes = s.source(3, || typed("a", &[("executor", "3")], ProfileType::AllocBytes)).expect("bytes over");
    assert!(!first.label_overflow && cpu.label_overflow && bytes.label_overflow);
    add(&s, &first, "x", 1, 0);
    add(&s, &cpu, "x", 2, 0);
    add(&s, &bytes, "x", 1000, 0);
    let bytes_q = Query { profile: ProfileType::AllocBytes, ..Query::default() };
    assert_eq!(folded(&s, "a", &Query::default()), [("x".to_string(), 3)]);
    assert_eq!(folded(&s, "a", &bytes_q), [("x".to_string(), 1000)]);
}

#[test]
fn flink_graph_types_of_old_stores_become_profile_types() {
    let l = |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let flink = |t: &str| l(&[("job_id", "j"), ("subtask", "1"), ("type", t), ("vertex", "v")]);
    assert_eq!(disk::typed(flink("on_cpu")), l(&[("job_id", "j"), ("subtask", "1"), ("vertex", "v")]));
    assert_eq!(disk::typed(flink("off_cpu")), l(&[("__type__", "off_cpu"), ("job_id", "j"), ("subtask", "1"), ("vertex", "v")]));
    assert_eq!(disk::typed(flink("full")), l(&[("__type__", "wall"), ("job_id", "j"), ("subtask", "1"), ("vertex", "v")]));
    // Anyone else's `type` label is a label.
    for other in [l(&[("type", "on_cpu")]), l(&[("job_id", "j"), ("type", "batch"), ("vertex", "v")])] {
        assert_eq!(disk::typed(other.clone()), other);
    }
}

#[test]
fn profile_types_survive_a_restart() {
    let dir = TestDir::new("types");
    let now = 100 * 60_000;
    {
        let s = on_disk(&dir, Duration::from_secs(120));
        let src = s.source(1, || typed("a", &[("executor", "1")], ProfileType::LockNs)).expect("src");
        s.add_stack_now(&src, &raw("r;x"), 1_500_000, now, now).expect("ok");
        s.flush(now).expect("flush");
    }
    let s = on_disk(&dir, Duration::from_secs(120));
    let app = s.app("a").expect("a");
    assert_eq!(app.default_type(), ProfileType::LockNs);
    assert_eq!(folded(&s, "a", &Query { profile: ProfileType::LockNs, ..Query::default() }), [("r;x".to_string(), 1_500_000)]);
    assert!(folded_or_none(&s, "a", &Query::default()).is_empty(), "no cpu samples");
}

fn folded_or_none(store: &Store, app: &str, q: &Query) -> Vec<(String, u64)> {
    match store.query(&store.app(app).expect("app"), q).expect("readable") {
        Some(p) => store.resolve(&p).into_iter().map(|(f, c)| (f.join(";"), c)).collect(),
        None => Vec::new(),
    }
}

#[test]
fn a_shared_sampling_period_makes_samples_time() {
    let s = store(10, 10);
    let at = |app: &str, n: u64, period: Option<u64>| {
        let src = s.source(n, || SourceSpec { period_ns: period, ..spec(app, &[("executor", &n.to_string())]) }).expect("src");
        add(&s, &src, "m;f", 100, 1_000);
    };
    at("a", 1, Some(10_000_000));
    at("a", 2, Some(10_000_000));
    at("b", 3, Some(10_000_000));
    at("b", 4, Some(20_000_000));
    at("b", 5, None);
    let a = s.app("a").expect("a");
    assert_eq!(a.types()[0].time_ns, Some(200 * 10_000_000));
    assert_eq!(s.query(&a, &Query::default()).expect("readable").expect("some").period_ns, Some(10_000_000));
    let b = s.app("b").expect("b");
    assert_eq!(b.types()[0].time_ns, None, "one label set's period is unknown");
    assert_eq!(s.query(&b, &Query::default()).expect("readable").expect("some").period_ns, None, "periods differ");
    let one = Query { labels: vec![Matcher::equal("executor", "4")], ..Query::default() };
    assert_eq!(s.query(&b, &one).expect("readable").expect("some").period_ns, Some(20_000_000));
    assert_eq!(a.label_values().keys().collect::<Vec<_>>(), ["executor"], "the period is no label");
}

#[test]
fn notes_are_written_with_the_flush_and_read_back() {
    let dir = TestDir::new("notes");
    let now = 100 * 60_000;
    {
        let s = on_disk(&dir, Duration::from_secs(120));
        let src = s.source(1, || spec("a", &[])).expect("src");
        {
            let _noting = s.noting();
            s.add_stack_now(&src, &raw("r;x"), 3, now, now).expect("ok");
            s.note("jfr-dir:/p/a.jfr", b"{\"offset\":68}".to_vec());
        }
        s.note("other:x", b"1".to_vec());
        assert_eq!(s.notes("jfr-dir:").len(), 1, "pending notes are seen at once");
        s.flush(now).expect("flush");
        s.note("jfr-dir:/p/a.jfr", b"{\"offset\":99}".to_vec());
        // Not flushed: the newer note is lost with the samples it would cover.
    }
    let s = on_disk(&dir, Duration::from_secs(120));
    assert_eq!(s.notes("jfr-dir:"), [("jfr-dir:/p/a.jfr".to_string(), b"{\"offset\":68}".to_vec())]);
    assert_eq!(folded(&s, "a", &Query::default()), [("r;x".to_string(), 3)]);
}
