"""Write through the InfluxDB 2.x client library from PyPI (`influxdb-client`), gzip enabled.

usage: influx_v2.py URL
"""
import sys
import time

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

with InfluxDBClient(url=sys.argv[1], token="user:password", org="o", enable_gzip=True) as client:
    write = client.write_api(write_options=SYNCHRONOUS)
    point = (
        Point("cpu.trace.java-lang-Object-wait--2.java-lang-Thread-run-748")
        .tag("hostname", "worker-2")
        .tag("jvmName", "7@worker-2")
        .tag("pid", "7")
        .tag("prefix", "spark.app-v2.5")
        .field("value", 4)
        .time(time.time_ns() // 1_000_000, WritePrecision.MS)
    )
    write.write(bucket="profiler", record=point, write_precision=WritePrecision.MS)
    write.write(bucket="profiler", record="cpu.trace.a-B-c-1,prefix=spark.app-v2.5 value=1i")
print("ok")
