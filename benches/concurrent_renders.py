"""100 concurrent GETs of one flame-graph URL, with stackd's resident memory sampled every 50 ms:
how long they took, their statuses, peak RSS and RSS afterwards.

usage: python3 benches/concurrent_renders.py STACKD_PID URL
e.g.:  stackd-load --statsd 127.0.0.1:8125 --http 127.0.0.1:8086 --udp-rate 40000 --stacks 100000 \
         --duration 3 --app big
       python3 benches/concurrent_renders.py $(pidof stackd) http://127.0.0.1:8086/flamegraph/big-udp.json
"""
import sys, threading, time, urllib.request
pid, url = sys.argv[1], sys.argv[2]
def rss():
    for l in open('/proc/%s/status'%pid):
        if l.startswith('VmRSS'): return int(l.split()[1])//1024
print('rss before', rss(), 'MiB')
peak=[0]; stop=False
def watch():
    while not stop:
        peak[0]=max(peak[0], rss()); time.sleep(0.05)
w=threading.Thread(target=watch); w.start()
codes=[]
def get():
    try:
        r=urllib.request.urlopen(url, timeout=300); r.read(); codes.append(r.status)
    except Exception as e: codes.append(str(e)[:40])
t0=time.time()
ts=[threading.Thread(target=get) for _ in range(100)]
[t.start() for t in ts]; [t.join() for t in ts]
stop=True; w.join()
print('100 concurrent: %.1f s, statuses %s, peak rss %d MiB, after %d MiB'%(time.time()-t0, {c:codes.count(c) for c in set(codes)}, peak[0], rss()))
