"""Send an agent-style flush burst: N datagrams of 1-6 KB, one distinct stack each, as fast as
Python can. Frames come from a vocabulary of 600 methods, as real stacks share most frames.

usage: burst.py HOST PORT PREFIX N
Prints the number of samples sent (the sum of the gauge values).
"""
import random
import socket
import sys

host, port, prefix, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = random.Random(42)
datagrams = []
total = 0
vocabulary = [
    "org-apache-spark-%s-%s%d-%s-%d" % (pkg, cls, k, method, line)
    for k, (pkg, cls, method, line) in enumerate(
        (rng.choice(["sql-execution", "rdd", "scheduler", "storage", "shuffle", "util-collection"]),
         rng.choice(["Exec", "Iterator", "Task", "Block", "Sorter", "Map"]),
         rng.choice(["run", "next", "hasNext", "apply", "write", "insertAll", "compute"]),
         rng.randint(1, 900))
        for _ in range(600))
]
seen = set()
while len(datagrams) < n:
    size = rng.randint(1000, 6000)
    frames = ["java-lang-Thread-run-748"]
    while sum(len(f) + 1 for f in frames) < size - 80:
        frames.append(rng.choice(vocabulary))
    key = tuple(frames)
    if key in seen:
        continue
    seen.add(key)
    value = rng.randint(1, 5)
    total += value
    # Leaf first, as the agent sends it.
    name = "%s.cpu.trace.%s" % (prefix, ".".join(reversed(frames)))
    datagrams.append(("%s:%d|g" % (name, value)).encode())
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
for d in datagrams:
    sock.send(d)
print(total)
