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

async fn import(node: &common::Binary, query: &str, folded: &'static str) {
    let r = reqwest::Client::new().post(node.url(&format!("/import/folded?{query}"))).body(folded).send().await.expect("import");
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
            let args = ["--object-store", "s3://stackd-test/cluster", "--node-id", &id, "--segment-interval", "1s"];
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
        // Until its own flush and every other node's segment have come round (20 s at most).
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines(&node.get_text("/flamegraph/shop.folded?from=-3h").await.1) != all && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
    let wait_for = |node: &common::Binary, want: Vec<&'static str>| {
        let url = node.url("/flamegraph/shop.folded");
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let body = reqwest::get(&url).await.expect("GET").text().await.expect("body");
                if lines(&body) == want || Instant::now() > deadline {
                    return lines(&body);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    import(&nodes[0], "app=shop&host=h1", "main;work 3\n").await;
    assert_eq!(wait_for(&nodes[1], vec!["main;work 3"]).await, ["main;work 3"]);

    proxy.down().await;
    import(&nodes[0], "app=shop&host=h1", "main;work 4\n").await;
    import(&nodes[1], "app=shop&host=h2", "main;idle 5\n").await;
    // Each answers from what it has.
    assert_eq!(wait_for(&nodes[0], vec!["main;work 7"]).await, ["main;work 7"]);
    assert_eq!(wait_for(&nodes[1], vec!["main;idle 5", "main;work 3"]).await, ["main;idle 5", "main;work 3"]);
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
        assert_eq!(wait_for(node, all.clone()).await, all);
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
