//! What the explorer is built on, over HTTP: differential flame graphs with exact per-frame
//! deltas, render options and their errors, `/apps/<app>/timeline`, the index and the app page.

mod common;

use common::{now_ms, Service};

/// Two profiles with known counts: `before` (100 samples) and `after` (200).
const BEFORE: &str = "main;parse 30\nmain;parse;split 10\nmain;compute 50\nmain;gc 10\n";
const AFTER: &str = "main;parse 30\nmain;parse;split 60\nmain;compute 100\nmain;io 10\n";

async fn import(svc: &Service, query: &str, body: &str) {
    let r = svc.client.post(svc.url(&format!("/import/folded?{query}"))).body(body.to_string()).send().await.expect("POST");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// The `<title>` of every frame of an SVG.
fn titles(svg: &str) -> Vec<String> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
    let doc = roxmltree::Document::parse_with_options(svg, options).expect("valid XML");
    doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).map(str::to_string).collect()
}

#[tokio::test]
async fn diff_of_two_known_profiles_has_exact_deltas() {
    let svc = Service::start(&[]).await;
    let (t1, t2) = (now_ms() - 2 * 3_600_000, now_ms() - 3_600_000);
    import(&svc, &format!("app=d&time={t1}&run=before&job=x"), BEFORE).await;
    import(&svc, &format!("app=d&time={t2}&run=after&job=x"), AFTER).await;

    // Baseline scaled to the current total (×2), then both columns per stack.
    let want = "main;compute 100 100\nmain;gc 20 0\nmain;io 0 10\nmain;parse 60 30\nmain;parse;split 20 60\n";
    let (status, by_label) = svc.get_text("/flamegraph/d.folded?run=after&base.run=before").await;
    assert_eq!((status, by_label.as_str()), (200, want));
    // The same two periods chosen by time instead of label.
    let by_time = format!("/flamegraph/d.folded?from={}&to={}&base.from={}&base.to={}", t2 - 60_000, t2 + 60_000, t1 - 60_000, t1 + 60_000);
    assert_eq!(svc.get_text(&by_time).await, (200, want.to_string()));
    // Raw counts on request.
    let raw = svc.get_text("/flamegraph/d.folded?run=after&base.run=before&normalize=false").await.1;
    assert_eq!(raw, "main;compute 50 100\nmain;gc 10 0\nmain;io 0 10\nmain;parse 30 30\nmain;parse;split 10 60\n");
    // `*` drops the label from the baseline: all 300 samples, scaled to 200.
    let all = svc.get_text("/flamegraph/d.folded?run=after&base.run=*&normalize=false").await.1;
    assert_eq!(all, "main;compute 150 100\nmain;gc 10 0\nmain;io 10 10\nmain;parse 60 30\nmain;parse;split 70 60\n");

    // The SVG: widths are the current profile; each frame's change (colour, and percentage in its
    // title) is that of its own samples, in points of the total, as inferno and flamegraph.pl
    // draw differentials: parse itself went from 60 (scaled) to 30 of 200 (-15 points) while
    // its child split went from 20 to 60 (+20).
    let (status, svg) = svc.get_text("/flamegraph/d.svg?run=after&base.run=before").await;
    assert_eq!(status, 200, "{svg}");
    let titles = titles(&svg);
    for want in [
        "all (200 samples, 100%)",
        "main (200 samples, 100.00%; 0.00%)",
        "compute (100 samples, 50.00%; 0.00%)",
        "parse (90 samples, 45.00%; -15.00%)",
        "split (60 samples, 30.00%; +20.00%)",
        "io (10 samples, 5.00%; +5.00%)",
    ] {
        assert!(titles.iter().any(|t| t == want), "{want:?} not among {titles:?}");
    }
    assert!(svg.contains("d (differential)"), "diff title");
    assert!(svg.contains("[run=after]: 200 samples against the baseline"), "legend names both selections");

    // Errors: JSON has no diff; a baseline with no data says so.
    let (status, body) = svc.get_text("/flamegraph/d.json?run=after&base.run=before").await;
    assert_eq!(status, 400);
    assert!(body.contains("not .json"), "{body}");
    let (status, body) = svc.get_text("/flamegraph/d.svg?run=after&base.run=nope").await;
    assert_eq!(status, 404);
    assert!(body.starts_with("baseline: no data for app \"d\" with run=nope"), "{body}");
    let (status, body) = svc.get_text("/flamegraph/d.svg?base.from=now&base.to=-1h").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("base.from ("), "{body}");
    svc.stop().await;
}

#[tokio::test]
async fn render_options_change_the_output_and_bad_ones_are_named() {
    let svc = Service::start(&[]).await;
    import(&svc, "app=o&executor=1", "T.run:1;A.f:10;L.leaf:3 2\nT.run:1;A.f:11 3\nT.run:1;B.g:7 5\n").await;
    let folded = |q: &'static str| {
        let svc = &svc;
        async move { svc.get_text(&format!("/flamegraph/o.folded?{q}")).await }
    };
    assert_eq!(folded("lines=false").await.1, "T.run;A.f 3\nT.run;A.f;L.leaf 2\nT.run;B.g 5\n");
    assert_eq!(folded("include=%5EA%5C.").await.1, "T.run:1;A.f:10;L.leaf:3 2\nT.run:1;A.f:11 3\n");
    assert_eq!(folded("exclude=A%5C.f").await.1, "T.run:1;B.g:7 5\n");
    assert_eq!(folded("max_depth=2").await.1, "T.run:1;A.f:10 2\nT.run:1;A.f:11 3\nT.run:1;B.g:7 5\n");
    assert_eq!(folded("reverse=true").await.1, "A.f:11;T.run:1 3\nB.g:7;T.run:1 5\nL.leaf:3;A.f:10;T.run:1 2\n");
    let (status, body) = folded("include=nothing-matches").await;
    assert_eq!(status, 404);
    assert!(body.contains("none of the 10 samples"), "{body}");

    // SVG options show in the SVG.
    let svg = |q: &'static str| {
        let svc = &svc;
        async move {
            let (status, body) = svc.get_text(&format!("/flamegraph/o.svg?{q}")).await;
            assert_eq!(status, 200, "{q}: {body}");
            body
        }
    };
    assert!(svg("width=640").await.contains("width=\"640\""));
    assert!(svg("inverted=true").await.contains("var inverted = true;"));
    assert!(svg("title=Mine").await.contains(">Mine<"));
    assert_ne!(svg("colors=hot").await, svg("").await, "a palette changes colours");
    assert_ne!(svg("hash=package").await, svg("").await, "colours by package");
    // The graph's own script state (search, zoom) is not a label.
    assert_eq!(svg("s=A&x=10&y=20").await, svg("").await);

    for (query, start) in [
        ("width=wide", "invalid width=\"wide\""),
        ("minwidth=-1", "invalid minwidth=\"-1\""),
        ("inverted=perhaps", "invalid inverted=\"perhaps\""),
        ("reverse=2", "invalid reverse=\"2\""),
        ("colors=rainbow", "invalid colors=\"rainbow\""),
        ("hash=class", "invalid hash=\"class\""),
        ("include=(", "invalid include=\"(\""),
        ("exclude=%5Ba", "invalid exclude=\"[a\""),
        ("lines=maybe", "invalid lines=\"maybe\""),
        ("max_depth=0", "invalid max_depth=\"0\""),
        ("normalize=x", "invalid normalize=\"x\""),
        ("from=yesterday", "invalid from:"),
        ("base.to=soon", "invalid base.to:"),
    ] {
        let (status, body) = svc.get_text(&format!("/flamegraph/o.svg?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.starts_with(start), "{query}: {body}");
    }
    svc.stop().await;
}

#[tokio::test]
async fn timeline_per_step_and_label() {
    let svc = Service::start(&[]).await;
    let hour = 3_600_000;
    let t0 = (now_ms() / hour - 3) * hour;
    import(&svc, &format!("app=t&executor=1&time={}", t0 + 60_000), "a;b 5\n").await;
    import(&svc, &format!("app=t&executor=1&time={}", t0 + hour + 120_000), "a;c 7\n").await;
    import(&svc, &format!("app=t&executor=2&time={}", t0 + hour + 60_000), "a;b 11\n").await;
    let (status, body) = svc.get_text(&format!("/apps/t/timeline?step=1h&from={t0}")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["bucket_ms"].as_i64(), v["step_ms"].as_i64(), v["total"].as_u64()), (Some(60_000), Some(hour), Some(23)));
    assert_eq!(v["series"], serde_json::json!([{ "total": 23, "points": [[t0, 5], [t0 + hour, 18]] }]));
    let v: serde_json::Value =
        serde_json::from_str(&svc.get_text(&format!("/apps/t/timeline?by=executor&from={t0}&to={}", t0 + 2 * hour)).await.1).expect("json");
    assert_eq!(v["step_ms"].as_i64(), Some(60_000), "two hours in minutes is under 600 steps");
    assert_eq!(
        v["series"],
        serde_json::json!([
            { "value": "1", "total": 12, "points": [[t0 + 60_000, 5], [t0 + hour + 120_000, 7]] },
            { "value": "2", "total": 11, "points": [[t0 + hour + 60_000, 11]] },
        ])
    );
    let v: serde_json::Value = serde_json::from_str(&svc.get_text("/apps/t/timeline?executor=2&step=1d").await.1).expect("json");
    assert_eq!(v["total"].as_u64(), Some(11));
    for (query, status, start) in [
        ("step=1s", 400, "invalid step: at least the bucket width"),
        ("step=often", 400, "invalid step=\"often\""),
        ("from=now&to=-1h", 400, "from ("),
        ("executor=9", 404, "no data for app \"t\" with executor=9; see /apps/<app>"),
    ] {
        let (got, body) = svc.get_text(&format!("/apps/t/timeline?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.starts_with(start), "{query}: {body}");
    }
    assert_eq!(svc.get_text("/apps/none/timeline").await.0, 404);
    svc.stop().await;
}

#[tokio::test]
async fn index_and_app_page_escape_names_and_sort_by_activity() {
    let svc = Service::start(&[]).await;
    let now = now_ms();
    import(&svc, &format!("app=older&time={}", now - 3_600_000), "a 1\n").await;
    import(&svc, "app=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "a 2\n").await;
    // An app that only sends JVM gauges.
    let gauge = "heap.total.used,hostname=h,jvmName=1@h,pid=1,prefix=spark.gauges-only.1 value=123.0\n";
    let r = svc.client.post(svc.url("/write?db=p")).body(gauge).send().await.expect("POST");
    assert_eq!(r.status(), 204);
    let r = svc.get("/").await;
    let csp = r.headers()["content-security-policy"].to_str().expect("ascii").to_string();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = r.text().await.expect("body");
    assert!(!html.contains("<img"), "markup from a name: {html}");
    let evil = html.find("&lt;img src=x onerror=alert(1)&gt;").expect("the name as text");
    let older = html.find(">older<").expect("older");
    assert!(evil < older, "most recent first");
    assert!(
        html.contains(
            "<td>spark.gauges-only.1 <span class=badge title=\"this app sends metrics but no stack samples\">metrics only</span>"
        ),
        "{html}"
    );
    assert!(html.contains("<a class=app href=\"/app/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\">"), "{html}");
    assert_eq!(html.matches("<svg class=spark").count(), 2, "a sparkline per app with samples");

    let r = svc.get("/app/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("content-security-policy"));
    let page = r.text().await.expect("body");
    assert!(page.contains("<title>&lt;img src=x onerror=alert(1)&gt; · stackd</title>"), "{page}");
    assert!(page.contains("<script src=\"/ui/app.js\"></script>") && !page.contains("<img"));
    assert_eq!(svc.get("/app/unknown").await.status(), 404);
    let js = svc.get("/ui/app.js").await;
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.expect("js").contains("textContent"));
    assert_eq!(svc.get("/ui/style.css").await.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(svc.get("/ui/nothing.js").await.status(), 404);
    svc.stop().await;
}
