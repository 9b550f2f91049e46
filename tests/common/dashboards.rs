//! The Grafana dashboards of deploy/grafana/dashboards/, read as Grafana would query them.

/// Every panel's query with the dashboard's variables as Grafana fills them when all values
/// are selected: `(dashboard, panel title, PromQL)`.
pub fn panel_queries() -> Vec<(String, String, String)> {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards"));
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dashboards").map(|e| e.expect("entry").path()).collect();
    files.sort();
    for path in files {
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let name = path.file_name().expect("name").to_string_lossy().to_string();
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr =
                    t["expr"].as_str().expect("expr").replace("$__rate_interval", "30s").replace("$app", ".*").replace("$executor", ".*");
                out.push((name.clone(), p["title"].as_str().expect("title").to_string(), expr));
            }
        }
    }
    out
}
