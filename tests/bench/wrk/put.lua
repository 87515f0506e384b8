-- put.lua: PUT /blobs/<random GUID of BENCH_GUIDS> with the bytes of
-- BENCH_BODY (512 KiB), BENCH_QUERY appended to the path.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local puts, n

function init(args)
   common.seed()
   local body = common.read_file(common.env("BENCH_BODY"))
   puts = common.put_requests(common.guids(), body)
   n = #puts
end

function request()
   return puts[math.random(n)]
end

function done(summary, latency, requests)
   common.report(summary, latency)
end
