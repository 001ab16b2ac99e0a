"""publish() CPU per call from Python, on whichever `flask_mqtt` this interpreter has: Flask-MQTT
(paho) in bench/out/venv, ours (the Rust client) in bench/out/venv-rs.

One process, one client: N calls of `mqtt.publish(topic, 32-byte payload, qos=0)` in a loop.
CPU is `time.process_time()` (every thread of the process: the caller and the client's own
threads) from the first call until the broker acknowledged a QoS 1 marker published after the last
one, so writing the N messages to the socket is counted whichever thread does it. The CPU of the
loop alone is reported too. The broker port comes from MQTT_BROKER_PORT, N from BENCH_N.
Prints one JSON line.
"""

import json
import os
import time

from flask import Flask
from flask_mqtt import Mqtt

n = int(os.environ.get("BENCH_N", "100000"))
topic = os.environ.get("BENCH_TOPIC", "bench/publish-cpu")
payload = b"x" * 32

app = Flask(__name__)
app.config["MQTT_BROKER_URL"] = os.environ.get("MQTT_BROKER_URL", "127.0.0.1")
app.config["MQTT_BROKER_PORT"] = int(os.environ.get("MQTT_BROKER_PORT", "1883"))
app.config["MQTT_KEEPALIVE"] = 30
app.config["MQTT_CLIENT_ID"] = "bench-publish-cpu-%d" % os.getpid()
mqtt = Mqtt(app)

deadline = time.monotonic() + 10
while not mqtt.connected:
    if time.monotonic() > deadline:
        raise SystemExit("not connected within 10 s")
    time.sleep(0.01)


def flushed(timeout):
    """A QoS 1 marker after everything before it: acked once the broker has all of it."""
    mqtt.client.publish(topic, b"end", qos=1).wait_for_publish(timeout)


# Warm-up (first calls, allocations, the client's threads awake).
for _ in range(1000):
    mqtt.publish(topic, payload, qos=0)
flushed(30)

errors = 0
cpu0, wall0 = time.process_time(), time.perf_counter()
for _ in range(n):
    rc, _mid = mqtt.publish(topic, payload, qos=0)
    if rc:
        errors += 1
cpu_loop, wall_loop = time.process_time(), time.perf_counter()
flushed(120)
cpu1, wall1 = time.process_time(), time.perf_counter()

print(
    json.dumps(
        {
            "calls": n,
            "errors": errors,
            "cpu_us_per_call": (cpu1 - cpu0) / n * 1e6,
            "loop_cpu_us_per_call": (cpu_loop - cpu0) / n * 1e6,
            "calls_per_s": n / (wall_loop - wall0),
            "wall_s": wall1 - wall0,
        }
    ),
    flush=True,
)
