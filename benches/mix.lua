-- wrk script: POST the bodies listed in BODIES (an index file, one path a line) to
-- /write?db=load, each request the next body, each thread starting at its own place: the
-- realistic mix (stackd-load --print-bodies DIR, DIR/index.txt), or an index of one body.
local bodies = {}
local index = assert(os.getenv("BODIES"), "set BODIES to the mix's index.txt")
for path in io.lines(index) do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local i = 0
local headers = { ["Content-Type"] = "text/plain; charset=utf-8" }
function setup(thread)
  thread:set("start", math.random(#bodies))
end
function init(args)
  i = start or 0
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/write?db=load", headers, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"seconds":%.3f,"non2xx":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
