//! The InfluxDB write API against the running service.

mod common;

use std::io::Write;

use common::{recent, Service};

const IJ01: &str = "cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3.0 1500000000123000000\n";

async fn write(svc: &Service, query: &str, body: impl Into<reqwest::Body>) -> (u16, String, Option<String>) {
    let r = svc.client.post(svc.url(&format!("/write?{query}"))).body(body).send().await.expect("POST");
    let status = r.status().as_u16();
    let header = r.headers().get("X-Influxdb-Error").map(|v| v.to_str().expect("ascii").to_string());
    (status, r.text().await.expect("body"), header)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread")]
async fn profiler_influx_reporter_writes() {
    let svc = Service::start(&["--prefix-labels", "SKIP.app.executor"]).await;
    let q = "u=profiler&p=secret&db=profiler&precision=n&consistency=one";
    // influxdb-java 2.0 writes floats; later versions write `3i`: the same count.
    assert_eq!(write(&svc, q, recent(IJ01)).await, (204, String::new(), None));
    assert_eq!(write(&svc, q, recent(IJ01).replace("value=3.0", "value=3i")).await.0, 204);
    let memory = "heap.total.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-9.3 value=123456789.0 1500000010124000000\n\
                  nonheap.metaspace.max,hostname=h,jvmName=1@h,pid=1,prefix=spark.app-9.3 value=-1.0 1500000010124000000\n";
    assert_eq!(write(&svc, q, recent(memory)).await.0, 204);
    assert_eq!(
        svc.get_text("/flamegraph/sparkapp.folded").await,
        (200, "com.example.Main.main:12;java.lang.Thread.sleep:-2 6\n".to_string())
    );
    let apps: serde_json::Value = serde_json::from_str(&svc.get_text("/apps").await.1).expect("json");
    assert_eq!(apps[0]["name"], "app-9");
    assert_eq!(apps[1]["name"], "sparkapp");
    let labels = apps[1]["labels"].as_object().expect("labels");
    let seen: Vec<(String, String, u64)> = labels
        .iter()
        .flat_map(|(k, values)| {
            values.as_object().expect("values").iter().map(move |(v, st)| (k.clone(), v.clone(), st["samples"].as_u64().expect("samples")))
        })
        .collect();
    let want = [("host", "worker-1"), ("jvm", "4242@worker-1"), ("pid", "4242"), ("spark", "sparkapp")];
    assert_eq!(seen, want.map(|(k, v)| (k.to_string(), v.to_string(), 6)));
    let st = &labels["host"]["worker-1"];
    assert!(st["first_seen_ms"].as_i64() <= st["last_seen_ms"].as_i64() && st["first_seen_ms"].as_i64() > Some(1_700_000_000_000));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bodies_and_body_limit() {
    let svc = Service::start(&["--max-body-size", "4096"]).await;
    let body = "cpu.trace.a-B-c-1,prefix=p value=1\n".repeat(100);
    let r =
        svc.client.post(svc.url("/write?db=x")).header("Content-Encoding", "gzip").body(gzip(body.as_bytes())).send().await.expect("POST");
    assert_eq!(r.status(), 204);
    assert_eq!(svc.get_text("/flamegraph/p.folded").await.1, "a.B.c:1 100\n");
    // Over the limit: compressed small, 6 KB once decompressed.
    let r = svc
        .client
        .post(svc.url("/write?db=x"))
        .header("Content-Encoding", "gzip")
        .body(gzip("cpu.trace.a-B-c-1,prefix=p value=1\n".repeat(180).as_bytes()))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    assert_eq!(r.text().await.expect("body"), r#"{"error":"Request Entity Too Large"}"#);
    let (status, body, _) = write(&svc, "db=x", "x".repeat(5000)).await;
    assert_eq!((status, body.as_str()), (413, r#"{"error":"Request Entity Too Large"}"#));
    // Without Content-Encoding, gzip bytes are (bad) line protocol.
    let (status, body, header) = write(&svc, "db=x", vec![0x1f, 0x8b, b' ', b'v', b'=', b'1']).await;
    assert_eq!((status, body.as_str()), (400, "{\"error\":\"unable to parse '\\u001f\u{fffd} v=1': invalid UTF-8\"}"));
    assert_eq!(header.as_deref(), Some("unable to parse '?? v=1': invalid UTF-8"));
    let r = svc.client.post(svc.url("/write?db=x")).header("Content-Encoding", "gzip").body("not gzip").send().await.expect("POST");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").starts_with(r#"{"error":"invalid gzip body: "#));
    assert_eq!(svc.metric("stackd_limit_hits_total{limit=\"body\"}").await, 2.0);
    assert_eq!(svc.get_text("/flamegraph/p.folded").await.1, "a.B.c:1 100\n", "nothing from refused bodies");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_writes_like_influxdb_1x() {
    let svc = Service::start(&[]).await;
    let (status, body, header) =
        write(&svc, "db=x", "cpu.trace.a-B-c-1,prefix=p value=42\r\ncpu value=invalid\ncpu.trace.a-B-c-1,prefix=p value=42\n").await;
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"error":"partial write: unable to parse 'cpu value=invalid': invalid boolean dropped=0"}"#);
    assert_eq!(header.as_deref(), Some("partial write: unable to parse 'cpu value=invalid': invalid boolean dropped=0"));
    assert_eq!(svc.get_text("/flamegraph/p.folded").await.1, "a.B.c:1 84\n", "good lines stored");
    let (status, body, _) = write(&svc, "db=x", "cpu value=1.1.1\ncpu,host=a,host=b value=1i\n").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"unable to parse 'cpu value=1.1.1': invalid number\nunable to parse 'cpu,host=a,host=b value=1i': duplicate tags"}"#
    );
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"influx\",reason=\"invalid_boolean\"}").await, 1.0);
    assert_eq!(svc.metric("stackd_lines_rejected_total{protocol=\"influx\",reason=\"duplicate_tags\"}").await, 1.0);
    assert_eq!(write(&svc, "db=x", "").await.0, 204, "empty body");
    assert_eq!(write(&svc, "", IJ01).await.1, r#"{"error":"database is required"}"#);
    assert_eq!(write(&svc, "db=x&precision=y", IJ01).await.1, r#"{"error":"invalid precision \"y\" (use n, ns, u, us, ms, s, m or h)"}"#);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_write_api() {
    let svc = Service::start(&[]).await;
    let post = |q: &str, body: &'static str| {
        svc.client.post(svc.url(&format!("/api/v2/write?{q}"))).header("Authorization", "Token abc").body(body).send()
    };
    let r = svc
        .client
        .post(svc.url("/api/v2/write?org=o&bucket=profiler&precision=ms"))
        .header("Authorization", "Token abc")
        .body(recent("cpu.trace.a-B-c-1,prefix=p value=2i 1500000000123\n"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 204);
    let r = post("org=o&precision=ms", "x").await.expect("POST");
    assert_eq!((r.status().as_u16(), r.headers()["X-Platform-Error-Code"].to_str().expect("ascii").to_string()), (404, "not found".into()));
    assert_eq!(r.text().await.expect("body"), r#"{"code":"not found","message":"bucket not found"}"#);
    let r = post("bucket=b&precision=n", "x").await.expect("POST");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (400, r#"{"code":"invalid","message":"invalid precision; valid precision units are ns, us, ms, and s"}"#.into())
    );
    let r = post("bucket=b", "cpu.trace.a-B-c-1,prefix=p value=1\nbad").await.expect("POST");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (400, r#"{"code":"invalid","message":"1 lines written, 1 rejected: unable to parse 'bad': missing fields"}"#.into())
    );
    assert_eq!(svc.get_text("/flamegraph/p.folded").await.1, "a.B.c:1 3\n");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_and_query_for_wrapper_scripts() {
    let svc = Service::start(&[]).await;
    let r = svc.get("/ping").await;
    assert_eq!(r.status(), 204);
    assert!(r.headers()["X-Influxdb-Version"].to_str().expect("ascii").starts_with("1.8.10-stackd-"));
    assert_eq!(r.headers()["X-Influxdb-Build"], "OSS");
    assert_eq!(svc.client.head(svc.url("/ping")).send().await.expect("HEAD").status(), 204);
    let verbose: serde_json::Value = svc.get("/ping?verbose=true").await.json().await.expect("json");
    assert!(verbose["version"].as_str().expect("version").starts_with("1.8.10"));

    let query = |q: &'static str| svc.client.post(svc.url("/query")).form(&[("q", q)]).send();
    let r = query("CREATE DATABASE profiler").await.expect("POST");
    assert_eq!(r.text().await.expect("body"), r#"{"results":[{"statement_id":0}]}"#);
    let r = query("CREATE USER profiler WITH PASSWORD 'profiler' WITH ALL PRIVILEGES").await.expect("POST");
    assert_eq!(r.text().await.expect("body"), r#"{"results":[{"statement_id":0}]}"#);
    let r = svc.get("/query?q=CREATE%20DATABASE%20%22other%22%3BSHOW%20DATABASES").await;
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"results":[{"statement_id":0},{"series":[{"columns":["name"],"name":"databases","values":[["other"],["profiler"]]}],"statement_id":1}]}"#
    );
    let r = svc.get("/query").await;
    assert_eq!((r.status().as_u16(), r.text().await.expect("body")), (400, r#"{"error":"missing required parameter \"q\""}"#.into()));
    let r = svc.get("/query?q=SELECT%20*%20FROM%20cpu").await;
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(v["results"][0]["error"].as_str().expect("error").starts_with("stackd does not run queries: SELECT * FROM cpu"));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uber_stacktrace_measurement() {
    let svc = Service::start(&[]).await;
    let body = r#"Stacktrace,processUuid=3c2ec835 count=3i,endEpoch=1515627003374i,host="machine01",name="24103@machine01",appId="application_1576797426048_311346",stacktrace="java.lang.Thread.sleep,com.uber.profiling.examples.HelloWorldApplication.main",startEpoch=1515627002374i,tag="mytag",threadName="main",threadState="TIMED_WAITING" 1515627003374000000
Stacktrace,processUuid=3c2ec835 count=2i,host="machine01",name="24103@machine01",tag="mytag",stacktrace="a.B.c,a.B.main",threadState="RUNNABLE" 1515627003374000000
"#;
    assert_eq!(write(&svc, "db=metrics&rp=autogen&precision=n&consistency=all", recent(body)).await.0, 204);
    assert_eq!(
        svc.get_text("/flamegraph/application_1576797426048_311346.folded").await.1,
        "com.uber.profiling.examples.HelloWorldApplication.main;java.lang.Thread.sleep 3\n"
    );
    assert_eq!(svc.get_text("/flamegraph/mytag.folded?thread_state=RUNNABLE").await.1, "a.B.main;a.B.c 2\n");
    svc.stop().await;
}
