"""The Flask-MQTT tutorial app, as the benchmark runs it.

The shape follows the well-known tutorial (one `Mqtt` client, `on_connect` subscribing, `on_message`
handling, `POST /publish` with `{"topic": ..., "msg": ...}`), with three changes for measuring:
`on_message` counts instead of printing, `/stats` + `/reset` expose the counters, and the client
connects after its handlers are registered (see below). The broker port, topic and QoS come from
the environment (the harness starts Mosquitto on a free port).

Run it the way Flask-MQTT requires (one process, so one MQTT client):
    gunicorn -w 1 --threads 8 -b 127.0.0.1:5000 app:app
"""

import os
import threading
import time

from flask import Flask, jsonify, request
from flask_mqtt import Mqtt

app = Flask(__name__)
app.config["MQTT_BROKER_URL"] = os.environ.get("MQTT_BROKER_URL", "127.0.0.1")
app.config["MQTT_BROKER_PORT"] = int(os.environ.get("MQTT_BROKER_PORT", "1883"))
app.config["MQTT_USERNAME"] = ""
app.config["MQTT_PASSWORD"] = ""
app.config["MQTT_KEEPALIVE"] = 30
app.config["MQTT_TLS_ENABLED"] = False
app.config["MQTT_CLIENT_ID"] = "bench-flask-%d" % os.getpid()
topic = os.environ.get("BENCH_TOPIC", "bench/#")
sub_qos = int(os.environ.get("BENCH_QOS", "1"))

# The tutorial writes `Mqtt(app)` here, which connects at once: when the CONNACK comes before the
# `@on_connect` below is registered, it never runs and nothing is subscribed (Flask-MQTT's
# registration race; it stalled every start of two full benchmark runs). So the client is made
# first and connected by `init_app` at the end, once every handler is in place.
mqtt_client = Mqtt()

state = {"received": 0, "first_ns": 0, "last_ns": 0, "subscribed": False}
latencies_us = []
lock = threading.Lock()


@mqtt_client.on_connect()
def handle_connect(client, userdata, flags, rc):
    if rc == 0:
        print("Connected successfully", flush=True)
        mqtt_client.subscribe(topic, qos=sub_qos)
    else:
        print("Bad connection. Code:", rc, flush=True)


@mqtt_client.on_subscribe()
def handle_subscribe(client, userdata, mid, granted_qos):
    state["subscribed"] = True


@mqtt_client.on_message()
def handle_mqtt_message(client, userdata, message):
    now = time.time_ns()
    # Runs on paho's network thread only: no lock needed for the counters.
    state["received"] += 1
    if state["received"] == 1:
        state["first_ns"] = now
    state["last_ns"] = now
    if message.topic.startswith("bench/lat/"):
        sent = int(message.payload[:20])
        latencies_us.append((now - sent) // 1000)


@app.route("/publish", methods=["POST"])
def publish_message():
    request_data = request.get_json()
    publish_result = mqtt_client.publish(
        request_data["topic"], request_data["msg"], qos=int(request_data.get("qos", 0))
    )
    return jsonify({"code": publish_result[0]})


@app.route("/stats")
def stats():
    lat = sorted(latencies_us)
    pick = lambda p: lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] if lat else 0
    return jsonify(
        dict(
            state,
            pid=os.getpid(),
            connected=mqtt_client.connected,
            lat_us=[pick(50), pick(99), lat[-1] if lat else 0] if lat else None,
        )
    )


@app.route("/reset", methods=["POST"])
def reset():
    with lock:
        state.update(received=0, first_ns=0, last_ns=0)
        latencies_us.clear()
    return jsonify({"code": 0})


# Connect only now, with every handler registered (see above).
mqtt_client.init_app(app)
