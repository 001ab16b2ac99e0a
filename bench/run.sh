#!/usr/bin/env bash
# Runs every benchmark once, side by side, and writes the tables into bench/RESULTS.md.
#   bench/run.sh            full run (3 runs per figure, ~10 min on 2 cores)
#   bench/run.sh --quick    smoke run (1 run, small floods, ~2 min)
#   bench/run.sh --help     every option (--runs, --count, --only inbound,http,latency,python, ...)
# Logs, raw JSON and the two virtualenvs (Flask-MQTT; our package) go to bench/out/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."

have_mosquitto() { [ -x /usr/sbin/mosquitto ] || [ -x /usr/bin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]; }
missing=()
have_mosquitto || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# Build once in release; the harness starts this same binary for its receivers and servers, and
# the app (axum-mqtt-app, next to it) for the WebSocket fan-out. BENCH_BUILD_LOCK=<file>: every
# build (this one and the harness's `pip install python/`) runs under `flock <file>`.
lock=()
[ -n "${BENCH_BUILD_LOCK:-}" ] && lock=(flock "$BENCH_BUILD_LOCK")
"${lock[@]}" cargo build --release -q -p axum-mqtt-bench -p axum-mqtt-app
target_dir=$("${lock[@]}" cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/axum-mqtt-bench" run "$@"
