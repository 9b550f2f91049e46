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
}
