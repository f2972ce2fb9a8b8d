-- wrk script: GET /v1/vehicles/nearby at random points of a Barcelona-sized box, with a token.
-- Usage: TOKEN=... wrk -t1 -c64 -d10s --latency -s scripts/nearby.lua http://127.0.0.1:8080
local token = os.getenv("TOKEN") or ""
-- FIXED="lat,lon" queries one point every time (to compare with redis-benchmark).
local fixed_lat, fixed_lon = string.match(os.getenv("FIXED") or "", "([%d.-]+),([%d.-]+)")
math.randomseed(7)
request = function()
  local lat = tonumber(fixed_lat) or (41.321 + math.random() * 0.148)
  local lon = tonumber(fixed_lon) or (2.071 + math.random() * 0.158)
  local path = string.format("/v1/vehicles/nearby?lat=%.6f&lon=%.6f&radius_m=500&limit=10&state=any", lat, lon)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
