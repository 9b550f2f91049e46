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
    assert!(html.contains(" title=\""), "last seen carries its exact time: {html}");
    let older = html.find(">older<").expect("older");
    assert!(evil < older, "most recent first");
    assert!(
        html.contains(
            "<td><a class=app href=\"/app/spark.gauges-only.1\">spark.gauges-only.1</a> <span class=badge title=\"this app sends metrics but no stack samples\">metrics only</span>"
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
    // An unknown app: a page with the closest names, the way home and the setup page.
    let r = svc.get("/app/olde").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let page = r.text().await.expect("body");
    assert!(page.contains("<h1>No app named “olde”</h1>"), "{page}");
    assert!(page.contains("<ul class=suggestions>\n<li><a href=\"/app/older\">older</a></li>\n</ul>"), "{page}");
    assert!(page.contains("<a href=\"/\">All apps</a>") && page.contains("<a href=\"/setup\">"), "{page}");
    let r = svc.get("/app/%3Cscript%3Exyz").await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.expect("body");
    assert!(page.contains("No app named “&lt;script&gt;xyz”") && page.contains("No app has a name close to it."), "{page}");
    // Other unknown paths: a page for a browser, text for everything else.
    let r = svc.client.get(svc.url("/nothing/here")).header("accept", "text/html,*/*").send().await.expect("GET");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("<h1>Nothing at /nothing/here</h1>"));
    assert_eq!(svc.get_text("/nothing/here").await, (404, "not found; see / for what stackd serves\n".to_string()));
    let (status, setup) = svc.get_text("/setup").await;
    assert_eq!(status, 200);
    assert!(
        setup.contains("<h1>Send profiles to stackd</h1>")
            && setup.contains("/import/jfr?app=")
            && setup.contains("PYROSCOPE_SERVER_ADDRESS")
    );
    assert_eq!(svc.get("/ui/setup.js").await.status(), 200);
    // /metrics?app= keeps that app's series.
    let (status, metrics) = svc.get_text("/metrics?app=spark.gauges-only.1").await;
    assert_eq!(status, 200);
    let samples: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!samples.is_empty() && samples.iter().all(|l| l.contains("app=\"spark.gauges-only.1\"")), "{metrics}");
    let helps = metrics.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert!(helps >= 1 && helps <= samples.len(), "each family kept has its HELP line: {metrics}");
    let (_, all) = svc.get_text("/metrics").await;
    assert!(all.lines().filter(|l| !l.starts_with('#')).count() > samples.len(), "the filter left other apps' series out");
    let js = svc.get("/ui/app.js").await;
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.expect("js").contains("textContent"));
    assert_eq!(svc.get("/ui/style.css").await.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(svc.get("/ui/nothing.js").await.status(), 404);
    svc.stop().await;
}

/// The explorer's `.tree` format against the folded text of the same selection: the root's
/// total, every level's totals adding up, each function's self and total, the sandwich; label
/// matchers with several values and negation.
#[tokio::test]
async fn tree_format_and_label_matchers() {
    let svc = Service::start(&[]).await;
    import(&svc, "app=t&executor=1", "main;parse 30\nmain;parse;split 10\nmain;compute;parse 50\n").await;
    import(&svc, "app=t&executor=2", "main;parse 5\nmain;io 7\n").await;
    import(&svc, "app=t&executor=driver", "driver;plan 11\n").await;
    let tree = |q: &'static str| {
        let svc = &svc;
        async move {
            let (status, body) = svc.get_text(&format!("/flamegraph/t.tree{q}")).await;
            assert_eq!(status, 200, "{q}: {body}");
            serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
        }
    };
    let a = tree("").await;
    let names: Vec<&str> = a["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("a name")).collect();
    assert_eq!(a["total"], 113);
    let level = |a: &serde_json::Value, key: &str, l: usize| -> Vec<(String, u64, u64, u64)> {
        let names: Vec<String> = a["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("name").to_string()).collect();
        let flat: Vec<u64> = a[key]["levels"][l].as_array().expect("level").iter().map(|v| v.as_u64().expect("u64")).collect();
        flat.chunks(5).map(|n| (names[n[3] as usize].clone(), n[0], n[1], n[2])).collect()
    };
    assert_eq!(level(&a, "tree", 0), [("all".to_string(), 0, 113, 0)]);
    assert_eq!(level(&a, "tree", 1), [("driver".to_string(), 0, 11, 0), ("main".to_string(), 11, 102, 0)]);
    assert_eq!(
        level(&a, "tree", 2),
        [
            ("plan".to_string(), 0, 11, 11),
            ("compute".to_string(), 11, 50, 0),
            ("io".to_string(), 61, 7, 7),
            ("parse".to_string(), 68, 45, 35)
        ]
    );
    let functions: Vec<(String, u64, u64)> = a["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|r| (names[r[0].as_u64().expect("id") as usize].to_string(), r[1].as_u64().expect("self"), r[2].as_u64().expect("total")))
        .collect();
    assert_eq!(functions[0], ("parse".to_string(), 85, 95));
    assert!(functions.contains(&("main".to_string(), 0, 102)) && functions.contains(&("split".to_string(), 10, 10)));
    assert_eq!(a["functions_count"], 7);
    // The sandwich of parse: its callers (main 45, compute 50) and callees (split 10).
    let s = tree("?focus=parse").await;
    let focus = &s["focus"];
    let sub = |key: &str, l: usize| -> Vec<(String, u64)> {
        let names: Vec<String> = s["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("name").to_string()).collect();
        let flat: Vec<u64> = focus[key]["levels"][l].as_array().expect("level").iter().map(|v| v.as_u64().expect("u64")).collect();
        flat.chunks(5).map(|n| (names[n[3] as usize].clone(), n[1])).collect()
    };
    assert_eq!(sub("callers", 0), [("parse".to_string(), 95)]);
    assert_eq!(sub("callers", 1), [("compute".to_string(), 50), ("main".to_string(), 45)]);
    assert_eq!(sub("callees", 1), [("split".to_string(), 10)]);
    // Matchers: several values, negation, as the timeline and the graph take them.
    for (q, want) in [("executor=1,2", 102u64), ("executor!=driver", 102), ("executor!=1,driver", 12), ("executor=2&executor=driver", 23)] {
        let (status, body) = svc.get_text(&format!("/apps/t/timeline?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["total"], want, "{q}");
        let (_, folded) = svc.get_text(&format!("/flamegraph/t.folded?{q}")).await;
        let sum: u64 = folded.lines().map(|l| l.rsplit_once(' ').expect("count").1.parse::<u64>().expect("n")).sum();
        assert_eq!(sum, want, "{q}");
    }
    // A diff in the tree format carries the baseline's figures too.
    let d = tree("?executor=2&base.executor=1").await;
    assert_eq!((d["total"].as_u64(), d["base_total"].as_u64()), (Some(12), Some(90)));
    assert_eq!(d["tree"]["levels"][0], serde_json::json!([0, 12, 0, 0, 0, 90, 0]));
    svc.stop().await;
}
