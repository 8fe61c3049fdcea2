#!/usr/bin/env bash
# The quickstart's commands, one section each, in the order the page shows them; the test
# tests/docs/test_quickstart.py runs every one as written, the first in a terminal of its own.
set -euo pipefail

# --8<-- [start:start]
export JWT_KEY=quickstart-only-key-0123456789abcdef
uv run python -m reference_system
# --8<-- [end:start]

# --8<-- [start:shell]
export JWT_KEY=quickstart-only-key-0123456789abcdef
export API="http://127.0.0.1:${API_PORT:-8000}" TELEGRAM="http://127.0.0.1:${FAKE_TELEGRAM_PORT:-9103}"
json() { uv run python -c "import json, sys; print(json.load(sys.stdin)$1)"; }
# --8<-- [end:shell]

# --8<-- [start:sign-up]
USER_ID=$(curl -sS --fail-with-body -X POST "$API/users" -H 'Content-Type: application/json' --data @- <<BODY | json '["id"]'
{"email": "ada-$RANDOM$RANDOM@example.org", "name": "Ada"}
BODY
)
TOKEN=$(uv run python -m api_service.token "$USER_ID")
echo "user $USER_ID"
# --8<-- [end:sign-up]

# --8<-- [start:link]
CODE=$(curl -sS --fail-with-body -X POST "$API/users/$USER_ID/telegram-link" -H "Authorization: Bearer $TOKEN" | json '["code"]')
curl -sS --fail-with-body -X POST "$TELEGRAM/chats/4242/messages" -d "/link $CODE"; echo
# --8<-- [end:link]

# --8<-- [start:order]
ORDER_ID=$(curl -sS --fail-with-body -X POST "$API/users/$USER_ID/orders" -H "Authorization: Bearer $TOKEN" \
  -H "Idempotency-Key: quickstart-$USER_ID" -H 'Content-Type: application/json' \
  --data '{"items": [{"sku": "book-1", "quantity": 2, "unit_price": "12.50"}]}' | json '["id"]'
)
echo "order $ORDER_ID"
# --8<-- [end:order]

# --8<-- [start:messages]
curl -sS --fail-with-body "$TELEGRAM/chats/4242/messages"
# --8<-- [end:messages]
