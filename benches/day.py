#!/usr/bin/env python3
"""Send a day of one 50-executor Spark app to a stackd node, as /write bodies with timestamps.

    benches/day.py BODIES_DIR HOST:PORT [--hours 24] [--per-minute 10] [--pause-every 60 --pause 1.2]

BODIES_DIR comes from `stackd-load --print-bodies DIR --fixture spark --executors 50 --apps 1
--windows 5 --late 60`: per executor (its `prefix` tag) five bodies of 35 real Spark stacks,
each line stamped. For every minute of the last --hours hours, oldest first, --per-minute of the
executors (in turn, so each sends every 50 / per-minute minutes) send their next body with every
line restamped inside that minute. Every --pause-every minutes of data it waits --pause seconds,
so that the node cuts a segment there (--segment-interval 1s). Prints one JSON line: bodies,
lines, seconds.
"""
import argparse
import collections
import http.client
import json
import os
import re
import time

ap = argparse.ArgumentParser()
ap.add_argument("bodies")
ap.add_argument("addr")
ap.add_argument("--hours", type=int, default=24)
ap.add_argument("--per-minute", type=int, default=10)
ap.add_argument("--pause-every", type=int, default=60)
ap.add_argument("--pause", type=float, default=1.2)
a = ap.parse_args()

by_executor = collections.defaultdict(list)
for name in sorted(os.listdir(a.bodies)):
    if not name.startswith("body-"):
        continue
    with open(os.path.join(a.bodies, name), "rb") as f:
        body = f.read()
    prefix = re.search(rb"prefix=([^ ,]+)", body).group(1)
    # Each line: everything up to its timestamp, kept apart so that it can be restamped.
    by_executor[prefix].append([line.rsplit(b" ", 1)[0] for line in body.split(b"\n") if line])
executors = sorted(by_executor)
host, port = a.addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
now_min = int(time.time()) // 60
minutes = a.hours * 60
sent_bodies = sent_lines = 0
start = time.time()
for m in range(minutes):
    minute_ns = (now_min - minutes + m) * 60 * 1_000_000_000
    for k in range(a.per_minute):
        n = m * a.per_minute + k
        windows = by_executor[executors[n % len(executors)]]
        # The executor's next window: its stacks change from one send to the next.
        lines = windows[(n // len(executors)) % len(windows)]
        stamp = minute_ns + (k * 1_000_000_000)
        body = b"\n".join(b"%s %d" % (line, stamp + i) for i, line in enumerate(lines)) + b"\n"
        conn.request("POST", "/write?db=profiler", body, {"Content-Type": "text/plain"})
        r = conn.getresponse()
        answer = r.read()
        if r.status != 204:
            raise SystemExit(f"/write answered {r.status}: {answer[:300]!r}")
        sent_bodies += 1
        sent_lines += len(lines)
    if (m + 1) % a.pause_every == 0:
        time.sleep(a.pause)
print(json.dumps({"bodies": sent_bodies, "lines": sent_lines, "seconds": round(time.time() - start, 1)}))
