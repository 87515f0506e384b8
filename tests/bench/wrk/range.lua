-- range.lua: GET /blobs/<random GUID of BENCH_GUIDS> with
-- "Range: bytes=a-(a+4095)", a random 4 KiB-aligned offset inside the
-- 512 KiB blob (BENCH_RANGE_LEN and BENCH_BLOB_SIZE change the sizes).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local guids, n, host, len, slots

function init(args)
   common.seed()
   guids = common.guids()
   n = #guids
   host = wrk.headers["Host"]
   len = tonumber(common.env("BENCH_RANGE_LEN", "4096"))
   slots = math.floor(tonumber(common.env("BENCH_BLOB_SIZE", "524288")) / len)
end

function request()
   local a = (math.random(slots) - 1) * len
   return "GET /blobs/" .. guids[math.random(n)] .. " HTTP/1.1\r\n" ..
      "Host: " .. host .. "\r\n" ..
      "Range: bytes=" .. a .. "-" .. (a + len - 1) .. "\r\n\r\n"
end

function done(summary, latency, requests)
   common.report(summary, latency)
end
