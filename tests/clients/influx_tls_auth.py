"""Write over HTTPS with credentials, as a user with the InfluxDB 1.x client (`influxdb`) and
the 2.x client (`influxdb-client`) would: the certificate is verified against the test's CA, the
right credentials are accepted, and wrong ones get InfluxDB's 401.

usage: influx_tls_auth.py PORT CA_FILE USER PASSWORD
"""
import sys
import time

from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError
from influxdb_client import InfluxDBClient as V2Client
from influxdb_client.client.write_api import SYNCHRONOUS

port, ca, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tags = {"prefix": "spark.app-tls.1"}
point = {"measurement": "cpu.trace.a-B-c-1", "tags": tags, "fields": {"value": 2}, "time": time.time_ns()}

client = InfluxDBClient("localhost", port, user, password, "profiler", ssl=True, verify_ssl=ca)
assert client.ping().startswith("1.8.10-stackd-")
assert client.write_points([point], time_precision="n")

wrong = InfluxDBClient("localhost", port, user, password + "x", "profiler", ssl=True, verify_ssl=ca)
try:
    wrong.write_points([point], time_precision="n")
    raise SystemExit("wrong credentials must be refused")
except InfluxDBClientError as e:
    assert e.code == 401 and "authorization failed" in str(e), (e.code, str(e))

with V2Client(url=f"https://localhost:{port}", token=f"{user}:{password}", org="-", ssl_ca_cert=ca) as v2:
    v2.write_api(write_options=SYNCHRONOUS).write(bucket="profiler", record="cpu.trace.a-B-c-1,prefix=spark.app-tls.1 value=3i")
print("ok")
