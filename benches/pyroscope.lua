-- wrk script (benches/pyroscope.sh): POST the files $BODIES (space-separated) in turn to $URL_PATH
-- with $CONTENT_TYPE (and gzip Content-Encoding when $GZIP=1): one executor's profile a request.
wrk.method = "POST"
wrk.path = assert(os.getenv("URL_PATH"), "set URL_PATH")
wrk.headers["Content-Type"] = assert(os.getenv("CONTENT_TYPE"), "set CONTENT_TYPE")
if os.getenv("GZIP") == "1" then
  wrk.headers["Content-Encoding"] = "gzip"
end
local bodies = {}
for name in string.gmatch(assert(os.getenv("BODIES"), "set BODIES"), "%S+") do
  local f = assert(io.open(name, "rb"))
  table.insert(bodies, f:read("*a"))
  f:close()
end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
