-- wrk script for bench/run.sh: a fixed request, and a JSON report of the run.
--
--   wrk -t1 -c32 -d10s -s bench/wrk/report.lua URL                    GET URL
--   wrk -t1 -c32 -d10s -s bench/wrk/report.lua URL -- BASIC BODY      POST BODY (form) with Authorization: Basic BASIC
--
-- The report goes to the file named by WRK_REPORT (else standard output): requests, duration, errors and
-- latency percentiles (50, 90, 99, 99.9), the slowest answer and the mean, in microseconds.

-- wrk.init calls this, then builds the fixed request from these fields.
function init(args)
  if args[1] then
    wrk.method, wrk.body = "POST", args[2]
    wrk.headers["Authorization"] = "Basic " .. args[1]
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local report = string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean)
  local file = os.getenv("WRK_REPORT")
  if file then
    local f = assert(io.open(file, "w"))
    f:write(report)
    f:close()
  else
    io.write(report)
  end
end
