//! Real client libraries (Python, from PyPI) sending to stackd. `.ci/run` installs them.

mod common;

use common::Service;

#[tokio::test(flavor = "multi_thread")]
async fn python_statsd_client() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    common::python("statsd_client.py", &["127.0.0.1", &svc.statsd.port().to_string(), "spark.app-py.2"]);
    // 4 gauges + 1 negative gauge (one datagram of two lines) + 1 counter + 1 pipeline datagram.
    svc.wait_datagrams(7).await;
    assert_eq!(svc.get_text("/flamegraph/app-py.folded").await.1, "a.B.c:1 4\ncom.example.Main.main:12;java.lang.Thread.sleep:-2 5\n");
    assert_eq!(svc.metric("jvm_memory_bytes_max{app=\"app-py\",area=\"nonheap\",executor=\"2\"}").await, -1.0);
    assert_eq!(svc.metric("jvm_gc_collection_seconds_count{app=\"app-py\",executor=\"2\",gc=\"G1_Young_Generation\"}").await, 5.0);
    assert_eq!(svc.metric("stackd_lines_ignored_total{protocol=\"statsd\",reason=\"unknown_metric\"}").await, 1.0);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_influxdb_v1_client() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    assert_eq!(common::python("influx_v1.py", &["127.0.0.1", &svc.http.port().to_string()]), "ok");
    assert_eq!(
        svc.get_text("/flamegraph/app-py.folded").await.1,
        "com.example.Main.main:12;java.lang.Thread.sleep:-2 3\njava.lang.Thread.run:748;com.example.FooTest.my test:10 2\n"
    );
    assert_eq!(
        svc.metric(
            "jvm_memory_bytes_used{app=\"app-py\",area=\"heap\",executor=\"3\",host=\"worker-1\",jvm=\"4242@worker-1\",pid=\"4242\"}"
        )
        .await,
        123456789.0
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_influxdb_v2_client_with_gzip() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    assert_eq!(common::python("influx_v2.py", &[&svc.url("")]), "ok");
    assert_eq!(svc.get_text("/flamegraph/app-v2.folded").await.1, "a.B.c:1 1\njava.lang.Thread.run:748;java.lang.Object.wait:-2 4\n");
    svc.stop().await;
}
