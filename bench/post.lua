-- wrk script: sends one report per request to prefix .. key .. suffix, keys round robin.
-- Arguments (after --): method, prefix, suffix, number of keys, body, content type.
-- Prints one line "BENCH_JSON {...}" with counts and latency percentiles (microseconds).
local method, prefix, suffix, keys, body, headers
local counter = 0

function init(args)
  method, prefix, suffix = args[1], args[2], args[3]
  keys = tonumber(args[4])
  body = args[5]
  headers = { ["Content-Type"] = args[6] }
end

function request()
  counter = (counter + 1) % keys
  local path = prefix .. string.format("m%05d", counter) .. suffix
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
