//! async-profiler's HTML flame graphs (what Flink's built-in profiler serves) uploaded to
//! `POST /import/async-profiler-html`: the real async-profiler 2.9 of the apache-flink wheel
//! (the one Flink runs) records a real JVM once and writes that one recording both as HTML and as
//! its own annotated collapsed stacks; what stackd stores from the HTML is exactly the collapsed
//! text (Java names with dots, as stackd has them), and its total is the root's width in the
//! HTML, read here independently. Malformed documents are refused whole, naming the line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ap_html::{comparable, merged, root_width};
use common::{parse_folded, Service, TempDir};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr")
}

#[tokio::test]
async fn one_recording_as_html_stores_what_async_profiler_collapses() {
    let dir = TempDir::new("ap-html");
    let work = &dir.0;
    std::fs::create_dir_all(work).expect("work dir");
    let (jar, lib) = common::async_profiler(work);
    let classpath = format!("{}:{}", jar.display(), work.display());
    let javac = Command::new("javac")
        .args(["-cp", &classpath, "-d"])
        .arg(work)
        .arg(fixtures().join("Workload.java"))
        .arg(fixtures().join("BothOutputs.java"))
        .status()
        .expect("javac");
    assert!(javac.success());
    let svc = Service::start(&[]).await;
    for (mode, args, ty) in [("itimer", "event=itimer,interval=1ms", "cpu"), ("alloc", "event=alloc,alloc=64k", "alloc_objects")] {
        let out = work.join(mode);
        let run = Command::new("timeout")
            .args(["120", "java", "-cp", &classpath, "BothOutputs"])
            .arg(&lib)
            .arg(&out)
            .arg(args)
            .output()
            .expect("java");
        assert!(run.status.success(), "{mode}: {}", String::from_utf8_lossy(&run.stderr));
        let html = std::fs::read_to_string(out.with_extension("html")).expect("html");
        let collapsed = std::fs::read_to_string(out.with_extension("collapsed")).expect("collapsed");
        let want = merged(parse_folded(&collapsed).into_iter().map(|(s, n)| (comparable(&s), n)));
        let width = root_width(&html);
        assert_eq!(want.values().sum::<u64>(), width, "{mode}: async-profiler's two outputs agree");
        assert!(width > 0, "{mode}: samples were taken");

        let app = format!("ap-{mode}");
        let r = svc
            .client
            .post(svc.url(&format!("/import/async-profiler-html?app={app}&type={ty}&taskmanager=tm-1")))
            .body(html)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 200, "{mode}: {}", r.text().await.unwrap_or_default());
        let answer: serde_json::Value = r.json().await.expect("JSON");
        assert_eq!(answer["samples"], width, "{mode}: {answer}");
        assert_eq!(answer["stacks"], want.len(), "{mode}: {answer}");
        let (status, folded) = svc.get_text(&format!("/flamegraph/{app}.folded?type={ty}&taskmanager=tm-1")).await;
        assert_eq!(status, 200, "{folded}");
        let stored = parse_folded(&folded);
        let got = merged(stored.iter().map(|(s, n)| (comparable(s), *n)));
        assert_eq!(got, want, "{mode}: stackd's stacks are async-profiler's own collapsed stacks");
        // Java frames carry their kind and dots; native and C++ frames are bare.
        let frames: Vec<&str> = stored.iter().flat_map(|(s, _)| s.split(';')).collect();
        assert!(frames.iter().any(|f| f.starts_with("Workload.main_[")), "the workload's own frames, annotated");
        assert!(frames.iter().filter(|f| f.ends_with("_[j]") || f.ends_with("_[i]")).all(|f| !f.contains('/')), "Java names with dots");
        if mode == "itimer" {
            assert!(frames.iter().any(|f| f.contains("::") && !f.ends_with(']')), "C++ frames of the JVM, bare");
        } else {
            // async-profiler's allocation leaves are the allocated classes.
            let leaves: Vec<&str> = stored.iter().filter_map(|(s, _)| s.rsplit(';').next()).collect();
            assert!(leaves.iter().any(|l| l.starts_with("byte[]")), "an allocated class as a leaf: {leaves:?}");
        }
    }
    svc.stop().await;
}

#[tokio::test]
async fn malformed_html_is_refused_whole_naming_the_line() {
    let svc = Service::start(&[]).await;
    for (body, want) in [
        (
            "f(0,0,10,3,'all')\nf(1,0,4,1,'a')\nf(1,2,4,1,'b')\n",
            "line 3: frame [2, 6) is not inside its parent [0, 10) after its left sibling",
        ),
        ("<html>\nf(0,0,10,3,'all')\nf(1,0,4,1,'a\n", "line 3: the name's quote is not closed"),
        ("<html><body>no graph</body></html>", "no flame graph frames"),
        ("<script>\nconst cpool = [\n'all'\n];\n", "async-profiler 3 or later"),
    ] {
        let r = svc.client.post(svc.url("/import/async-profiler-html?app=broken")).body(body.to_string()).send().await.expect("POST");
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.expect("body");
        assert!(text.contains(want), "{text} lacks {want:?}");
    }
    assert_eq!(svc.get_text("/apps/broken").await.0, 404, "nothing stored");
    svc.stop().await;
}
