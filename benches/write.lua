-- wrk script: POST the file named by $BODY to /write?db=load, once per request
-- (benches/ab_write.sh and benches/same_run_load.sh).
wrk.method = "POST"
wrk.path = "/write?db=load"
local f = assert(io.open(assert(os.getenv("BODY"), "set BODY to a line-protocol file"), "rb"))
wrk.body = f:read("*a")
f:close()
