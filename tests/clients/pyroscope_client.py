"""Profile this script with the real Pyroscope Python client (pyroscope-io, py-spy inside) and
push to the server given: tests/pyroscope.rs asserts on what stackd then shows.

usage: pyroscope_client.py <server address> <application name> <seconds>
"""
import sys
import time

import pyroscope

server, app, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
pyroscope.configure(application_name=app, server_address=server, tags={"role": "driver"}, upload_interval=1)


def crunch_numbers(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def shuffle_stage():
    end = time.time() + seconds
    while time.time() < end:
        with pyroscope.tag_wrapper({"stage": "shuffle"}):
            crunch_numbers(100000)


shuffle_stage()
pyroscope.shutdown()
print("done")
