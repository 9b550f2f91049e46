//! Scale-out against a real S3 API (moto's server): a node's segments hold exactly what it
//! acknowledged, each count once, across uploads and a kill -9.

mod common;

use std::time::{Duration, Instant};

use stackd::cluster::objects::Objects;
use stackd::cluster::segment::Segment;

fn objects(moto: &common::moto::Moto) -> Objects {
    let env = moto.env();
    Objects::parse("s3://stackd-test/cluster", |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).expect("store")
}

/// Every segment of `node` in the store, and their counts merged.
async fn segments(objects: &Objects, node: &str) -> (Vec<String>, Segment) {
    let mut all = Segment::default();
    let mut keys = Vec::new();
    for listed in objects.list(&format!("segments/{node}/")).await.expect("list") {
        let bytes = objects.get(&listed.key).await.expect("get").expect("listed, so there");
        all.merge(&Segment::decode(&bytes).expect("a segment"));
        keys.push(listed.key);
    }
    (keys, all)
}

/// Wait (20 s at most) until `node` has `n` segments.
async fn wait_for_segments(objects: &Objects, node: &str, n: usize) -> (Vec<String>, Segment) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = segments(objects, node).await;
        if got.0.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn import(node: &common::Binary, query: &str, folded: &str) {
    let r =
        reqwest::Client::new().post(node.url(&format!("/import/folded?{query}"))).body(folded.to_string()).send().await.expect("import");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// (app, labels joined, frames joined, count) of every count, sorted; times checked apart.
fn rows(s: &Segment) -> Vec<(String, String, String, u64)> {
    let mut out = Vec::new();
    for (app, counts) in &s.apps {
        for ((labels, frames, _), n) in counts {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let frames: Vec<&str> = frames.iter().map(|f| &**f).collect();
            out.push((app.clone(), labels.join(","), frames.join(";"), *n));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_uploads_what_it_acknowledged_exactly_once() {
    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let store = objects(&moto);
    let dir = common::TempDir::new("cluster-node");
    let args = ["--object-store", "s3://stackd-test/cluster", "--node-id", "n1", "--segment-interval", "1s", "--sync-writes"];
    let node = common::Binary::start_with_env(&dir.0, &args, &moto.env());
    let before = common::now_ms();
    import(&node, "app=shop&host=h1", "main;work 3\nmain;idle 2\n").await;
    let (keys, merged) = wait_for_segments(&store, "n1", 1).await;
    assert_eq!(keys, ["segments/n1/000000000001.seg"]);
    assert_eq!(
        rows(&merged),
        [("shop".into(), "host=h1".into(), "main;idle".into(), 2), ("shop".into(), "host=h1".into(), "main;work".into(), 3)]
    );
    // Filed in the time bucket (60 s by default) of when it was imported.
    let (lo, hi) = merged.time_range().expect("counts");
    assert_eq!((lo, hi), (before - before.rem_euclid(60_000), before - before.rem_euclid(60_000)));

    // More for the same stacks and a new label set: the next segment holds only what is new.
    import(&node, "app=shop&host=h1", "main;work 4\n").await;
    import(&node, "app=shop&host=h2", "main;work 1\n").await;
    let (keys, merged) = wait_for_segments(&store, "n1", 2).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(
        rows(&merged),
        [
            ("shop".into(), "host=h1".into(), "main;idle".into(), 2),
            ("shop".into(), "host=h1".into(), "main;work".into(), 7),
            ("shop".into(), "host=h2".into(), "main;work".into(), 1),
        ]
    );
    let (_, metrics) = node.get_text("/metrics").await;
    let value = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
    assert_eq!(value("stackd_segments_total{outcome=\"uploaded\"}").as_deref(), Some("2"), "{metrics}");
    assert_eq!(value("stackd_segments_total{outcome=\"failed\"}").as_deref(), Some("0"));
    assert_eq!(value("stackd_outbox_backlog").as_deref(), Some("0"));

    // kill -9 after a write acknowledged (--sync-writes: on disk) and before the next upload
    // (an hour away): it is uploaded when the node is back, once.
    node.kill9();
    let slow = ["--object-store", "s3://stackd-test/cluster", "--node-id", "n1", "--segment-interval", "1h", "--sync-writes"];
    let node = common::Binary::start_with_env(&dir.0, &slow, &moto.env());
    import(&node, "app=shop&host=h1", "main;gc 5\n").await;
    node.kill9();
    assert_eq!(segments(&store, "n1").await.0.len(), 2, "nothing uploaded yet");
    let node = common::Binary::start_with_env(&dir.0, &args, &moto.env());
    let (keys, merged) = wait_for_segments(&store, "n1", 3).await;
    assert_eq!(keys.last().map(String::as_str), Some("segments/n1/000000000003.seg"));
    assert_eq!(merged.totals().get("shop"), Some(&(2 + 7 + 1 + 5)));
    // Nothing more to send: no further segment.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(segments(&store, "n1").await.0.len(), 3);
    node.stop();

    // The data dir keeps its node id: under another one this node would import its own old
    // segments as another node's.
    let other =
        ["--object-store", "s3://stackd-test/cluster", "--node-id", "n9", "--statsd-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackd"))
        .args(other)
        .arg("--data-dir")
        .arg(&dir.0)
        .envs(moto.env())
        .output()
        .expect("run stackd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this data dir holds the profiles of node \"n1\", not \"n9\": start it with --node-id n1 (or without --node-id)"),
        "{stderr}"
    );

    // The data dir lost (a pod whose volume went with it), n1 started again on an empty one:
    // it reads its own past back, and numbers its new segments after the old ones instead of
    // having them dropped as repeated.
    let fresh = common::TempDir::new("cluster-node-fresh");
    let node = common::Binary::start_with_env(&fresh.0, &args, &moto.env());
    let past = ["main;gc 5", "main;idle 2", "main;work 8"];
    assert_eq!(lines_when(&node, "/flamegraph/shop.folded", &past).await, past);
    import(&node, "app=shop&host=h1", "main;new 9\n").await;
    let (keys, merged) = wait_for_segments(&store, "n1", 4).await;
    assert_eq!(keys.last().map(String::as_str), Some("segments/n1/000000000004.seg"), "{keys:?}");
    assert_eq!(merged.totals().get("shop"), Some(&(2 + 7 + 1 + 5 + 9)));
    let (_, metrics) = node.get_text("/metrics").await;
    assert_eq!(common::series_value(&metrics, "stackd_segments_total{outcome=\"repeated\"}"), Some(0.0));
    assert_eq!(lines(&text(&node, "/flamegraph/shop.folded").await), ["main;gc 5", "main;idle 2", "main;new 9", "main;work 8"]);
    let logged = node.stop();
    assert!(logged.iter().any(|l| l.contains("numbers on after them")), "{logged:?}");
}

/// `GET path` from a node: the body of a 200.
async fn text(node: &common::Binary, path: &str) -> String {
    let (status, body) = node.get_text(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The lines of a `.folded`, sorted.
fn lines(body: &str) -> Vec<String> {
    let mut l: Vec<String> = body.lines().map(str::to_string).collect();
    l.sort();
    l
}

/// The sorted lines of a node's `path` once they are `want`, or as they are after 20 s: what
/// other nodes wrote comes round once a `--segment-interval`.
async fn lines_when(node: &common::Binary, path: &str, want: &[impl AsRef<str>]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = lines(&node.get_text(path).await.1);
        if got.iter().map(String::as_str).eq(want.iter().map(AsRef::as_ref)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Three nodes, one object store: each is sent its own part, and every node answers for all
/// of it as a single node fed everything would: by app, by label, by time range, and a diff of
/// one node's data against another's. Prometheus on each node counts what that node ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_for_every_node() {
    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let dirs: Vec<common::TempDir> = (1..=3).map(|i| common::TempDir::new(&format!("cluster-{i}"))).collect();
    let nodes: Vec<common::Binary> = (1..=3)
        .map(|i| {
            let id = format!("n{i}");
            // The recordings below were made on the day they were.
            let args =
                ["--object-store", "s3://stackd-test/cluster", "--node-id", &id, "--segment-interval", "1s", "--retention", "36500d"];
            common::Binary::start_with_env(&dirs[i - 1].0, &args, &moto.env())
        })
        .collect();
    let two_hours_ago = {
        let t = std::time::SystemTime::now() - Duration::from_secs(7_200);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    import(&nodes[0], "app=shop&host=h1", "main;work 3\nmain;idle 2\n").await;
    import(&nodes[1], "app=shop&host=h2", "main;work 10\n").await;
    import(&nodes[1], "app=etl&host=h2", "main;read 4\n").await;
    import(&nodes[2], "app=shop&host=h1", "main;work 1\nmain;gc 6\n").await;
    let late: &'static str = "main;old 7\n";
    let r = reqwest::Client::new()
        .post(nodes[2].url(&format!("/import/folded?app=shop&host=h3&time={two_hours_ago}")))
        .body(late)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 200);

    let all = ["main;gc 6", "main;idle 2", "main;old 7", "main;work 14"];
    for (i, node) in nodes.iter().enumerate() {
        // Until its own flush and every other node's segment have come round.
        lines_when(node, "/flamegraph/shop.folded?from=-3h", &all).await;
        let n = format!("node n{}", i + 1);
        assert_eq!(lines(&text(node, "/flamegraph/shop.folded?from=-3h").await), all, "{n}");
        assert_eq!(
            lines(&text(node, "/flamegraph/shop.folded?from=-3h&host=h1").await),
            ["main;gc 6", "main;idle 2", "main;work 4"],
            "{n}"
        );
        assert_eq!(lines(&text(node, "/flamegraph/shop.folded?from=-3h&to=-1h").await), ["main;old 7"], "{n}");
        assert_eq!(lines(&text(node, "/flamegraph/etl.folded?from=-3h").await), ["main;read 4"], "{n}");
        // n2's shop (h2) against what n1 and n3 sent for h1, counts as stored.
        assert_eq!(
            lines(&text(node, "/flamegraph/shop.folded?from=-3h&host=h2&base.host=h1&normalize=false").await),
            ["main;gc 6 0", "main;idle 2 0", "main;work 4 10"],
            "{n}"
        );
        // The node label is stackd's own: never listed.
        let app: serde_json::Value = serde_json::from_str(&text(node, "/apps/shop").await).expect("JSON");
        let labels: Vec<&String> = app["labels"].as_object().expect("labels").keys().collect();
        assert_eq!(labels, ["host"], "{n}: {app}");
        let hosts: Vec<&String> = app["labels"]["host"].as_object().expect("hosts").keys().collect();
        assert_eq!(hosts, ["h1", "h2", "h3"], "{n}");
    }
    // Real recordings of async-profiler: CPU samples of the same workload on n1 and n3,
    // allocations on n2. Every node serves each type as the sum of what the JDK's reader finds
    // in them, and each executor's own.
    let jfr = |name: &str| std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/").to_string() + name).expect("fixture");
    // What the JDK's reader finds in a recording, per type, as `.folded` writes it.
    let expected = |name: &str| -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jfr/");
        let out = std::process::Command::new("python3")
            .arg(format!("{dir}jfr_expected.py"))
            .arg("--folded")
            .arg(format!("{dir}{name}.jfr"))
            .output()
            .expect("python3");
        assert!(out.status.success(), "jfr_expected.py: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    for (node, executor, name) in [(&nodes[0], 1, "ap-itimer"), (&nodes[1], 2, "ap-alloc"), (&nodes[2], 3, "ap-itimer")] {
        let r = reqwest::Client::new()
            .post(node.url(&format!("/import/jfr?app=jfr&executor={executor}")))
            .body(jfr(&format!("{name}.jfr")))
            .send()
            .await
            .expect("import");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    let (cpu, alloc) = (expected("ap-itimer"), expected("ap-alloc"));
    let folded = |stacks: &std::collections::BTreeMap<String, u64>, times: u64| -> Vec<String> {
        lines(&stacks.iter().map(|(s, n)| format!("{s} {}\n", n * times)).collect::<String>())
    };
    for (i, node) in nodes.iter().enumerate() {
        let n = format!("node n{}", i + 1);
        let want = folded(&cpu["cpu"], 2);
        lines_when(node, "/flamegraph/jfr.folded?type=cpu", &want).await;
        assert_eq!(lines(&text(node, "/flamegraph/jfr.folded?type=cpu").await), want, "{n}");
        assert_eq!(lines(&text(node, "/flamegraph/jfr.folded?type=cpu&executor=3").await), folded(&cpu["cpu"], 1), "{n}");
        for t in ["alloc_bytes", "alloc_objects"] {
            let want = folded(&alloc[t], 1);
            lines_when(node, &format!("/flamegraph/jfr.folded?type={t}"), &want).await;
            assert_eq!(lines(&text(node, &format!("/flamegraph/jfr.folded?type={t}")).await), want, "{n} {t}");
        }
    }
    // Each node's /metrics: what it ingested itself (a dashboard sums over nodes).
    for (node, own) in nodes.iter().zip([5, 10, 14]) {
        let metrics = text(node, "/metrics").await;
        let shop = metrics.lines().find_map(|l| l.strip_prefix("stackd_samples_total{app=\"shop\"} ")).map(str::to_string);
        assert_eq!(shop, Some(own.to_string()), "{metrics}");
    }
    for node in nodes {
        node.stop();
    }
}

/// A TCP forwarder in front of moto that can be taken down and brought back on the same port:
/// the object store unreachable (moto itself keeps what it holds).
struct Proxy {
    port: u16,
    to: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16, to: u16) -> Proxy {
        let mut p = Proxy { port, to, task: None };
        p.up().await;
        p
    }

    async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot bind the proxy again: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let to = self.to;
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: every connection ends with it.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// The object store away for 30 s: both nodes keep ingesting and answering from what they
/// have, the backlog shows in /metrics and /health, and once it is back every node's totals are
/// exact, nothing lost and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_loses_nothing() {
    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let mut proxy = Proxy::start(common::flink::free_port(), moto.port).await;
    let env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| if k == "AWS_ENDPOINT_URL" { (k, format!("http://127.0.0.1:{}", proxy.port)) } else { (k, v) })
        .collect();
    let dirs: Vec<common::TempDir> = (1..=2).map(|i| common::TempDir::new(&format!("outage-{i}"))).collect();
    let nodes: Vec<common::Binary> = (1..=2)
        .map(|i| {
            let id = format!("n{i}");
            let args = ["--object-store", "s3://stackd-test/cluster", "--node-id", &id, "--segment-interval", "1s"];
            common::Binary::start_with_env(&dirs[i - 1].0, &args, &env)
        })
        .collect();
    import(&nodes[0], "app=shop&host=h1", "main;work 3\n").await;
    assert_eq!(lines_when(&nodes[1], "/flamegraph/shop.folded", &["main;work 3"]).await, ["main;work 3"]);

    proxy.down().await;
    import(&nodes[0], "app=shop&host=h1", "main;work 4\n").await;
    import(&nodes[1], "app=shop&host=h2", "main;idle 5\n").await;
    // Each answers from what it has.
    assert_eq!(lines_when(&nodes[0], "/flamegraph/shop.folded", &["main;work 7"]).await, ["main;work 7"]);
    assert_eq!(lines_when(&nodes[1], "/flamegraph/shop.folded", &["main;idle 5", "main;work 3"]).await, ["main;idle 5", "main;work 3"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in &nodes {
        let metrics = text(node, "/metrics").await;
        let backlog: u64 =
            metrics.lines().find_map(|l| l.strip_prefix("stackd_outbox_backlog ")).and_then(|v| v.parse().ok()).expect("backlog");
        assert!(backlog > 0, "{metrics}");
        let health: serde_json::Value = serde_json::from_str(&text(node, "/health").await).expect("JSON");
        assert_eq!(health["status"], "warn", "{health}");
        assert_eq!(health["object_store"]["backlog"], backlog, "{health}");
        let error = health["object_store"]["error"].as_str().expect("an error while it is away");
        assert!(error.contains("cannot reach the object store"), "{error}");
    }
    // 30 s away in all.
    tokio::time::sleep(Duration::from_secs(25)).await;
    import(&nodes[1], "app=shop&host=h2", "main;idle 1\n").await;
    proxy.up().await;

    let all = vec!["main;idle 6", "main;work 7"];
    for node in &nodes {
        assert_eq!(lines_when(node, "/flamegraph/shop.folded", &all).await, all);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in &nodes {
        assert_eq!(lines(&text(node, "/flamegraph/shop.folded").await), all, "still exact: nothing counted twice");
        let health: serde_json::Value = serde_json::from_str(&text(node, "/health").await).expect("JSON");
        assert_eq!((health["status"].as_str(), health["object_store"]["backlog"].as_u64()), (Some("pass"), Some(0)), "{health}");
    }
    for node in nodes {
        node.stop();
    }
    proxy.down().await;
}

/// Two nodes run a compaction pass at the same moment over the same segments (ten of n1's,
/// packs of three): every closed window is merged by exactly one of them (its lease), each
/// pack holds its window's segments once, and nothing is counted twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_compacting_at_once_merge_each_window_once() {
    use stackd::cluster::compactor::{compact_once, Settings};
    use stackd::cluster::keys;
    use stackd::cluster::segment::Pack;

    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let store = objects(&moto);
    let settings = Settings { pack_segments: 3, grace_ms: 3_600_000, lease_ms: 60_000, keep_ms: None };
    // Five nodes' segments, so that the two passes cross many times.
    let writers = ["w1", "w2", "w3", "w4", "w5"];
    let mut sent = 0u64;
    for w in writers {
        for seq in 1..=10u64 {
            let mut s = Segment::new(w, seq);
            s.add("shop", vec![("host".into(), w.into())], vec!["main".into(), format!("f{}", seq % 4).into()], 60_000 * seq as i64, seq);
            sent += seq;
            store.put_if_absent(&keys::segment(w, seq), s.encode().into()).await.expect("put");
        }
    }
    let (ma, mb) = (stackd::metrics::Metrics::new(), stackd::metrics::Metrics::new());
    let (a, b) = (store.clone().counted(&ma), store.clone().counted(&mb));
    let now = common::now_ms();
    let pass_a = tokio::spawn(async move { compact_once(&a, "a", settings, now, &ma).await.map(|r| (r, ma)) });
    let pass_b = tokio::spawn(async move { compact_once(&b, "b", settings, now, &mb).await.map(|r| (r, mb)) });
    let (ra, ma) = pass_a.await.expect("task").expect("pass a");
    let (rb, mb) = pass_b.await.expect("task").expect("pass b");

    // Every window (1–3, 4–6, 7–9 of each writer; 10 is still open) by exactly one of them.
    let mut packed: Vec<(String, u64, u64)> = ra.packed.iter().chain(&rb.packed).cloned().collect();
    packed.sort();
    let want: Vec<(String, u64, u64)> =
        writers.iter().flat_map(|w| [(w.to_string(), 1, 3), (w.to_string(), 4, 6), (w.to_string(), 7, 9)]).collect();
    assert_eq!(packed, want, "a: {ra:?}, b: {rb:?}");
    // No merge done twice: each node wrote a pack only for the windows whose lease it took,
    // and tried the lease of the others.
    for (m, r) in [(&ma, &ra), (&mb, &rb)] {
        assert_eq!(r.repeated, 0);
        assert_eq!(m.object_requests.with_label_values(&["put"]).get(), 2 * r.packed.len() as u64 + r.lease_held, "{r:?}");
    }
    // The packs hold each segment once; with the open window, every count once.
    let mut total = 0u64;
    for w in writers {
        for listed in store.list(&keys::node_prefix(w)).await.expect("list") {
            let bytes = store.get(&listed.key).await.expect("get").expect("there");
            match keys::parse(w, &listed.key) {
                Some(keys::Name::Pack { first, last }) => {
                    let pack = Pack::decode(&bytes).expect("a pack");
                    let seqs: Vec<u64> = pack.sections.iter().map(|s| s.seq).collect();
                    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
                    total += pack.sections.iter().map(|s| s.totals()["shop"]).sum::<u64>();
                }
                Some(keys::Name::Segment(10)) => total += Segment::decode(&bytes).expect("segment").totals()["shop"],
                _ => {}
            }
        }
    }
    assert_eq!(total, sent);
}

/// Compaction while nodes run (`--pack-segments 3`): n1's segments become packs and their
/// sources go; n2, which imported the segments one by one, never counts anything twice at any
/// moment of it; a node started cold while both a pack and its sources are there, and one
/// started after the sources went, answer with every count once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_count_once() {
    use stackd::cluster::keys::{self, Name};

    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let store = objects(&moto);
    let dirs: Vec<common::TempDir> = (1..=4).map(|i| common::TempDir::new(&format!("compaction-{i}"))).collect();
    let start = |i: usize| {
        let id = format!("n{i}");
        let args = ["--object-store", "s3://stackd-test/cluster", "--node-id", &id, "--segment-interval", "1s", "--pack-segments", "3"];
        common::Binary::start_with_env(&dirs[i - 1].0, &args, &moto.env())
    };
    let total = |folded: &str| common::parse_folded(folded).iter().map(|(_, n)| n).sum::<u64>();
    // A node that has nothing yet answers 404: nothing.
    let shop = |node: &common::Binary| {
        let url = node.url("/flamegraph/shop.folded");
        async move {
            let r = reqwest::get(&url).await.expect("GET");
            match r.status().as_u16() {
                404 => 0,
                200 => total(&r.text().await.expect("body")),
                s => panic!("{url}: {s}"),
            }
        }
    };
    let names =
        |listed: Vec<stackd::cluster::objects::Listed>| -> Vec<Name> { listed.iter().filter_map(|l| keys::parse("n1", &l.key)).collect() };
    let (n1, n2) = (start(1), start(2));

    // Eight segments of n1, one a second; n2 watched all along. A cold node is started as soon
    // as pack 1–3 and its sources are both in the store (within the 5 s of grace).
    let mut sent = 0u64;
    let mut seen = Vec::new();
    let mut n3 = None;
    let mut both = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..=8u64 {
        import(&n1, "app=shop&host=h1", &format!("main;f{} {i}\n", i % 3)).await;
        sent += i;
        let until = Instant::now() + Duration::from_millis(1_500);
        while Instant::now() < until || (i == 8 && n3.is_none() && Instant::now() < deadline) {
            seen.push(shop(&n2).await);
            if n3.is_none() {
                let now = names(store.list("segments/n1/").await.expect("list"));
                if now.contains(&Name::Pack { first: 1, last: 3 }) && now.contains(&Name::Segment(1)) {
                    n3 = Some(start(3));
                    both = now;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(both.contains(&Name::Segment(1)), "no cold start between the pack and its sources' deletion: {both:?}");
    let n3 = n3.expect("started");
    // And one after the sources went. (Two imports that fall in one round share a segment:
    // eight imports make at least six segments, so that both windows close.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let packed_only = |names: &[Name]| {
        names.contains(&Name::Pack { first: 1, last: 3 })
            && names.contains(&Name::Pack { first: 4, last: 6 })
            && names.iter().all(|n| !matches!(n, Name::Segment(s) if *s <= 6))
    };
    let after = loop {
        let now = names(store.list("segments/n1/").await.expect("list"));
        if packed_only(&now) || Instant::now() > deadline {
            break now;
        }
        seen.push(shop(&n2).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(packed_only(&after), "{after:?}");
    let n4 = start(4);
    for (name, node) in [("n1", &n1), ("n2", &n2), ("n3", &n3), ("n4", &n4)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = shop(node).await;
        while got != sent && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            got = shop(node).await;
        }
        assert_eq!(got, sent, "{name}");
    }
    // n2 at every moment: never more than was sent, never less than before.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.iter().all(|t| *t <= sent), "{seen:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut packed = 0.0;
    for node in [&n1, &n2, &n3, &n4] {
        assert_eq!(total(&text(node, "/flamegraph/shop.folded").await), sent, "still exact");
        packed += common::series_value(&text(node, "/metrics").await, "stackd_compaction_total{outcome=\"packed\"}").expect("metric");
    }
    assert_eq!(packed, 2.0, "each window merged once, by one node");
    for node in [n1, n2, n3, n4] {
        node.stop();
    }
}
