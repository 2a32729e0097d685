-- wrk script: the query `tpk-load run` sends (ten message headers, the
-- caller's intercept ID, `path` and `containerPort`), `x-dev` alternating
-- between alice and bob; prints one JSON line shaped like `tpk-load run --json`.
--
--   wrk -t1 -c64 -d5s -s bench/consume-here.lua http://127.0.0.1:9980

local requests = {}

-- Built once the thread knows the target: wrk sets `Host` then, and Go's
-- server refuses an HTTP/1.1 request without one.
init = function(_)
  for i, dev in ipairs({ "alice", "bob" }) do
    local path = "/orders/" .. i
    local headers = {
      ["x-telepresence-caller-intercept-id"] = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders",
      ["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      ["x-dev"] = dev,
      ["content-type"] = "application/json",
      ["x-request-id"] = "5f0c6b1e-6a47-4a3e-9f1c-2b1d8c9e7a10",
      ["x-tenant"] = "acme",
      ["x-schema-version"] = "7",
      ["x-source"] = "orders-api",
      ["x-retry-count"] = "0",
      ["x-partition-key"] = "customer-42",
      ["x-path"] = path,
    }
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    requests[i] = wrk.format("GET", "/consume-here?path=%2Forders%2F" .. i .. "&containerPort=8080", headers)
  end
end

local n = 0
request = function()
  n = n + 1
  return requests[n % 2 + 1]
end

done = function(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    '{"concurrency":%d,"requests":%d,"seconds":%.3f,"rps":%.1f,"errors":%d,'
      .. '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
    tonumber(os.getenv("WRK_CONNECTIONS") or "0"),
    summary.requests,
    summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    latency:percentile(50),
    latency:percentile(99),
    latency.max
  ))
end
