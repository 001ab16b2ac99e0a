#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from the app's OpenAPI document
# (/openapi.json) and fails on any 5xx answer. Runs the app with its embedded broker on free ports.
#
#   scripts/schemathesis.sh [path/to/axum-mqtt-app]       # default: target/debug/axum-mqtt-app
#   SCHEMATHESIS_EXAMPLES=500 scripts/schemathesis.sh     # more requests per operation
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/axum-mqtt-app}"
venv="${SCHEMATHESIS_VENV:-target/schemathesis-venv}"
examples="${SCHEMATHESIS_EXAMPLES:-100}"

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http="127.0.0.1:$(port)"
log="$(mktemp)"
"$bin" --http "$http" --broker-listen "127.0.0.1:$(port)" --broker-v5-listen "127.0.0.1:$(port)" \
  --broker-ws-listen "127.0.0.1:$(port)" >"$log" 2>&1 &
app=$!
trap 'kill "$app" 2>/dev/null || true; rm -f "$log"' EXIT

python3 - "$http" <<'PY'
import sys, time, urllib.request
url = f"http://{sys.argv[1]}/healthz"
for _ in range(300):
    try:
        if urllib.request.urlopen(url, timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("the app did not become healthy in 30 s")
PY

# /events is a never-ending SSE stream: schemathesis cannot wait for its end.
status=0
"$venv/bin/schemathesis" run "http://$http/openapi.json" \
  --checks not_a_server_error --exclude-path /events \
  --max-examples "$examples" --workers 2 --no-color || status=$?

# The app must still be serving after all that.
python3 -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://$http/healthz', timeout=5).status == 200 else 1)" \
  || { echo "schemathesis: the app stopped serving"; cat "$log"; exit 1; }
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failures above (app log follows)"; tail -50 "$log"; exit "$status"
fi
echo "schemathesis: no 5xx, app still healthy"
