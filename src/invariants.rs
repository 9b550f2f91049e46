//! Invariants that hold for any input whatsoever, checked by the fuzz targets (`fuzz/`) and, over
//! the kept corpora and crash inputs, by `cargo test` (`tests/fuzz_corpus.rs`). Each function
//! panics when an invariant breaks; "does not crash" is the least of what they check:
//!
//! * parsers: every accepted statsd sample is a finite number, every accepted line-protocol
//!   line can be walked (tags, fields) and every refusal has a message;
//! * ingest: an app's total never decreases, and always equals the sum of its folded output;
//! * rendering: folded output is sorted and sums to the total, JSON is well-formed with each
//!   node's value at least the sum of its children's, and SVG is well-formed XML;
//! * JFR: a chunk is stored whole or not at all, and the store holds what the import counted.
//!
//! Built only with the `invariants` feature (it needs an XML parser that stackd itself does not).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::ingest::Ingest;
use crate::input::{Inputs, Precision};
use crate::metrics::Metrics;
use crate::protocol::{influx, statsd};
use crate::render::{self, Stacks, Titles};
use crate::store::{Limits, Query, Store};

/// Separates the payloads of one fuzz input in the ingest checks.
const SPLIT: u8 = 0xff;

/// The statsd parser on one datagram.
pub fn statsd_parse(data: &[u8]) {
    for line in statsd::parse_datagram(data) {
        let Ok(line) = line else { continue };
        assert!(!line.name.is_empty(), "an accepted line has a name");
        for sample in line.samples() {
            if sample.kind != statsd::MetricType::Set {
                let v = sample.number.expect("an accepted sample has a number");
                assert!(v.is_finite(), "{v}");
            }
            assert!(sample.rate > 0.0 && sample.rate <= 1.0, "rate {}", sample.rate);
        }
        let _ = line.tags.iter().count();
    }
}

/// The line-protocol parser on one body.
pub fn influx_parse(data: &[u8]) {
    for line in influx::parse_body(data) {
        match line {
            Ok(line) => {
                assert!(!line.measurement().is_empty(), "an accepted line has a measurement");
                let _ = line.tags().count();
                assert!(line.fields().count() > 0, "an accepted line has fields");
            }
            Err(e) => assert!(e.to_string().starts_with("unable to parse '"), "{e}"),
        }
    }
}

fn inputs() -> Inputs {
    thread_local! {
        // A registry is costly to build; counters are not part of any invariant, so one is shared.
        static METRICS: Metrics = Metrics::new();
    }
    let limits = Limits { max_apps: 8, max_stacks_per_app: 64, max_label_values: 8, max_series_per_app: 16, ..Limits::default() };
    let store = Arc::new(Store::new(limits, Duration::from_secs(60)));
    let template = crate::config::PrefixTemplate::parse("SKIP.app.executor").ok();
    Inputs::new(Arc::new(Ingest::new(store, METRICS.with(Metrics::clone))), template)
}

/// Payloads separated by 0xff; the first byte's low bit picks statsd (0) or line protocol (1).
/// The store is small (8 apps, 64 stacks each, 8 label values, 16 gauge series), so that the
/// limits are reached too.
/// After each payload no app's total has gone down, and each total equals its folded sum.
pub fn ingest_payloads(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let inputs = inputs();
    let store = &inputs.ingest.store;
    let now = 1_700_000_000_000;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for payload in rest.split(|&b| b == SPLIT) {
        if mode & 1 == 0 {
            inputs.statsd_datagram(payload, now);
        } else {
            let _ = inputs.line_protocol(payload, Precision::Nanos, now);
        }
        for app in store.apps() {
            let total = app.total_samples();
            let before = totals.insert(app.name.to_string(), total).unwrap_or(0);
            assert!(total >= before, "{}: total went from {before} down to {total}", app.name);
        }
    }
    for app in store.apps() {
        let Some(profile) = store.query(&app, &Query::default()).expect("an in-memory store is readable") else { continue };
        assert_eq!(profile.total, app.total_samples(), "{}: the profile holds every sample", app.name);
        // SVG is checked by `render_folded`; here the outputs that come straight from the store.
        outputs(&store.resolve(&profile), profile.total, false);
    }
}

/// Text as folded stacks (`a;b;c 3` per line, anything else skipped), rendered every way.
pub fn render_folded(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut stacks: Stacks = Vec::new();
    let mut total = 0u64;
    for line in text.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let Ok(count) = count.parse::<u64>() else { continue };
        if stack.is_empty() {
            continue;
        }
        stacks.push((stack.split(';').map(Arc::from).collect(), count));
        total = total.saturating_add(count);
    }
    outputs(&stacks, total, true);
}

/// The explorer's `.tree` of `stacks` (also cut to three nodes, and with the sandwich of the
/// first stack's root frame): the root holds every sample; each node lies inside its parent's
/// span, after its left sibling; uncut, a node's self plus its children's totals is its total;
/// the functions' self add up to the total; both sides of the sandwich carry the same total.
fn check_tree(stacks: &Stacks, total: u64) {
    let focus = stacks.first().and_then(|(f, _)| f.first()).map(|f| f.to_string());
    let exact = total < 1 << 60;
    for max_nodes in [render::tree::MAX_NODES, 3] {
        let a = render::tree::answer(stacks, None, focus.as_deref(), max_nodes);
        assert_eq!(a.total, total, "the tree's root holds every sample");
        assert_eq!(a.tree.levels[0][..3], [0, total, a.tree.levels[0][2]], "one root, at 0");
        let uncut = a.tree.shown == a.tree.nodes;
        for pair in a.tree.levels.windows(2) {
            let (above, level) = (&pair[0], &pair[1]);
            let mut children = vec![0u64; above.len() / 5];
            let mut end = vec![0u64; above.len() / 5];
            for n in level.chunks(5) {
                let p = n[4] as usize;
                let parent = &above[p * 5..p * 5 + 5];
                assert!(
                    n[0] >= parent[0].max(end[p]) && n[0].saturating_add(n[1]) <= parent[0].saturating_add(parent[1]),
                    "a node inside its parent, after its left sibling"
                );
                assert!((n[3] as usize) < a.names.len(), "a name in the table");
                end[p] = n[0].saturating_add(n[1]);
                children[p] = children[p].saturating_add(n[1]);
            }
            if uncut && exact {
                for (p, parent) in above.chunks(5).enumerate() {
                    assert_eq!(parent[2] + children[p], parent[1], "self plus children is the total");
                }
            }
        }
        if a.functions.len() == a.functions_count && exact {
            assert_eq!(a.functions.iter().map(|f| f[1]).sum::<u64>(), total, "the functions' self add up to the total");
        }
        if let Some(sandwich) = &a.focus {
            assert_eq!(
                sandwich.callers.levels[0][1], sandwich.callees.levels[0][1],
                "both sides of the sandwich carry the function's total"
            );
        }
    }
}

/// Folded, JSON and (when `svg`) SVG of `stacks`, each checked.
fn outputs(stacks: &Stacks, total: u64, svg: bool) {
    let folded = render::folded(stacks);
    let mut sum = 0u64;
    let mut previous: Option<&str> = None;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("folded line ends in a count");
        sum = sum.saturating_add(count.parse::<u64>().expect("count"));
        assert!(previous.is_none_or(|p| p < stack), "folded lines sorted and merged: {previous:?} then {stack:?}");
        previous = Some(stack);
    }
    assert_eq!(sum, total, "folded output sums to the total");
    check_json_tree(&render::json(stacks), total);
    check_tree(stacks, total);
    if svg && total > 0 {
        let titles = Titles::new("t\u{1}", Some("s".into()));
        let svg = render::svg(stacks, &titles).expect("renders");
        let text = String::from_utf8(svg).expect("SVG is UTF-8");
        let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
        if let Err(e) = roxmltree::Document::parse_with_options(&text, options) {
            panic!("SVG is not well-formed XML: {e}");
        }
        // The renderer's own total ("all (1,234 samples, 100%)") is every sample. A frame may be
        // called "all" too: the root is the one at 100%.
        let all = text
            .split("<title>all (")
            .skip(1)
            .find(|t| t.split("</title>").next().is_some_and(|t| t.ends_with(" samples, 100%)")))
            .expect("the root frame");
        let shown: String = all.split(' ').next().unwrap_or("").chars().filter(char::is_ascii_digit).collect();
        // The renderer prints its total through an f64: exact up to 2^53 samples (about three
        // million CPU-years at 100 samples a second).
        if total <= 1 << 53 {
            assert_eq!(shown, total.to_string(), "the SVG counts every sample");
        }
    }
}

/// `{"name":"…","value":N,"children":[…]}` nested to any depth (checked without recursion):
/// strings valid JSON, root value `total`, each value at least the sum of its children's.
fn check_json_tree(json: &str, total: u64) {
    let b = json.as_bytes();
    let mut i = 0;
    // (value, sum of children so far) of each open node.
    let mut open: Vec<(u64, u64)> = Vec::new();
    let mut root = None;
    let expect = |i: &mut usize, what: &str| {
        assert!(json[*i..].starts_with(what), "expected {what:?} at {i} in {}", &json[..json.len().min(200)]);
        *i += what.len();
    };
    loop {
        expect(&mut i, "{\"name\":");
        let start = i;
        i += 1;
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        serde_json::from_str::<String>(&json[start..i]).expect("a valid JSON string");
        expect(&mut i, ",\"value\":");
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let value: u64 = json[i..i + digits].parse().expect("value");
        i += digits;
        expect(&mut i, ",\"children\":[");
        match open.last_mut() {
            Some(parent) => parent.1 = parent.1.saturating_add(value),
            None => root = Some(value),
        }
        open.push((value, 0));
        // Close finished nodes; a comma means a sibling follows.
        loop {
            if json[i..].starts_with("]}") {
                i += 2;
                let (value, children) = open.pop().expect("open node");
                assert!(children <= value, "children ({children}) exceed their parent ({value})");
                if open.is_empty() {
                    assert_eq!(i, json.len(), "nothing after the root");
                    assert_eq!(root, Some(total), "root value is the total");
                    return;
                }
                if json[i..].starts_with(',') {
                    i += 1;
                    break;
                }
            } else {
                break;
            }
        }
    }
}

/// A JobManager's answer (or an imported document) read as each document stackd reads from
/// Flink, and as collapsed stacks: no vertex is polled for more subtasks than Flink can have; a
/// flame graph read is whole (its stacks' own counts add up to its root's value); a collapsed
/// document that passes the check is read back with exactly the stacks the check counted.
pub fn flink_rest(data: &[u8]) {
    use crate::input::flink::{flamegraph, rest};
    for n in rest::read_answer(data) {
        assert!((1..=rest::MAX_PARALLELISM).contains(&n), "{n} subtasks");
    }
    match flamegraph::parse(data) {
        Ok(flamegraph::Document::Graph { tree, .. }) => {
            let mut sum = 0u64;
            let mut stacks = 0;
            tree.each_stack(|frames, n| {
                assert!(frames.len() <= flamegraph::MAX_DEPTH, "{} frames", frames.len());
                assert!(n > 0, "a stack without samples");
                sum += n;
                stacks += 1;
            });
            assert_eq!(sum, tree.total, "the stacks add up to the root's value");
            assert_eq!(stacks, tree.len());
        }
        Ok(flamegraph::Document::Sentinel(_)) => {}
        Err(message) => assert_ne!(message, "the document could not be parsed", "the parser panicked"),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(n) = crate::input::folded::check(text) {
            let mut seen = 0;
            crate::input::folded::each(text, &mut |frames, _| {
                assert!(frames.iter().all(|f| !f.is_empty()), "an empty frame");
                seen += 1;
            });
            assert_eq!(seen, n);
        }
    }
}

/// A JFR recording read as `POST /import/jfr` reads it, one chunk at a time into a fresh
/// store: every chunk the reader accepts is stored whole, each type's total in the store is
/// what the import counted, and what was stored is what the chunks' sample events weigh.
pub fn jfr(data: &[u8]) {
    use crate::input::jfr::{each_chunk, store_chunk, FileState, Target};
    use crate::protocol::jfr::Chunk;
    use crate::sample::ProfileType;
    let store = Arc::new(Store::new(Limits::default(), Duration::from_secs(60)));
    let ingest = Ingest::new(Arc::clone(&store), Metrics::new());
    let target = Target::new("fuzz".into(), Vec::new());
    let mut state = FileState::default();
    let mut stored = crate::input::jfr::Stored::default();
    let mut reader = data;
    let (chunks, stopped) = each_chunk(&mut reader, 1 << 24, |bytes| {
        let chunk = Chunk::parse(bytes)?;
        let mut events = 0u64;
        chunk.events(|_| events += 1)?;
        let mut w = ingest.writer(None);
        let s = store_chunk(&mut w, &target, &chunk, &mut state, 0)?;
        let typed: u64 = s.types.iter().map(|t| t.events).sum();
        assert!(typed <= 2 * events, "{typed} typed events of {events}");
        stored.add(&s);
        Ok(())
    });
    if chunks == 0 {
        assert!(store.app("fuzz").is_none(), "a refused recording left an app behind ({stopped:?})");
    }
    let Some(app) = store.app("fuzz") else { return };
    for t in ProfileType::ALL {
        let q = Query { profile: t, ..Query::default() };
        let total = store.query(&app, &q).expect("in memory").map_or(0, |p| p.total);
        assert_eq!(total, stored.types[t as usize].total, "{t}: the store holds what the import counted");
    }
}

/// A pprof profile read as the Pyroscope inputs read it, into a fresh store: a profile the
/// checks refuse leaves nothing behind; one they accept is stored whole, each type's total in
/// the store is what the batch held.
pub fn pprof(data: &[u8]) {
    use crate::input::pyroscope::{Batch, Series};
    use crate::sample::ProfileType;
    let store = Arc::new(Store::new(Limits::default(), Duration::from_secs(60)));
    let ingest = Ingest::new(Arc::clone(&store), Metrics::new());
    let Ok(profile) = crate::protocol::pprof::decode(data) else { return };
    let series = Series { app: "fuzz".into(), labels: Vec::new(), time_ms: Some(0), sample_rate: None, wall: false };
    let mut batch = Batch::new(64);
    if batch.add_pprof(&series, &profile, Some(&profile), &Default::default(), 0).is_err() {
        return;
    }
    let stored = batch.store(&ingest, 0);
    let Some(app) = store.app("fuzz") else {
        assert!(stored.totals.iter().all(|t| *t == 0), "stored totals without an app");
        return;
    };
    for t in ProfileType::ALL {
        let q = Query { profile: t, ..Query::default() };
        let total = store.query(&app, &q).expect("in memory").map_or(0, |p| p.total);
        assert_eq!(total, stored.totals[t as usize], "{t}: the store holds what the batch counted");
    }
}

/// Pyroscope's wires around the profiles: the name with tags, a multipart body, a Push
/// request and a labels snapshot never panic, and what they give back is inside the input.
pub fn pyroscope(data: &[u8]) {
    use crate::protocol::pyroscope as wire;
    use prost::Message as _;
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = wire::parse_name(text) {
            assert!(!name.name.is_empty() && text.contains(&name.name));
            for (k, _) in &name.tags {
                assert!(!k.is_empty() && text.contains(k.as_str()));
            }
        }
    }
    if let Ok(parts) = wire::multipart(data, "b") {
        let range = data.as_ptr_range();
        for p in parts {
            assert!(p.data.is_empty() || (range.contains(&p.data.as_ptr()) && p.data.len() <= data.len()), "a part outside the body");
        }
    }
    if let Ok(request) = wire::PushRequest::decode(data) {
        let bytes: usize = request.series.iter().flat_map(|s| &s.samples).map(|s| s.raw_profile.len()).sum();
        assert!(bytes <= data.len());
    }
    if let Ok(snapshot) = wire::LabelsSnapshot::decode(data) {
        let _ = snapshot.resolve();
    }
}

/// An async-profiler HTML flame graph: read whole or refused; read, its stacks' own samples add
/// up to the root's width, no stack is empty, and each stack is no deeper than the document has
/// frames.
pub fn ap_html(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(graph) = crate::protocol::ap_html::parse(text) else { return };
    let mut sum = 0u64;
    let mut stacks = 0usize;
    graph.each_stack(&mut |frames, n| {
        assert!(!frames.is_empty() && frames.len() < graph.len(), "a stack of the document's frames");
        assert!(n > 0, "only stacks with samples");
        sum = sum.saturating_add(n);
        stacks += 1;
    });
    assert_eq!(stacks, graph.stacks(), "stacks() counts what each_stack gives");
    // The root's own samples (width not covered by frames) are not a stack.
    assert!(sum <= graph.total, "the stacks' samples fit in the root's width: {sum} > {}", graph.total);
}
