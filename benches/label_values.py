"""How long stackd takes to take in new label values: 30,000 datagrams from 30,000 new executors,
then 30,000 more, each batch timed until stackd has processed it. Each new executor is a new
label set; a cost that grows with the number of label sets shows as a slower second batch.

usage: python3 benches/label_values.py STATSD_PORT HTTP_PORT
against: stackd --prefix-labels SKIP.app.executor --max-label-values 100000
"""
import socket
import sys
import time
import urllib.request

statsd, http = int(sys.argv[1]), int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def processed():
    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
    line = next(l for l in text.splitlines() if l.startswith("stackd_udp_datagrams_processed_total "))
    return float(line.split()[1])


sent = processed()
for batch in range(2):
    started = time.time()
    for i in range(30_000):
        executor = batch * 30_000 + i
        sock.sendto(f"spark.labels.{executor}.cpu.trace.a-b-1:1|g".encode(), ("127.0.0.1", statsd))
        sent += 1
        if i % 200 == 0:
            time.sleep(0.002)  # stay under the kernel buffer
    while processed() < sent:
        time.sleep(0.01)
    print(f"executors {batch * 30_000}..{batch * 30_000 + 30_000}: {time.time() - started:.2f} s")
