-- wrk script for hop.py: POST /orders, each request with an Idempotency-Key of its own
-- (unique per run, thread and request, so every one creates an order; none is a replay).
-- Arguments after `--`: <key prefix> <user id> <bearer token>.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  prefix, user, token, sent = args[1], args[2], args[3], 0
end

function request()
  sent = sent + 1
  local body = '{"user_id": ' .. user .. ', "items": [{"sku": "book-1", "quantity": 2, "unit_price": "12.50"}]}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = prefix .. "-" .. thread_number .. "-" .. sent,
  }
  return wrk.format("POST", "/orders", headers, body)
end
