-- wrk script for tests/deploy/topology_test.py: POSTs one image file as the raw
-- request body and counts, across all threads, every HTTP status and every 200
-- whose body is not a classification. Prints one line "RESULT {json}".
--   RESNETD_WRK_IMAGE=img.png wrk -s post_image.lua http://host:port/v1/classify
local image_path = assert(os.getenv("RESNETD_WRK_IMAGE"), "set RESNETD_WRK_IMAGE")
local f = assert(io.open(image_path, "rb"))
local body = f:read("*a")
f:close()

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  bad_body = 0
end

function request()
  return wrk.format("POST", nil, { ["Content-Type"] = "image/png" }, body)
end

function response(status, headers, resp)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 and not string.find(resp, '"predictions"', 1, true) then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  local counts, bad = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      counts[code] = (counts[code] or 0) + n
    end
    bad = bad + t:get("bad_body")
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"bad_body": %d, "latency_p50_us": %d, "latency_p99_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    bad, latency:percentile(50), latency:percentile(99), table.concat(parts, ", ")))
end
