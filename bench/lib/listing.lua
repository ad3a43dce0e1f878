-- wrk: GETs one signing's history with the bench token (the URL carries path and query).
dofile(os.getenv("BENCH_LIB") .. "/report.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")

function done(summary, latency, requests)
   report(summary, latency)
end
