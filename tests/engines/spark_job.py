"""A small Spark job with the StatsdSink (period 1 s) pointed at stackd, and the driver JVM
under the JDK's Flight Recorder (no agent jar), as the README gives both: run by tests/spark.rs.

Usage: spark_job.py <statsd port> <ui port> <jfr file>. Prints one JSON line with what Spark
itself reports for the job (application id, completed tasks per its executor Prometheus
endpoint, succeeded jobs and the stages' run and CPU time per its REST API), dumps the driver's recording to <jfr file> (with
jcmd, so that the file is whole when this script ends), then stops Spark.
"""
import json
import subprocess
import sys
import time
import urllib.request

from pyspark.sql import SparkSession

statsd_port, ui_port, jfr_file = sys.argv[1], sys.argv[2], sys.argv[3]
spark = (
    SparkSession.builder.master("local[2]")
    .appName("stackd-spark-test")
    # The lines the README gives, as spark-submit --conf / spark-defaults.conf keys.
    .config("spark.metrics.conf.*.sink.statsd.class", "org.apache.spark.metrics.sink.StatsdSink")
    .config("spark.metrics.conf.*.sink.statsd.host", "127.0.0.1")
    .config("spark.metrics.conf.*.sink.statsd.port", statsd_port)
    .config("spark.metrics.conf.*.sink.statsd.period", "1")
    .config("spark.metrics.conf.*.source.jvm.class", "org.apache.spark.metrics.source.JvmSource")
    .config("spark.ui.port", ui_port)
    .config("spark.port.maxRetries", "0")
    .config("spark.driver.extraJavaOptions", "-XX:StartFlightRecording=name=stackd,settings=profile")
    .getOrCreate()
)
try:
    sc = spark.sparkContext
    for _ in range(3):
        sc.parallelize(range(100000), 4).map(lambda x: x * x).sum()
    # Three sink periods, so that stackd has the final values.
    time.sleep(3)
    ui = f"http://127.0.0.1:{ui_port}"
    app = sc.applicationId
    prom = urllib.request.urlopen(f"{ui}/metrics/executors/prometheus", timeout=10).read().decode()
    completed = None
    for line in prom.splitlines():
        if line.startswith("metrics_executor_completedTasks_total{") and 'executor_id="driver"' in line:
            completed = float(line.rsplit(" ", 1)[1])
    jobs = json.load(urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/jobs", timeout=10))
    succeeded = sum(1 for j in jobs if j["status"] == "SUCCEEDED")
    # The stages' task time, as Spark's REST API reports it: run time in ms, CPU time in ns.
    stages = json.load(urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/stages", timeout=10))
    run_time_ms = sum(s["executorRunTime"] for s in stages)
    cpu_time_ns = sum(s["executorCpuTime"] for s in stages)
    pid = sc._jvm.java.lang.ProcessHandle.current().pid()
    subprocess.run(["jcmd", str(pid), "JFR.dump", "name=stackd", f"filename={jfr_file}"], check=True, capture_output=True, timeout=60)
    print(json.dumps({"app": app, "completed_tasks": completed, "succeeded_jobs": succeeded,
                      "run_time_ms": run_time_ms, "cpu_time_ns": cpu_time_ns}), flush=True)
finally:
    spark.stop()
