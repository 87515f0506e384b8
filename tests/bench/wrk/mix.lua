-- mix.lua: 90 % GET / 10 % PUT of random GUIDs of BENCH_GUIDS, the PUT
-- body the bytes of BENCH_BODY (BENCH_PUT_PERCENT changes the share).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local gets, puts, n, share

function init(args)
   common.seed()
   local guids = common.guids()
   local body = common.read_file(common.env("BENCH_BODY"))
   gets = common.get_requests(guids)
   puts = common.put_requests(guids, body)
   n = #guids
   share = tonumber(common.env("BENCH_PUT_PERCENT", "10")) / 100
end

function request()
   if math.random() < share then
      return puts[math.random(n)]
   end
   return gets[math.random(n)]
end

function done(summary, latency, requests)
   common.report(summary, latency)
end
