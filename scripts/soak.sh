#!/usr/bin/env bash
# Soak test (not in CI): the app under a steady load for a long time, sampled every few seconds,
# then a verdict on whether memory, file descriptors and threads stay flat.
#
#   scripts/soak.sh                       # 10 minutes, release build, app --no-broker + Mosquitto
#   SOAK_SECONDS=120 scripts/soak.sh      # a 2-minute check
#
# Settings (environment):
#   SOAK_SECONDS   run time (600)              SOAK_INTERVAL  seconds between samples (10)
#   SOAK_RATE      MQTT messages per second into the app, QoS 1 (200)
#   SOAK_HTTP_RATE POST /publish per second (5)
#   SOAK_BROKER    mosquitto (default when installed: the app connects with --no-broker, so only the
#                  app and the library are measured) or embedded (the app's own rmqtt broker, counted too)
#   SOAK_PROFILE   release (default) or debug
#   SOAK_OUT       CSV file (target/soak-<date>.csv)
#
# Load, every second: SOAK_RATE QoS 1 messages on soak/in (mosquitto_pub -l) that the app handles
# and logs, SOAK_HTTP_RATE POST /publish at QoS 1, and an SSE client on /events that reconnects
# every 5 s (a stream opened and dropped each time).
#
# CSV columns: elapsed_s, rss_kib, fds, threads, tasks (tokio tasks, when /metrics has
# tokio_alive_tasks; else empty), received, handled, published, http_ok, sse_clients.
# Verdict: after a warm-up of a fifth of the run, RSS must not grow by more than max(4 MiB, 5 %)
# from the first samples to the last ones (medians of 3), and fds, threads and tasks by more than 2.
# Exit code 0 when flat, 1 when growing, 2 when the setup failed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${SOAK_SECONDS:-600}"
interval="${SOAK_INTERVAL:-10}"
rate="${SOAK_RATE:-200}"
http_rate="${SOAK_HTTP_RATE:-5}"
profile="${SOAK_PROFILE:-release}"
out="${SOAK_OUT:-target/soak-$(date +%Y%m%d-%H%M%S).csv}"
mosquitto_bin="$(command -v mosquitto || true)"
[ -z "$mosquitto_bin" ] && [ -x /usr/sbin/mosquitto ] && mosquitto_bin=/usr/sbin/mosquitto
broker="${SOAK_BROKER:-$([ -n "$mosquitto_bin" ] && echo mosquitto || echo embedded)}"

die() { echo "soak: $*" >&2; exit 2; }
command -v mosquitto_pub >/dev/null || die "mosquitto_pub is needed for the MQTT load (apt-get install mosquitto-clients)"
command -v curl >/dev/null || die "curl is needed"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

work="$(mktemp -d)"
pids=()
cleanup() {
  {
    for p in "${pids[@]}"; do
      pkill -P "$p" || true
      kill "$p" || true
    done
    wait || true
  } 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "soak: building the app ($profile)"
if [ "$profile" = release ]; then
  cargo build --release -q -p axum-mqtt-app
else
  cargo build -q -p axum-mqtt-app
fi
app_bin="target/$profile/axum-mqtt-app"

http_port="$(free_port)"
mqtt_port="$(free_port)"
app_env=(RUST_LOG=warn)
app_args=(--http "127.0.0.1:$http_port" --subscribe 'soak/#' --history 1000)
if [ "$broker" = mosquitto ]; then
  [ -n "$mosquitto_bin" ] || die "mosquitto is not installed (or use SOAK_BROKER=embedded)"
  chmod 755 "$work"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n' "$mqtt_port" >"$work/mosquitto.conf"
  "$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  pids+=($!)
  app_env+=(MQTT_BROKER_URL="mqtt://127.0.0.1:$mqtt_port")
  app_args+=(--no-broker)
else
  app_args+=(--broker-listen "127.0.0.1:$mqtt_port" --broker-ws off)
fi

env "${app_env[@]}" "$app_bin" "${app_args[@]}" >/dev/null 2>"$work/app.log" &
app_pid=$!
pids+=("$app_pid")
base="http://127.0.0.1:$http_port"
for _ in $(seq 100); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$app_pid" 2>/dev/null || { cat "$work/app.log" >&2; die "the app exited"; }
  sleep 0.1
done
curl -sf "$base/healthz" >/dev/null || { cat "$work/app.log" >&2; die "the app is not healthy"; }

# MQTT load: `rate` lines a second into one mosquitto_pub connection (QoS 1).
(
  n=0
  while :; do
    seq -f "soak %.0f" "$n" "$((n + rate - 1))"
    n=$((n + rate))
    sleep 1
  done
) | mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t soak/in -l -i "soak-load-$$" &
pids+=($!)
# HTTP load: POST /publish.
(
  while :; do
    curl -s -o /dev/null -X POST "$base/publish" -H 'content-type: application/json' \
      -d '{"topic": "soak/http", "msg": "from the soak test", "qos": 1}' || true
    sleep "$(awk "BEGIN { print 1 / $http_rate }")"
  done
) &
pids+=($!)
# SSE: a stream opened and dropped every 5 s.
(
  while :; do
    curl -s -N --max-time 5 "$base/events?filter=soak/%23" >/dev/null || true
  done
) &
pids+=($!)

# metric NAME TEXT [LABEL="value"]: the sum of NAME's series (a client's have `client`/`qos` labels).
metric() {
  awk -v k="$1" -v f="${3:-}" '!/^#/ { n = $1; sub(/\{.*/, "", n) }
    !/^#/ && n == k && index($0, f) { s += $NF; found = 1 } END { if (found) print s }' <<<"$2"
}
echo "elapsed_s,rss_kib,fds,threads,tasks,received,handled,published,http_ok,sse_clients" >"$out"
echo "soak: $secs s against the $broker broker, $rate msg/s + $http_rate POST/s + SSE; samples every $interval s in $out"
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  kill -0 "$app_pid" 2>/dev/null || { cat "$work/app.log" >&2; die "the app died after $now s"; }
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$app_pid/status")
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$app_pid/status")
  fds=$(ls "/proc/$app_pid/fd" | wc -l)
  m="$(curl -s --max-time 5 "$base/metrics" || true)"
  echo "$now,$rss,$fds,$threads,$(metric tokio_alive_tasks "$m"),$(metric mqtt_messages_received_total "$m"),$(metric mqtt_handler_calls_total "$m" 'outcome="handled"'),$(metric mqtt_messages_published_total "$m"),$(metric app_http_publishes_total "$m"),$(metric app_sse_clients "$m")" >>"$out"
  [ "$now" -ge "$secs" ] && break
  sleep "$interval"
done

# Verdict.
awk -F, -v secs="$secs" '
  NR == 1 { next }
  { t[++n] = $1; for (c = 2; c <= 10; c++) v[n, c] = $c }
  function med3(a, b, c) { return (a <= b) ? ((b <= c) ? b : ((a <= c) ? c : a)) : ((a <= c) ? a : ((b <= c) ? c : b)) }
  END {
    w = 1; while (w <= n && t[w] < secs / 5) w++
    if (n - w < 5) { print "VERDICT: too few samples after the warm-up"; exit 2 }
    name[2] = "rss_kib"; name[3] = "fds"; name[4] = "threads"; name[5] = "tasks"
    growing = 0
    for (c = 2; c <= 5; c++) {
      if (v[w, c] == "") continue
      first = med3(v[w, c], v[w + 1, c], v[w + 2, c]); last = med3(v[n - 2, c], v[n - 1, c], v[n, c])
      limit = (c == 2) ? ((first * 0.05 > 4096) ? first * 0.05 : 4096) : 2
      d = last - first
      printf "%s: %d -> %d (%+d; limit +%d)\n", name[c], first, last, d, limit
      if (d > limit) { growing = 1; bad = bad " " name[c] }
    }
    recv = v[n, 6] - v[w, 6]
    printf "messages handled after the warm-up: %d (%.0f/s); published: %d; POST ok: %d\n", v[n, 7] - v[w, 7], recv / (t[n] - t[w]), v[n, 8], v[n, 9]
    if (recv <= 0) { print "VERDICT: no load reached the app"; exit 2 }
    if (growing) { print "VERDICT: growing (" substr(bad, 2) ")"; exit 1 }
    print "VERDICT: flat"
  }' "$out"
