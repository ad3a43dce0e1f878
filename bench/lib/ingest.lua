-- wrk: posts pre-signed, distinct IDnow deliveries (bench/lib/payloads.py), each thread
-- every n-th line of $BENCH_DELIVERIES, so no delivery is sent twice unless the file runs out.
dofile(os.getenv("BENCH_LIB") .. "/report.lua")

function init(args)
   local threads_total = tonumber(os.getenv("BENCH_THREADS"))
   requests_ = {}
   local line_number = 0
   for line in io.lines(os.getenv("BENCH_DELIVERIES")) do
      if line_number % threads_total == thread_index then
         local tab = line:find("\t", 1, true)
         requests_[#requests_ + 1] = wrk.format("POST", "/v1/webhooks/idnow", {
            ["Content-Type"] = "application/json",
            ["X-Idnow-Signature"] = line:sub(1, tab - 1),
         }, line:sub(tab + 1))
      end
      line_number = line_number + 1
   end
   next_ = 1
   created = 0
   reused = 0
end

function request()
   local request = requests_[next_]
   next_ = next_ + 1
   if next_ > #requests_ then
      next_ = 1
      reused = 1
   end
   return request
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   end
end

function done(summary, latency, requests)
   local total_created, any_reused = 0, 0
   for _, thread in ipairs(threads) do
      total_created = total_created + thread:get("created")
      any_reused = math.max(any_reused, thread:get("reused"))
   end
   report(summary, latency, { created = total_created, ran_out_of_deliveries = any_reused })
end
