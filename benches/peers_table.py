#!/usr/bin/env python3
"""The table of benches/peers.sh: medians over rounds, ratios against the peers of the same run,
and the checks that stackd stored what it answered and received (exit status 1 otherwise)."""

import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
failures = []


def median(values):
    return statistics.median(values) if values else float("nan")


def pick(what, peer, **match):
    return [r for r in rows if r["what"] == what and r["peer"] == peer and all(r.get(k) == v for k, v in match.items())]


print()
print("| measurement | peer | stackd | stackd / peer |")
print("|---|---|---|---|")
BODIES = {
    "mix": "the realistic mix: 200 executors of 7 apps, 1,000 different bodies of",
    "late": "the realistic mix, 30 minutes late:",
    "workload": "one body repeated:",
    "spark": "one body repeated:",
}
KIND = {"mix": "Spark executors'", "late": "Spark executors'", "workload": "a small JVM program's", "spark": "Spark executors'"}
for body, conns in [(b, c) for b in BODIES for c in (4, 32)]:
    influx = pick("write", "influxdb", connections=conns, body=body)
    ours = pick("write", "stackd", connections=conns, body=body)
    if not ours:
        continue
    for r in ours:
        w = r["wrk"]
        answered = (w["requests"] - w["non2xx"]) * r["lines_per_body"]
        # wrk stops with up to one request per connection in flight: stored, not counted.
        if not (answered <= r["stored_lines"] <= answered + conns * r["lines_per_body"]) or w["non2xx"]:
            failures.append(f"/write {body} {conns} connections: {answered} lines answered 2xx, {r['stored_lines']} stored, {w['non2xx']} non-2xx")
    rate = lambda rs: median([r["wrk"]["requests"] / r["wrk"]["seconds"] for r in rs])
    p99 = lambda rs: median([r["wrk"]["p99_ms"] for r in rs])
    a, b = rate(influx), rate(ours)
    size = f"{BODIES[body]} {ours[0]['lines_per_body']} lines of {KIND[body]} stacks, {ours[0]['body_bytes'] / 1000:.0f} KB"
    print(f"| `/write` req/s ({size}), wrk 1 thread, {conns} connections | InfluxDB 1.6: {a:,.0f} (p99 {p99(influx):.1f} ms) | {b:,.0f} (p99 {p99(ours):.1f} ms) | **{b / a:.1f}×** |")

for conns in (4, 32):
    live, late = pick("write", "stackd", connections=conns, body="mix"), pick("write", "stackd", connections=conns, body="late")
    if live and late:
        rate = lambda rs: median([r["wrk"]["requests"] / r["wrk"]["seconds"] for r in rs])
        print(f"| `/write`, the mix 30 minutes late against live, {conns} connections | | {rate(late):,.0f} vs {rate(live):,.0f} req/s | **{rate(late) / rate(live):.2f}×** |")

influx, ours = pick("burst", "influxdb"), pick("burst", "stackd")
for r in ours:
    if r["load"]["requests_failed"] or not r["load"].get("verify", {}).get("ok"):
        failures.append(f"burst: {r['load']}")
if ours:
    answered = lambda rs: median([r["load"]["burst_answered_ms"]["p50"] for r in rs])
    worst = lambda rs: median([r["load"]["burst_answered_ms"]["max"] for r in rs])
    p99 = lambda rs: median([r["load"]["latency_ms"]["p99"] for r in rs])
    a, b = answered(influx), answered(ours)
    n = ours[0]["load"]["executors"]
    print(f"| burst: the mix's {n} executors flushing at once every second, ms until all are answered (median burst; slowest) | "
          f"InfluxDB 1.6: {a:,.1f} ms; {worst(influx):,.1f} ms (request p99 {p99(influx):.1f} ms) | {b:,.1f} ms; {worst(ours):,.1f} ms (request p99 {p99(ours):.1f} ms) | **{a / b:.1f}×** faster |")

null = pick("udp", "null", rate=0)
ours = pick("udp", "stackd", rate=0)
etsy = pick("udp", "etsy", rate=0)
for r in pick("udp", "stackd"):
    if not r["load"].get("verify", {}).get("ok"):
        failures.append(f"UDP at {r['rate'] or 'flat out'}: {r['load'].get('verify')}")
ceiling = median([r["receiver"]["received"] / r["load"]["seconds"] for r in null])
received = median([r["load"]["verify"]["udp_received"] / r["load"]["seconds"] for r in ours])
stored = median([r["load"]["verify"]["udp_stored"] / r["load"]["seconds"] for r in ours])
sent_null = median([r["load"]["udp_sent_per_s"] for r in null])
sent_ours = median([r["load"]["udp_sent_per_s"] for r in ours])
print(f"| UDP flat out, datagrams/s received | null receiver: {ceiling:,.0f} (of {sent_null:,.0f} sent) | {received:,.0f} received, {stored:,.0f} stored (of {sent_ours:,.0f} sent) | **{received / ceiling:.2f}×** the ceiling |")
loss = lambda r, got: 1 - got / r["load"]["udp_sent"] if r["load"]["udp_sent"] else float("nan")
etsy_loss = median([loss(r, r["received"]) for r in etsy])
our_loss = median([loss(r, r["load"]["verify"]["udp_stored"]) for r in ours])
print(f"| UDP flat out, share of sent datagrams lost | Etsy statsd: {etsy_loss:.1%} | {our_loss:.2%} | |")
for rate in sorted({r["rate"] for r in rows if r["what"] == "udp" and r["rate"]}):
    ours = pick("udp", "stackd", rate=rate)
    etsy = pick("udp", "etsy", rate=rate)
    sent = median([r["load"]["udp_sent_per_s"] for r in ours])
    print(f"| UDP at {rate:,}/s ({sent:,.0f}/s sent), lost | Etsy statsd: {median([loss(r, r['received']) for r in etsy]):.2%} | "
          f"{median([loss(r, r['load']['verify']['udp_stored']) for r in ours]):.3%} | |")

print()
if failures:
    print("CHECK FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print(f"checks: every line answered 2xx and every datagram stackd received is in its store ({len(rows)} measurements)")
