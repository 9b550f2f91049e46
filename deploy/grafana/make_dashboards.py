#!/usr/bin/env python3
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the panel lists below, so
that every panel has the same shape: a Prometheus query and a data link to the flame graph of the
same app, executor and time window on stackd's page. Run it after editing: python3 make_dashboards.py
tests/deploy.rs checks every expression with promtool and evaluates it on a real Prometheus."""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))

# A link from a series to its flame graph: same app (and executor, where the series has one),
# same window. ${stackd} is the dashboard's variable holding stackd's address as people reach it.
def link(executor=True):
    url = "${stackd}/app/${__field.labels.app}?from=${__from}&to=${__to}"
    if executor:
        url += "&executor=${__field.labels.executor}"
    return [{"title": "Flame graph of ${__field.labels.app} in this window", "url": url, "targetBlank": True}]

def panel(i, title, expr, unit, legend, links=None, x=0, y=0, w=12, h=8):
    p = {
        "id": i, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "links": links or []}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": "${datasource}"}}],
    }
    return p

def variables(app_family):
    vs = [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "stackd", "type": "textbox", "label": "stackd URL", "query": "http://stackd:8086",
         "current": {"text": "http://stackd:8086", "value": "http://stackd:8086"}},
    ]
    if app_family:
        for name, q in [("app", f"label_values({app_family}, app)"), ("executor", f'label_values({app_family}{{app=~"$app"}}, executor)')]:
            vs.append({"name": name, "type": "query", "label": name, "datasource": {"type": "prometheus", "uid": "${datasource}"},
                       "query": {"query": q, "refId": name}, "definition": q, "includeAll": True, "multi": True, "allValue": ".*",
                       "refresh": 2, "current": {"text": "All", "value": "$__all"}})
    return {"list": vs}

def dashboard(uid, title, description, panels, app_family):
    laid = []
    for n, (title_, expr, unit, legend, links) in enumerate(panels):
        laid.append(panel(n + 1, title_, expr, unit, legend, links, x=(n % 2) * 12, y=(n // 2) * 8))
    return {
        "uid": uid, "title": title, "description": description, "tags": ["stackd"],
        "schemaVersion": 39, "version": 1, "editable": True, "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s", "templating": variables(app_family), "panels": laid,
        "links": [{"title": "stackd", "url": "${stackd}/", "type": "link", "targetBlank": True}],
    }

SEL = 'app=~"$app",executor=~"$executor"'

SPARK = [
    ("Active tasks", f"sum by (app, executor) (spark_executor_threadpool_active_tasks{{{SEL}}})", "short", "{{app}} {{executor}}", link()),
    ("Tasks completed per second", f"sum by (app, executor) (rate(spark_executor_succeeded_tasks_total{{{SEL}}}[$__rate_interval]))", "ops", "{{app}} {{executor}}", link()),
    ("JVM heap used", f"spark_jvm_heap_used_bytes{{{SEL}}}", "bytes", "{{app}} {{executor}}", link()),
    ("Time in GC (share of wall time)", f"rate(spark_executor_jvm_gc_time_seconds_total{{{SEL}}}[$__rate_interval])", "percentunit", "{{app}} {{executor}}", link()),
    ("Task CPU (cores)", f"rate(spark_executor_cpu_time_seconds_total{{{SEL}}}[$__rate_interval])", "short", "{{app}} {{executor}}", link()),
    ("Task run time (tasks running, on average)", f"rate(spark_executor_run_time_seconds_total{{{SEL}}}[$__rate_interval])", "short", "{{app}} {{executor}}", link()),
    ("Shuffle read per second", f"sum by (app, executor) (rate(spark_executor_shuffle_total_bytes_read_total{{{SEL}}}[$__rate_interval]))", "Bps", "{{app}} {{executor}}", link()),
    ("Shuffle written per second", f"sum by (app, executor) (rate(spark_executor_shuffle_bytes_written_total{{{SEL}}}[$__rate_interval]))", "Bps", "{{app}} {{executor}}", link()),
    ("Jobs succeeded and failed", f'sum by (app) (spark_app_status_jobs_succeeded_jobs_total{{app=~"$app"}}) or sum by (app) (spark_app_status_jobs_failed_jobs_total{{app=~"$app"}})', "short", "{{app}}", link(False)),
    ("Storage memory used", f"spark_block_manager_memory_mem_used_bytes{{{SEL}}}", "bytes", "{{app}} {{executor}}", link()),
]

JVM = [
    ("Heap used", f'jvm_memory_bytes_used{{area="heap",{SEL}}}', "bytes", "{{app}} {{executor}}", link()),
    ("Heap used / max", f'jvm_memory_bytes_used{{area="heap",{SEL}}} / (jvm_memory_bytes_max{{area="heap",{SEL}}} > 0)', "percentunit", "{{app}} {{executor}}", link()),
    ("Non-heap used", f'jvm_memory_bytes_used{{area="nonheap",{SEL}}}', "bytes", "{{app}} {{executor}}", link()),
    ("GC time per second", f"sum by (app, executor, gc) (rate(jvm_gc_collection_seconds_sum{{{SEL}}}[$__rate_interval]))", "percentunit", "{{app}} {{executor}} {{gc}}", link()),
    ("Process CPU", f'jvm_cpu_load_ratio{{scope="process",{SEL}}}', "percentunit", "{{app}} {{executor}}", link()),
    ("Classes loaded", f"jvm_classes_loaded{{{SEL}}}", "short", "{{app}} {{executor}}", link()),
]

STACKD = [
    ("Lines accepted per second", "stackd:lines_accepted:rate5m", "ops", "{{instance}} {{protocol}}", None),
    ("Lines rejected per second", "stackd:lines_rejected:rate5m > 0", "ops", "{{protocol}} {{reason}}", None),
    ("Datagrams received and dropped by the kernel", "stackd:udp_datagrams:rate5m or sum by (instance) (rate(stackd_udp_kernel_drops_total[$__rate_interval]))", "ops", "{{instance}}", None),
    ("Limit hits", "sum by (instance, limit) (increase(stackd_limit_hits_total[$__rate_interval]))", "short", "{{limit}}", None),
    ("Samples per app", "sum by (app) (stackd_samples_total)", "short", "{{app}}", link(False)),
    ("Store flush time (p99)", "histogram_quantile(0.99, sum by (instance, le) (rate(stackd_store_flush_duration_seconds_bucket[$__rate_interval])))", "s", "{{instance}}", None),
    ("Resident memory", 'process_resident_memory_bytes{job="stackd"}', "bytes", "{{instance}}", None),
    ("Store size", "stackd_store_bytes", "bytes", "{{instance}}", None),
    ("HTTP requests per second", "sum by (instance, status) (rate(stackd_http_requests_total[$__rate_interval]))", "reqps", "{{status}}", None),
    ("Flink polls failing", "sum by (instance, endpoint, reason) (increase(stackd_flink_poll_errors_total[$__rate_interval]))", "short", "{{endpoint}} {{reason}}", None),
]

for name, d in [
    ("spark.json", dashboard("stackd-spark", "Spark applications (stackd)",
                             "Spark's own metrics (StatsdSink → stackd): executors, heap, GC, tasks, shuffle. Each series links to its flame graph.",
                             SPARK, "spark_executor_threadpool_active_tasks")),
    ("jvm.json", dashboard("stackd-jvm", "JVMs profiled by statsd-jvm-profiler (stackd)",
                           "The agents' JVM gauges, per app and executor. Each series links to its flame graph.", JVM, "jvm_memory_bytes_used")),
    ("stackd.json", dashboard("stackd-health", "stackd", "stackd's own health: what it takes in, refuses and stores.", STACKD, None)),
]:
    with open(os.path.join(HERE, "dashboards", name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
