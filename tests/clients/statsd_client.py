"""Send profiler metrics through the `statsd` client library from PyPI.

usage: statsd_client.py HOST PORT PREFIX
"""
import sys

import statsd

host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = statsd.StatsClient(host, port, prefix=prefix)
stack = "cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12"
client.gauge(stack, 3)
client.gauge(stack, 2)
client.gauge("heap.total.used", 123456789)
client.gauge("nonheap.total.max", -1)  # the client sends 0 then -1, like java-statsd-client
client.gauge("cpu.jvm", 12.5)
client.incr("not.a.profiler.metric")
with client.pipeline() as pipe:  # several lines in one datagram
    pipe.gauge("cpu.trace.a-B-c-1", 4)
    pipe.gauge("gc.G1_Young_Generation.count", 5)
