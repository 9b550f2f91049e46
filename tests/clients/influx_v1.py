"""Drive stackd with the InfluxDB 1.x client library from PyPI (`influxdb`), the way wrapper
scripts drive a private InfluxDB: ping, create the database and a user, write points.

usage: influx_v1.py HOST PORT
"""
import sys
import time

from influxdb import InfluxDBClient

host, port = sys.argv[1], int(sys.argv[2])
client = InfluxDBClient(host, port, "profiler", "secret", "profiler")
version = client.ping()
assert version.startswith("1.8.10-stackd-"), version
client.create_database("profiler")
client.create_user("profiler", "profiler", admin=True)
assert {"name": "profiler"} in client.get_list_database(), client.get_list_database()
tags = {"hostname": "worker-1", "jvmName": "4242@worker-1", "pid": "4242", "prefix": "spark.app-py.3"}
now = time.time_ns()
points = [
    {"measurement": "cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12", "tags": tags, "fields": {"value": 3.0}, "time": now},
    {"measurement": "cpu.trace.com-example-FooTest-my test-10.java-lang-Thread-run-748", "tags": tags, "fields": {"value": 2}, "time": now},
    {"measurement": "heap.total.used", "tags": tags, "fields": {"value": 123456789.0}, "time": now + 10_001_000_000},
]
assert client.write_points(points, time_precision="n")
try:
    client.write_points([{"measurement": "cpu.trace.a-B-c-1", "tags": tags, "fields": {"value": -1.0}}])
    raise SystemExit("a negative count must be refused")
except Exception as e:  # influxdb.exceptions.InfluxDBClientError
    assert "stack sample count is negative" in str(e), e
print("ok")
