-- wrk script for bench/run.sh: one token per request, from a file of pre-minted tokens.
--
--   wrk -t1 -c32 -d10s -s bench/wrk/tokens.lua URL -- MODE ARGS…
--
--   refresh BASIC PATH FILE      POST PATH grant_type=refresh_token&refresh_token=…, client_secret_basic.
--                                Each token is sent once; the rotated token of each answer joins the back of
--                                the queue, so N tokens keep N chains going and no token is presented twice.
--   code BASIC PATH FILE REDIRECT_URI VERIFIER
--                                POST PATH grant_type=authorization_code&code=…&redirect_uri=…&code_verifier=…,
--                                client_secret_basic. Each code is sent once; the run stops with an error if
--                                the file runs out (mint more codes than the run can exchange).
--   introspect BASIC PATH FILE [HINT]
--                                POST PATH token=…&token_type_hint=HINT (default access_token), cycling.
--   bearer PATH FILE             GET PATH with Authorization: Bearer …, cycling.
--
-- The report is report.lua's.

dofile("bench/wrk/report.lua")

local mode, basic, path, hint, code_params
-- A queue: tokens[head..tail]. (The length operator is no use once the front has been taken.)
local tokens, head, tail = {}, 1, 0

function init(args)
  mode = args[1]
  local file
  if mode == "refresh" or mode == "introspect" then
    basic, path, file, hint = args[2], args[3], args[4], args[5] or "access_token"
  elseif mode == "code" then
    basic, path, file = args[2], args[3], args[4]
    -- The redirect URI's reserved characters, percent-encoded for the form body.
    local redirect = args[5]:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    code_params = "&redirect_uri=" .. redirect .. "&code_verifier=" .. args[6]
  elseif mode == "bearer" then
    path, file = args[2], args[3]
  else
    error("unknown mode " .. tostring(mode))
  end
  for line in io.lines(file) do
    if line ~= "" then
      tail = tail + 1
      tokens[tail] = line
    end
  end
  if tail == 0 then error("no tokens in " .. file) end
end

local function next_token()
  local token = tokens[head]
  if mode == "refresh" or mode == "code" then
    if token == nil then error("the " .. mode .. " queue ran dry") end
    tokens[head] = nil
    head = head + 1
  else
    head = head % tail + 1
  end
  return token
end

local function form(body)
  return wrk.format("POST", path, {
    ["Authorization"] = "Basic " .. basic,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end

function request()
  if mode == "refresh" then
    return form("grant_type=refresh_token&refresh_token=" .. next_token())
  elseif mode == "code" then
    return form("grant_type=authorization_code&code=" .. next_token() .. code_params)
  elseif mode == "introspect" then
    return form("token=" .. next_token() .. "&token_type_hint=" .. hint)
  end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. next_token() })
end

function response(status, headers, body)
  if mode == "refresh" and status == 200 then
    local rotated = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if rotated then
      tail = tail + 1
      tokens[tail] = rotated
    end
  end
end
