-- common.lua: what the wrk scripts of tests/bench/http_bench.py share.
-- Loaded by each script with dofile() from the directory the script is in.
--
-- Environment (set by http_bench.py):
--   BENCH_GUIDS  file of GUIDs, one per line (required)
--   BENCH_BODY   file whose bytes are the body of every PUT (PUT scripts)
--   BENCH_QUERY  appended to the path of every PUT, e.g. "?fsync=true"
--   BENCH_SEED   seed of the random GUID (and offset) choices
local M = {}

function M.env(name, default)
   local v = os.getenv(name)
   if v == nil or v == "" then
      if default == nil then
         error(name .. " is not set")
      end
      return default
   end
   return v
end

function M.read_file(path)
   local f, err = io.open(path, "rb")
   if not f then
      error("cannot open " .. path .. ": " .. tostring(err))
   end
   local s = f:read("*a")
   f:close()
   return s
end

-- The GUIDs of BENCH_GUIDS as an array.
function M.guids()
   local list = {}
   for line in M.read_file(M.env("BENCH_GUIDS")):gmatch("[^\r\n]+") do
      list[#list + 1] = line
   end
   if #list == 0 then
      error("no GUIDs in " .. M.env("BENCH_GUIDS"))
   end
   return list
end

function M.seed()
   math.randomseed(tonumber(M.env("BENCH_SEED", "1")))
end

-- The whole PUT request, body included, for each GUID, built once: a
-- string made per request (512 KiB concatenated, then collected) costs the
-- load generator more CPU than the server spends on it.  1 024 GUIDs take
-- 512 MiB.
function M.put_requests(guids, body)
   local q = M.env("BENCH_QUERY", "")
   local reqs = {}
   for i, g in ipairs(guids) do
      reqs[i] = "PUT /blobs/" .. g .. q .. " HTTP/1.1\r\n" ..
         "Host: " .. wrk.headers["Host"] .. "\r\n" ..
         "Content-Type: application/octet-stream\r\n" ..
         "Content-Length: " .. #body .. "\r\n\r\n" .. body
   end
   collectgarbage() -- finish the collection this caused before the run
   return reqs
end

-- "GET /blobs/<guid>" for each GUID, ready to send.
function M.get_requests(guids)
   local reqs = {}
   for i, g in ipairs(guids) do
      reqs[i] = "GET /blobs/" .. g .. " HTTP/1.1\r\n" ..
         "Host: " .. wrk.headers["Host"] .. "\r\n\r\n"
   end
   return reqs
end

-- One JSON line for http_bench.py: counts, errors and latencies (us).
function M.report(summary, latency)
   local e = summary.errors
   local function p(q)
      return latency:percentile(q)
   end
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
      '"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,' ..
      '"p99.9":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      p(50), p(90), p(99), p(99.9), latency.max, latency.mean))
end

return M
