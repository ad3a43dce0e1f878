-- Shared by the wrk scripts: one machine-readable line with the figures bench/run keeps.
-- Per-thread counters are globals of each thread's Lua state, read back through setup().

threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function report(summary, latency, extra)
   local errors = summary.errors
   local fields = {
      string.format('"requests":%d', summary.requests),
      string.format('"seconds":%.3f', summary.duration / 1e6),
      string.format('"p50_ms":%.3f', latency:percentile(50) / 1e3),
      string.format('"p99_ms":%.3f', latency:percentile(99) / 1e3),
      string.format('"socket_errors":%d', errors.connect + errors.read + errors.write + errors.timeout),
      string.format('"non_2xx":%d', errors.status),
   }
   for name, value in pairs(extra or {}) do
      table.insert(fields, string.format('"%s":%d', name, value))
   end
   io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
end
