//! The agent's once-a-second flush as a burst of UDP datagrams. Alone in its test binary, so that
//! no other test competes for the CPU while the burst arrives.

mod common;

use common::Service;

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_2000_datagrams_arrives_whole() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    let port = svc.statsd.port().to_string();
    let samples: f64 = common::python("burst.py", &["127.0.0.1", &port, "spark.app-burst.1", "2000"]).parse().expect("total");
    svc.wait_datagrams(2000).await;
    assert_eq!(svc.metric("stackd_udp_datagrams_total").await, 2000.0);
    assert_eq!(svc.metric("stackd_samples_total{app=\"app-burst\"}").await, samples);
    assert_eq!(svc.metric("stackd_unique_stacks{app=\"app-burst\"}").await, 2000.0);
    assert_eq!(svc.metric("stackd_udp_kernel_drops_total").await, 0.0);
    svc.stop().await;
}
