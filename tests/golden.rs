//! Golden files: the SVG, folded and JSON that stackd serves for one fixed input, compared byte
//! for byte with `tests/golden/`. After an intended change of output, regenerate them with
//!
//! ```text
//! BLESS=1 cargo test --test golden
//! ```
//!
//! and review the diff like any other change.

mod common;

use common::{agent_stack_name, jfr_fixture, parse_folded, Service};

/// The fixed input: the real-JVM fixture as statsd-jvm-profiler's InfluxDB reporter sends it,
/// and Uber jvm-profiler points whose frames hold what must be escaped in every format (markup,
/// a control character, a `;`, a space before digits, a quote).
fn body() -> String {
    let mut body = String::new();
    for (stack, count) in parse_folded(&jfr_fixture()) {
        let frames: Vec<&str> = stack.split(';').collect();
        let name = agent_stack_name(&frames).replace(' ', "\\ ");
        body.push_str(&format!("{name},hostname=worker-1,jvmName=4242@worker-1,pid=4242,prefix=golden value={count}i\n"));
    }
    for (stacktrace, count) in [
        (r#"<script>alert(1)</script>,a&b,java.lang.Thread.run"#, 3),
        ("x\u{1}y;z,java.lang.Thread.run", 2),
        (r#"frame 12,say \"hi\",java.lang.Thread.run"#, 5),
    ] {
        body.push_str(&format!("Stacktrace count={count}i,appId=\"golden\",stacktrace=\"{stacktrace}\"\n"));
    }
    body
}

/// Compare `got` with `tests/golden/<name>`, or write it there when `BLESS` is set.
fn check(name: &str, got: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("tests/golden");
        std::fs::write(&path, got).expect("write golden file");
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; create it with BLESS=1 cargo test --test golden", path.display()));
    if want != got {
        let at = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
        let context = |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(80)..(at + 80).min(b.len())]).into_owned();
        panic!(
            "{name} differs from {} at byte {at} ({} bytes expected, {} served)\nexpected: …{}…\nserved:   …{}…\nIf the change is intended: BLESS=1 cargo test --test golden",
            path.display(),
            want.len(),
            got.len(),
            context(&want),
            context(got)
        );
    }
}

#[tokio::test]
async fn outputs_match_the_golden_files() {
    let svc = Service::start(&[]).await;
    let r = svc.client.post(svc.url("/write?db=profiler")).body(body()).send().await.expect("POST");
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    for (file, content_type) in
        [("golden.svg", "image/svg+xml"), ("golden.folded", "text/plain; charset=utf-8"), ("golden.json", "application/json")]
    {
        let r = svc.get(&format!("/flamegraph/{file}")).await;
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], content_type, "{file}");
        check(file, &r.bytes().await.expect("body"));
    }
    svc.stop().await;
}

/// Each render option, and a differential graph, on the same input: one golden file each.
#[tokio::test]
async fn render_options_match_the_golden_files() {
    let svc = Service::start(&[]).await;
    let r = svc.client.post(svc.url("/write?db=profiler")).body(body()).send().await.expect("POST");
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    for (file, query) in [
        ("golden-width.svg", "width=800"),
        ("golden-minwidth.svg", "minwidth=2"),
        ("golden-inverted.svg", "inverted=true"),
        ("golden-reverse.svg", "reverse=true"),
        ("golden-colors-hot.svg", "colors=hot"),
        ("golden-hash-package.svg", "hash=package"),
        ("golden-hash-off.svg", "hash=false"),
        ("golden-include.svg", "include=%5EWorkload%5C%24Parser"),
        ("golden-exclude.svg", "exclude=%5Ejava%5C.util"),
        ("golden-lines-false.svg", "lines=false"),
        ("golden-max-depth.svg", "max_depth=3"),
        ("golden-title.svg", "title=Custom%20%3Ctitle%3E"),
        // The JFR stacks (host worker-1) against everything the app holds.
        ("golden-diff.svg", "host=worker-1&base.host=*"),
        ("golden-diff.folded", "host=worker-1&base.host=*"),
    ] {
        let ext = file.rsplit_once('.').map_or("svg", |(_, e)| e);
        let r = svc.get(&format!("/flamegraph/golden.{ext}?{query}")).await;
        assert_eq!(r.status(), 200, "{file}");
        check(file, &r.bytes().await.expect("body"));
    }
    svc.stop().await;
}
