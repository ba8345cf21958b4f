-- wrk script: POST the body in args[2], rotating the bearer tokens listed in args[1]
-- (one per line), so that every request carries a different user's JWT.
local requests = {}
local index = 0

init = function(args)
  local body = io.open(args[2]):read("*a")
  for token in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, body)
  end
end

request = function()
  index = index % #requests + 1
  return requests[index]
end
