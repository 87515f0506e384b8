-- get.lua: GET /blobs/<random GUID of BENCH_GUIDS>, the whole blob.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local reqs, n

function init(args)
   common.seed()
   reqs = common.get_requests(common.guids())
   n = #reqs
end

function request()
   return reqs[math.random(n)]
end

function done(summary, latency, requests)
   common.report(summary, latency)
end
