-- wrk script: POST request i with the bearer token on line i of args[1] and the body on
-- line i of args[2], rotating through them, so that every request carries a different
-- user's JWT (and, for the adjusting target, a body of its own).
local requests = {}
local index = 0

init = function(args)
  local bodies = {}
  for body in io.lines(args[2]) do
    bodies[#bodies + 1] = body
  end
  local i = 0
  for token in io.lines(args[1]) do
    i = i + 1
    requests[#requests + 1] = wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, bodies[i])
  end
end

request = function()
  index = index % #requests + 1
  return requests[index]
end
