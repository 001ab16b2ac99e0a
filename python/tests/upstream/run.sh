#!/usr/bin/env bash
# Flask-MQTT 1.3.0's own integration tests (tests/test_integration.py and test_multiple_servers.py,
# 19 tests, from its sdist on PyPI), unchanged, against this package: an app written for Flask-MQTT
# runs on it. They need anonymous brokers on the fixed ports 1883, 1885 and 1886, so they run in a
# private network namespace (loopback only) where those ports are free by construction.
# (Its test_flaskmqtt.py mocks paho and asserts paho calls: not applicable to a package without paho.)
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --no-binary :all: flask-mqtt==1.3.0 -d "$work"
tar xzf "$work/flask_mqtt-1.3.0.tar.gz" -C "$work"
cd "$work/flask_mqtt-1.3.0"
rm -rf flask_mqtt # their module: the tests must import ours, installed
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
export MOSQUITTO="$mosquitto"
unshare --net bash -euo pipefail -c '
  ip link set lo up
  pids=()
  trap "kill \${pids[*]} 2>/dev/null || true" EXIT
  for port in 1883 1885 1886; do
    "$MOSQUITTO" -p "$port" >/dev/null 2>&1 &
    pids+=($!)
  done
  for port in 1883 1885 1886; do
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  done
  python3 -P -m pytest -q -p no:cacheprovider tests/test_integration.py tests/test_multiple_servers.py
'
