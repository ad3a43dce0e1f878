-- wrk: listing.lua at a set pace: each connection waits $BENCH_DELAY_MS after every answer
-- before its next request, so that the offered rate stays well below what the machine can
-- serve and latency is measured off saturation (bench/retention).
dofile(os.getenv("BENCH_LIB") .. "/report.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

function delay()
   return pause
end

function done(summary, latency, requests)
   report(summary, latency)
end
